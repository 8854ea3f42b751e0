"""Shared fixtures: the platform started by `supa up` as a subprocess, on
free ports and a throwaway data dir, stopped (with its embedded PostgreSQL)
when the session ends."""

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import supa.platform

ROOT = Path(__file__).resolve().parent.parent
SUPA = ROOT / "target" / "debug" / "supa"
SUPA_REST = ROOT / "target" / "debug" / "supa-rest"
AWS_KEY_ID = "AKIDSUPATESTEXAMPLE"
AWS_SECRET = "supa/test/secret/for/the/lambda/double"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform(supa.platform.Platform):
    """`supa up` (the `supa` package's throwaway platform) with the HTTP
    and CLI helpers this suite uses."""

    def client(self, token: "str | None" = None) -> httpx.Client:
        """An HTTP client of the Management API with the admin token."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=60)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Runs the `supa` CLI against this platform."""
        return subprocess.run(
            [str(SUPA), *args, "--api-url", self.api_url, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )


class Redis:
    """A real redis-server on a free port, in memory only."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/"
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, "redis-server")

    def stop(self):
        stop(self.proc)


@pytest.fixture(scope="session")
def redis_server():
    server = Redis()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def moto_s3(bucket):
    """moto's S3 server (a real S3-compatible server) on a free port with
    one `bucket`: (endpoint, boto3 client)."""
    import sys

    import boto3
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, "moto server")
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        s3.create_bucket(Bucket=bucket)
        yield endpoint, s3
    finally:
        stop(proc)


@contextlib.contextmanager
def running_platform(redis_url=None, profile="test", extra_env=None):
    """`supa up` on free ports and a throwaway data dir (its own embedded
    cluster), stopped and removed on exit. The `test` profile runs that
    cluster without fsync: nothing in it outlives the run."""
    assert SUPA.exists(), f"{SUPA} is missing: `make pytest` builds it"
    # The credentials the Lambda test double verifies signatures with.
    env = dict(AWS_ACCESS_KEY_ID=AWS_KEY_ID, AWS_SECRET_ACCESS_KEY=AWS_SECRET)
    # Realtime slots go soon after their last channel, for the slot tests.
    env["SUPA_REALTIME_SLOT_GRACE"] = "2"
    # Function workers exit soon after their last request, for the
    # scale-to-zero test.
    env["SUPA_FUNCTIONS_IDLE"] = "2"
    env.update(extra_env or {})
    args = ["--redis-url", redis_url] if redis_url else []
    try:
        platform = Platform.start(binary=SUPA, profile=profile, env=env, args=args, unset=("SUPA_", "AWS_"))
    except RuntimeError as e:
        pytest.fail(str(e))
    with platform:
        yield platform


@pytest.fixture(scope="session")
def platform(redis_server):
    with running_platform(redis_server.url) as p:
        yield p


@pytest.fixture(scope="session")
def supa_platform(platform):
    """The `supa` plugin's fixtures (`supa_project`, `supabase_client`) use
    this suite's platform, with Redis."""
    return platform


async def until(seconds, predicate):
    """Waits (in an event loop) until `predicate()` holds, at most
    `seconds`; whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def create_project(platform, name, schema_sql=None):
    """A project through the SDK (`supa.platform`), optionally with some SQL
    run in it, as a dict: its ref, name, keys, JWT secret and gateway URL."""
    project = platform.create_project(name)
    if schema_sql:
        project.query(schema_sql)
    return {"ref": project.ref, "name": project.name, "url": project.url, "jwt_secret": project.jwt_secret,
            "publishable_key": project.publishable_key, "secret_key": project.secret_key}


def empty_database(platform, prefix, *grants):
    """The URL of an empty database on the platform's cluster, owned by a
    new login that also gets `grants` (roles it may act as), for a
    standalone server that replaces one of Supabase's containers."""
    host_project = create_project(platform, f"{prefix}-host")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    password = secrets.token_hex(12)
    statements = [f"create role {name} login password '{password}'"]
    statements += [f"grant {', '.join(grants)} to {name}"] if grants else []
    statements.append(f"create database {name} owner {name}")
    with platform.client() as api:
        for sql in statements:
            r = api.post(f"/v1/projects/{host_project['ref']}/database/query", json={"query": sql})
            assert r.status_code == 201, r.text
    db = platform.project_config(host_project["ref"])["database"]
    return f"postgres://{name}:{password}@{db['host']}:{db['port']}/{name}"


def configure_auth(platform, project, **settings):
    """Changes a project's auth settings (`/config/auth`); gateways in
    process forget the old ones at once, the short sleep covers the
    announcement."""
    with platform.client() as api:
        r = api.patch(f"/v1/projects/{project['ref']}/config/auth", json=settings)
        assert r.status_code == 200, r.text
    time.sleep(0.1)


def wait_for_port(port, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def supa_rest_env(platform, project):
    """PostgREST's settings for supa-rest serving a project's database,
    logged in as the project's authenticator with the credentials the
    internal API gives gateways."""
    db = platform.project_config(project["ref"])["database"]
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PGRST_")},
        "PGRST_DB_URI": f"postgres://{db['user']}:{db['password']}@{db['host']}:{db['port']}/{db['name']}",
        "PGRST_DB_SCHEMAS": "public",
        "PGRST_DB_ANON_ROLE": "anon",
        "PGRST_JWT_SECRET": project["jwt_secret"],
    }


def start_supa_rest(platform, project, extra_env=None, stdout=subprocess.DEVNULL):
    """supa-rest standalone on a free port for a project's database.
    Returns (url, proc)."""
    rest_port = free_port()
    env = {
        **supa_rest_env(platform, project),
        "PGRST_SERVER_PORT": str(rest_port),
        "PGRST_SERVER_HOST": "127.0.0.1",
        **(extra_env or {}),
    }
    proc = subprocess.Popen([str(SUPA_REST)], env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    wait_for_port(rest_port, proc, "supa-rest")
    return f"http://127.0.0.1:{rest_port}", proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
