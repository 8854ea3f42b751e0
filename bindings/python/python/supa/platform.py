"""A throwaway Supa: `supa up` as a child process on free ports in a
temporary directory (its own embedded PostgreSQL), and projects on it that
come with their keys, their migrations applied, and go when asked.

    with Platform.start() as platform:
        project = platform.create_project()
        project.query("create table notes (id int)")
        project.delete()

The `supa` binary is the one the wheel ships (`supa/bin/supa`), else
`$SUPA_BIN`, else the first `supa` executable on PATH. PostgreSQL's server
binaries (15 or later) must be installed; edge functions also need `deno`
(on PATH or `$SUPA_DENO`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from . import ManagementClient

HERE = Path(__file__).resolve().parent


def _is_executable_binary(path: Path) -> bool:
    """A native executable, not a script: the wheel's own `supa` console
    script on PATH must not be mistaken for the binary it runs."""
    try:
        with open(path, "rb") as f:
            return os.access(path, os.X_OK) and f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_supa() -> Path:
    """The `supa` binary: the wheel's, `$SUPA_BIN`, or one on PATH."""
    bundled = HERE / "bin" / "supa"
    if bundled.exists():
        if not os.access(bundled, os.X_OK):
            bundled.chmod(0o755)
        return bundled
    explicit = os.environ.get("SUPA_BIN")
    if explicit:
        return Path(explicit)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "supa"
        if _is_executable_binary(candidate):
            return candidate
    raise FileNotFoundError(
        "no `supa` binary: install the supa wheel built by `make wheel` (it ships one), "
        "or set SUPA_BIN, or put `supa` on PATH"
    )


def _scratch() -> Optional[str]:
    """Where a throwaway platform's data goes: memory (`/dev/shm`) when it
    has a GiB free, else the system's temporary directory (functions stay
    there either way: see `_Workspace`). Each project is a copy of a ~9 MB
    template and each deletion forces a checkpoint; on a disk their writes
    queue behind each other (a creation took 150-400 ms under that churn,
    against 60-70 ms in memory)."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if stat.f_bavail * stat.f_frsize >= 1 << 30 and os.access("/dev/shm", os.W_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Loop:
    """An event loop on its own thread, so synchronous code (fixtures, a
    test without asyncio) can await the Management API client, whether or
    not the caller's thread runs a loop of its own."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="supa-management", daemon=True)
        self.thread.start()

    def submit(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine, timeout: float = 120):
        return self.submit(coroutine).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class Migrations:
    """A Supabase CLI project's SQL: `migrations/*.sql` in name order (each
    recorded in `supabase_migrations.schema_migrations`, as `supabase db
    reset` does), then `seed.sql`."""

    files: list[Path]
    seed: Optional[Path]

    @classmethod
    def find(cls, folder: "str | os.PathLike") -> "Migrations":
        """From a `supabase` folder, or its `migrations` folder itself."""
        folder = Path(folder)
        if (folder / "supabase").is_dir():
            folder = folder / "supabase"
        migrations = folder if folder.name == "migrations" else folder / "migrations"
        if not migrations.is_dir() and not (folder / "seed.sql").is_file():
            raise FileNotFoundError(f"{folder} has neither migrations/*.sql nor seed.sql")
        root = migrations.parent
        files = sorted(migrations.glob("*.sql")) if migrations.is_dir() else []
        seed = root / "seed.sql"
        return cls(files=files, seed=seed if seed.is_file() else None)

    def parts(self) -> list[tuple[str, Optional[str], str]]:
        """(file name, version recorded or None, SQL) in the order they
        run: the history table, each migration in a transaction of its own
        with its history row (so one that adds an enum value commits before
        the next uses it), then the seed."""
        parts = []
        if self.files:
            parts.append(("the migration history", None,
                          "create schema if not exists supabase_migrations;\n"
                          "create table if not exists supabase_migrations.schema_migrations "
                          "(version text primary key, statements text[], name text);"))
        for path in self.files:
            version, _, name = path.stem.partition("_")
            sql = path.read_text()
            parts.append((path.name, version, (
                f"begin;\n{sql}\n;\n"
                "insert into supabase_migrations.schema_migrations (version, statements, name) "
                f"values ({_literal(version)}, array[{_literal(sql)}], {_literal(name)});\ncommit;")))
        if self.seed:
            parts.append((self.seed.name, None, self.seed.read_text()))
        return parts


def _literal(text: str) -> str:
    """A SQL string literal: the dollar quote no text of it contains."""
    tag = "supa"
    while f"${tag}$" in text:
        tag += "_"
    return f"${tag}${text}${tag}$"


@dataclass
class SupaProject:
    """A project on a running platform, with its keys in clear."""

    ref: str
    name: str
    url: str
    publishable_key: str
    secret_key: str
    platform: "Platform" = field(repr=False)
    _jwt_secret: Optional[str] = field(default=None, repr=False)

    def query(self, sql: str) -> list:
        """Runs SQL in the project's database as its owner; the rows of the
        last statement."""
        return self.platform.run(self.platform.management.query(self.ref, sql))

    def config(self, service: str) -> dict:
        """A service's settings: `auth`, `storage`, `realtime`, `postgrest`."""
        return self.platform.run(self.platform.management.get_config(self.ref, service))

    def update_config(self, service: str, patch: dict) -> dict:
        """Changes the settings `patch` names; the gateway of `supa up`
        uses them from the next request."""
        return self.platform.run(self.platform.management.update_config(self.ref, service, patch))

    @property
    def jwt_secret(self) -> str:
        """The secret the project's JWTs are signed with (for tests that
        mint their own tokens with `supa.mint_jwt`)."""
        if self._jwt_secret is None:
            self._jwt_secret = self.platform.project_config(self.ref)["jwt_secret"]
        return self._jwt_secret

    def client(self, key: str = "publishable", **options):
        """A real `supabase.Client` of this project with its `publishable`
        or `secret` key; `options` go to `supabase.ClientOptions`."""
        from supabase import ClientOptions, create_client

        if key not in ("publishable", "secret"):
            raise ValueError(f"key is 'publishable' or 'secret', not {key!r}")
        api_key = self.publishable_key if key == "publishable" else self.secret_key
        return create_client(self.url, api_key, options=ClientOptions(**options))

    def apply(self, migrations: Migrations):
        """Applies a migrations folder in one SQL call. When that fails, the
        parts not recorded as applied run again one by one, so the error
        names the file (PostgreSQL parses a whole script before running
        any of it: one syntax error anywhere stops every file)."""
        from . import ManagementError

        parts = migrations.parts()
        try:
            self.query("\n".join(sql for _, _, sql in parts))
            return
        except ManagementError.Api:
            pass
        try:
            rows = self.query("select version from supabase_migrations.schema_migrations")
            applied = {r["version"] for r in rows}
        except ManagementError.Api:
            applied = set()
        for name, version, sql in parts:
            if version in applied:
                continue
            try:
                self.query(sql)
            except ManagementError.Api as e:
                raise ManagementError.Api(e.status, f"{name}: {e.message}") from None

    def delete(self):
        self.platform.delete_project(self.ref)


class _Workspace:
    """The files of one throwaway platform: its data dir (in memory when
    `_scratch` allows), its functions dir (on disk: Deno refuses to read
    under `/dev`), its log, and an owner file naming this process, so the
    next start removes what a killed run left."""

    def __init__(self):
        scratch = _scratch()
        _Workspace.sweep(scratch)
        self.data_dir = Path(tempfile.mkdtemp(prefix="supa-", dir=scratch))
        self.functions_dir = Path(tempfile.mkdtemp(prefix="supa-functions-")) if scratch else None
        stem = self.data_dir.parent / self.data_dir.name
        self.log = open(f"{stem}.log", "w+")
        self.owner = Path(f"{stem}.owner")
        self.owner.write_text(f"{os.getpid()}\n{self.functions_dir or ''}\n")

    def env(self) -> dict:
        return {"SUPA_FUNCTIONS_DIR": str(self.functions_dir)} if self.functions_dir else {}

    def remove(self):
        self.log.close()
        for directory in (self.data_dir, self.functions_dir):
            if directory:
                shutil.rmtree(directory, ignore_errors=True)
        self.owner.unlink(missing_ok=True)
        if os.environ.get("SUPA_KEEP_LOG") is None:
            Path(self.log.name).unlink(missing_ok=True)

    @staticmethod
    def sweep(scratch: Optional[str]):
        """Removes the workspaces of processes that are gone."""
        for owner in Path(scratch or tempfile.gettempdir()).glob("supa-*.owner"):
            try:
                pid, functions = (owner.read_text().split("\n") + [""])[:2]
                os.kill(int(pid), 0)
                continue  # its process still runs
            except ProcessLookupError:
                pass
            except (OSError, ValueError):
                continue  # not ours to judge (another user's, or unreadable)
            for directory in (owner.with_suffix(""), functions):
                if directory:
                    shutil.rmtree(directory, ignore_errors=True)
            owner.with_suffix(".log").unlink(missing_ok=True)
            owner.unlink(missing_ok=True)


class Platform:
    """`supa up` running as a child process; `Platform.start()` starts one,
    `stop()` (or leaving its `with` block) stops it and removes its data."""

    def __init__(self, process, workspace: _Workspace, api_url: str, gateway_url: str):
        self.process = process
        self._workspace = workspace
        self.data_dir = workspace.data_dir
        # Where `supa up` keeps functions' bundles and workers' sockets.
        self.functions_dir = workspace.functions_dir or self.data_dir / "functions"
        self.api_url = api_url
        self.gateway_url = gateway_url
        self.token = (self.data_dir / "admin_token").read_text().strip()
        self.service_token = (self.data_dir / "service_token").read_text().strip()
        self._loop = _Loop()
        self.management = ManagementClient(api_url, self.token)

    @classmethod
    def start(
        cls,
        *,
        profile: str = "test",
        env: Optional[dict] = None,
        args: Iterable[str] = (),
        timeout: float = 90,
        binary: "Path | None" = None,
        unset: Iterable[str] = ("SUPA_",),
    ) -> "Platform":
        """Starts `supa up` on free ports in a new temporary directory. The
        `test` profile runs the embedded PostgreSQL without fsync: nothing
        in it outlives the run, and the directory is on `/dev/shm` when
        that has room (see `_scratch`). Variables of this process starting with a
        prefix in `unset` are not passed on (a developer's own `SUPA_*`
        settings must not leak into tests); `env` adds settings and `args`
        adds arguments to `supa up` (`--redis-url URL`)."""
        binary = binary or find_supa()
        workspace = _Workspace()
        log = workspace.log
        api_port, gateway_port = free_port(), free_port()
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(unset))}
        child_env.update(workspace.env())
        child_env.update(env or {})
        command = [
            str(binary), "up", "--data-dir", str(workspace.data_dir), "--api-port", str(api_port),
            "--gateway-port", str(gateway_port), "--profile", profile, *args,
        ]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                   preexec_fn=_stop_with_parent)
        api_url = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + timeout
        while True:
            failure = None
            if process.poll() is not None:
                failure = f"supa up exited with {process.returncode}"
            elif time.monotonic() > deadline:
                failure = f"supa up did not answer /health within {timeout:.0f} s"
            if failure:
                log.seek(0)
                output = log.read()
                _stop(process)
                workspace.remove()
                raise RuntimeError(f"{failure}:\n{output}")
            try:
                with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return cls(process, workspace, api_url, f"http://127.0.0.1:{gateway_port}")

    def run(self, coroutine, timeout: float = 120):
        """Awaits a coroutine (a `management` call) from synchronous code."""
        return self._loop.run(coroutine, timeout)

    def submit(self, coroutine) -> "concurrent.futures.Future":
        """Starts a coroutine without waiting for it."""
        return self._loop.submit(coroutine)

    def project_config(self, project_ref: str) -> dict:
        """A project's configuration as gateways read it from the internal
        API (its database logins, JWT secret, settings): what a test needs
        to run a standalone server against the project's database."""
        request = urllib.request.Request(
            f"{self.api_url}/internal/v1/projects/{project_ref}/config",
            headers={"Authorization": f"Bearer {self.service_token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def create_project(self, name: Optional[str] = None, migrations: Optional[Migrations] = None) -> SupaProject:
        """A new project with its keys; `migrations` applied if given (the
        project is deleted again if they fail)."""
        created = self.run(self.management.create_project(name or "test"))
        project = SupaProject(
            ref=created.project.project_ref,
            name=created.project.name,
            url=f"{self.gateway_url}/project/{created.project.project_ref}",
            publishable_key=created.publishable_key,
            secret_key=created.secret_key,
            platform=self,
        )
        if migrations:
            try:
                project.apply(migrations)
            except BaseException:
                self.delete_project(project.ref)
                raise
        return project

    def delete_project(self, project_ref: str):
        self.run(self.management.delete_project(project_ref))

    def stop(self):
        """Stops `supa up` (and its PostgreSQL) and removes its data."""
        if self.process.poll() is None:
            _stop(self.process)
        self._loop.close()
        # Released now, while the bindings are loaded (not at interpreter exit).
        self.management = None
        self._workspace.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _stop_with_parent():
    """In the child before it runs `supa up`: a SIGTERM when this process
    dies, so a test run killed mid-way leaves no platform behind (it then
    stops its PostgreSQL as on any SIGTERM)."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(process, grace: float = 60):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
