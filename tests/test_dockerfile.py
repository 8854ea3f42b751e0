"""The Dockerfile against the workspace it builds (no image engine runs
here, so what can drift is checked instead): every member's manifest is
copied into the dependency stage, the stage's stub loop gives cargo a
workspace it loads and resolves (`cargo fetch --locked`, offline), every binary is built and
copied, and the runtime stage stays non-root with a health check."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def members():
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]


def stub_loop():
    """The dependency stage's `RUN for manifest ...` script, as sh runs it."""
    start = DOCKERFILE.index("RUN for manifest")
    end = DOCKERFILE.index("    done\n", start) + len("    done\n")
    return DOCKERFILE[start + len("RUN "):end].replace("\\\n", "\n")


def test_every_member_manifest_is_copied_into_the_dependency_stage():
    copied = set(re.findall(r"^COPY (\S+)/Cargo\.toml \1/$", DOCKERFILE, re.M))
    assert copied == set(members())


def test_the_dependency_stage_resolves_with_stub_sources(tmp_path):
    for path in ["Cargo.toml", "Cargo.lock"] + [f"{m}/Cargo.toml" for m in members()]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    subprocess.run(["sh", "-ec", stub_loop()], cwd=tmp_path, check=True)
    result = subprocess.run(["cargo", "fetch", "--locked", "--offline"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_every_binary_is_built_and_copied_out():
    packages = re.search(r'ENV BINARIES="([^"]+)"', DOCKERFILE).group(1).split()[1::2]
    bins = {}
    for manifest in (ROOT / "bins").glob("*/Cargo.toml"):
        doc = tomllib.loads(manifest.read_text())
        bins[doc["package"]["name"]] = [b["name"] for b in doc.get("bin", [])] or [doc["package"]["name"]]
    assert sorted(packages) == sorted(bins)
    copy = DOCKERFILE[DOCKERFILE.index("mkdir /out"):DOCKERFILE.index("/out/\n")]
    copied = set(re.findall(r"target/release/(\S+)", copy))
    assert copied == {b for names in bins.values() for b in names}


def test_the_runtime_is_distroless_non_root_and_health_checked():
    runtime = DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]
    assert runtime.startswith("\nFROM gcr.io/distroless/")
    assert "USER 65532:65532" in runtime
    assert 'HEALTHCHECK' in runtime and '"/usr/local/bin/supa", "health"' in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"target", ".git", "**/node_modules"} <= set(ignored)
