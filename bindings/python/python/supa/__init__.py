"""Supa from Python: the key, JWT and SigV4 primitives, the Management API
client, the tenant bootstrap as data (all from the Rust crates through
uniffi), a throwaway platform (`supa.platform`) and the pytest plugin built
on it (`supa.pytest_plugin`)."""

import json

from .supa_ffi import (  # noqa: F401
    ApiKey,
    AwsCredentials,
    BootstrapStatement,
    CreatedProject,
    Function,
    FunctionFile,
    JwtClaims,
    KeyValidation,
    ManagementError,
    Project,
    SecretDigest,
    SupaError,
    bootstrap_statements,
    consumer_name,
    generate_key,
    hash_key,
    mint_jwt,
    sign_sigv4,
    validate_key,
    verify_jwt,
)
from .supa_ffi import ManagementClient as _ManagementClient


class ManagementClient(_ManagementClient):
    """A client of a Management API with its admin token. Every method is
    a coroutine; a failure raises `ManagementError` (`.status`, `.message`).
    The JSON-returning calls also come decoded: `query`, `get_config`,
    `update_config`."""

    async def query(self, project_ref: str, sql: str) -> list:
        """Runs SQL in the project's database; the last statement's rows."""
        return json.loads(await self.query_json(project_ref, sql))

    async def get_config(self, project_ref: str, service: str) -> dict:
        """A service's settings: `auth`, `storage`, `realtime` or `postgrest`."""
        return json.loads(await self.get_config_json(project_ref, service))

    async def update_config(self, project_ref: str, service: str, patch: dict) -> dict:
        """Changes the settings `patch` names; the settings after."""
        return json.loads(await self.update_config_json(project_ref, service, json.dumps(patch)))


def _masked(name, value):
    """Secret keys show their prefix only, so a failing test's output (which
    prints these records) does not carry them."""
    if isinstance(value, str) and name in ("secret_key", "api_key") and value.startswith("sb_secret_"):
        return value[: len("sb_secret_") + 6] + "…"
    return value


def _record_repr(self):
    fields = ", ".join(f"{name}={_masked(name, value)!r}" for name, value in vars(self).items())
    return f"{type(self).__name__}({fields})"


for _record in (ApiKey, BootstrapStatement, CreatedProject, Function, FunctionFile, JwtClaims, KeyValidation,
                Project, SecretDigest):
    _record.__repr__ = _record.__str__ = _record_repr
