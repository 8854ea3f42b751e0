"""Config profiles: `[profile.NAME]` tables chosen with `--profile` or
`SUPA_PROFILE`; `production` refuses unsafe settings at start with one line
each, `test` relaxes durability; `supa config check` shows the effective
settings with secrets masked."""

import base64
import os
import secrets
import subprocess
import tempfile
from pathlib import Path

from conftest import ROOT, SUPA, free_port

SUPA_GATEWAY = ROOT / "target" / "debug" / "supa-gateway"
LONG_TOKEN = "t" * 40


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPA_")}
    env.update(extra)
    return env


def run(*args, env=None, timeout=60):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env or clean_env())


def config_file(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(text)
    f.close()
    return Path(f.name)


def test_config_check_shows_sources_and_masks_secrets():
    path = config_file(
        'log = "info"\n'
        'placement = "round-robin"\n'
        'database_url = "postgres://supa:hunter2@db.internal:5432/supa"\n'
        "\n[profile.staging]\n"
        'log = "warn"\n'
    )
    secret_token = secrets.token_urlsafe(40)
    out = run(SUPA, "config", "check", "--config", path, "--profile", "staging",
              env=clean_env(SUPA_ADMIN_TOKEN=secret_token))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("SUPA_")}
    assert "warn" in lines["SUPA_LOG"] and "(config file)" in lines["SUPA_LOG"]
    assert "round-robin" in lines["SUPA_PLACEMENT"]
    assert "(environment)" in lines["SUPA_ADMIN_TOKEN"]
    assert "(default)" in lines["SUPA_API_PORT"] and "8001" in lines["SUPA_API_PORT"]
    assert "postgres://supa:***@db.internal:5432/supa" in lines["SUPA_DATABASE_URL"]
    assert secret_token not in out.stdout and "hunter2" not in out.stdout
    assert "nothing refused" in out.stdout


def test_config_check_under_production_lists_refusals():
    out = run(SUPA, "config", "check", "--profile", "production",
              env=clean_env(SUPA_REDIS_URL="redis://127.0.0.1:6379", SUPA_SERVICE_TOKEN="short"))
    assert out.returncode == 1
    refused = [line for line in out.stdout.splitlines() if line.startswith("production: ")]
    assert len(refused) == 4, out.stdout
    assert any("SUPA_DATABASE_URL" in line for line in refused)
    assert any("SUPA_MASTER_KEY" in line for line in refused)
    assert any("Redis at redis://127.0.0.1:6379 has no password" in line for line in refused)
    assert any("SUPA_SERVICE_TOKEN has 5 bytes" in line for line in refused)
    assert "refused by profile production" in out.stderr


def test_production_refuses_unsafe_settings_before_starting_anything(tmp_path):
    data_dir = tmp_path / "never-created"
    out = run(SUPA, "up", "--profile", "production", "--data-dir", data_dir,
              "--api-port", free_port(), "--gateway-port", free_port(),
              env=clean_env(SUPA_ADMIN_TOKEN="short"))
    assert out.returncode != 0
    refused = [line for line in out.stderr.splitlines() if line.startswith("production: ")]
    assert len(refused) == 3, out.stderr
    assert "embedded database is refused" in refused[0]
    assert "SUPA_MASTER_KEY" in refused[1]
    assert "SUPA_ADMIN_TOKEN has 5 bytes" in refused[2]
    # Nothing was started: no data dir, no cluster.
    assert not data_dir.exists()


def test_production_refuses_a_database_without_fsync(platform, tmp_path):
    # The session platform runs under the `test` profile: its cluster has
    # fsync off, so production refuses it as a management database.
    with platform.client() as api:
        local = next(w for w in api.get("/admin/v1/workers").json() if w["id"] == "local")
    password = (platform.data_dir / "pg_superuser_password").read_text().strip()
    url = f"postgres://supa:{password}@127.0.0.1:{local['port']}/postgres"
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    out = run(SUPA, "up", "--profile", "production", "--data-dir", tmp_path / "d",
              "--api-port", free_port(), "--gateway-port", free_port(),
              env=clean_env(SUPA_DATABASE_URL=url, SUPA_MASTER_KEY=key,
                            SUPA_ADMIN_TOKEN=LONG_TOKEN, SUPA_SERVICE_TOKEN=LONG_TOKEN))
    assert out.returncode != 0
    assert "production: the management database runs with fsync=off" in out.stderr, out.stderr
    assert password not in out.stderr + out.stdout
    # Refused before migrating: that database got no management tables.
    check = run("psql", url, "-Atc", "select count(*) from pg_tables where schemaname = 'public'")
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "0"


def test_the_test_profile_runs_the_cluster_without_fsync(platform):
    from conftest import create_project

    project = create_project(platform, "fsync")
    with platform.client() as api:
        rows = api.post(f"/v1/projects/{project['ref']}/database/query",
                        json={"query": "show fsync"}).json()
    assert rows == [{"fsync": "off"}]


def test_gateway_refuses_unsafe_settings_under_production():
    out = run(SUPA_GATEWAY, "--profile", "production", "--tenant-url", "http://127.0.0.1:9",
              "--service-token", "short", "--redis-url", "redis://127.0.0.1:6379",
              "--port", free_port(), "--admin-port", free_port())
    assert out.returncode != 0
    assert "production: SUPA_SERVICE_TOKEN has 5 bytes" in out.stderr
    assert "production: Redis at redis://127.0.0.1:6379 has no password" in out.stderr


def test_a_profile_without_its_table_is_refused():
    path = config_file('[profile.ci]\nlog = "debug"\n')
    out = run(SUPA, "config", "check", "--config", path, env=clean_env(SUPA_PROFILE="staging"))
    assert out.returncode == 2
    assert 'no [profile.staging] table in the config file; its profiles: ci' in out.stderr
