"""Shared fixtures: the platform started by `supa up` as a subprocess, on
free ports and a throwaway data dir, stopped (with its embedded PostgreSQL)
when the session ends."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPA = ROOT / "target" / "debug" / "supa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    api_url: str
    gateway_url: str
    token: str
    data_dir: Path

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


@pytest.fixture(scope="session")
def platform():
    assert SUPA.exists(), f"{SUPA} is missing: `make pytest` builds it"
    data_dir = Path(tempfile.mkdtemp(prefix="supa-pytest-"))
    api_port = free_port()
    gateway_port = free_port()
    log = open(data_dir.parent / f"{data_dir.name}.log", "w+")
    proc = subprocess.Popen(
        [str(SUPA), "up", "--data-dir", str(data_dir), "--api-port", str(api_port),
         "--gateway-port", str(gateway_port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SUPA_")},
    )
    api_url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"supa up exited with {proc.returncode}:\n{log.read()}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"supa up did not answer /health within 90 s:\n{log.read()}")
        time.sleep(0.2)
    token = (data_dir / "admin_token").read_text().strip()
    try:
        yield Platform(
            api_url=api_url,
            gateway_url=f"http://127.0.0.1:{gateway_port}",
            token=token,
            data_dir=data_dir,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        os.unlink(log.name)
