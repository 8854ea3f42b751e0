"""The wheel, built as `make wheel` builds it (from the debug build here, to
reuse this run's build): a manylinux wheel carrying the bindings, the
`supa` binary and the pytest plugin. Installed with pip into a fresh venv
with nothing but pytest, it runs the example app's tests green from a copy
of the example, away from the source tree."""

import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "notes-app"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([str(ROOT / "scripts" / "wheel.sh"), str(out)], env={**os.environ, "WHEEL_PROFILE": "dev"},
                   check=True, timeout=1800)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A new venv with the wheel and pytest, at the suite's pinned versions."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    # pip takes no extras in a constraints file.
    constraints = root / "constraints.txt"
    constraints.write_text(re.sub(r"\[[\w,]+\]", "", (ROOT / "tests" / "requirements.txt").read_text()))
    subprocess.run([str(root / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "-c", str(constraints), str(wheel), "pytest"], check=True, timeout=900)
    return root


def clean_env(venv):
    """No trace of the source tree: the venv's bin and the system's only."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SUPA_", "PYTHON", "VIRTUAL_ENV", "CARGO", "RUST"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


def test_the_wheel_is_manylinux_and_carries_the_binary_and_the_plugin(wheel):
    name, version, python, abi, platform_tag = wheel.stem.split("-")
    assert (name, python, abi) == ("supa", "py3", "none")
    assert platform_tag.startswith("manylinux_2_") and platform_tag.endswith("_x86_64")
    with zipfile.ZipFile(wheel) as z:
        files = {info.filename: info for info in z.infolist()}
        binary = files["supa/bin/supa"]
        assert binary.external_attr >> 16 & 0o111, "the binary is executable once installed"
        assert {"supa/__init__.py", "supa/platform.py", "supa/pytest_plugin.py"} <= set(files)
        assert any(f.startswith("supa/supa_ffi/") and f.endswith(".so") for f in files)
        (entry_points,) = [f for f in files if f.endswith(".dist-info/entry_points.txt")]
        entries = configparser.ConfigParser()
        entries.read_string(z.read(entry_points).decode())
    assert entries["pytest11"]["supa"] == "supa.pytest_plugin"
    assert entries["console_scripts"]["supa"] == "supa._cli:main"


def test_a_fresh_venv_runs_the_example_apps_tests(venv, tmp_path):
    app = tmp_path / "notes-app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    r = subprocess.run([str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"], cwd=app,
                       env=clean_env(venv), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    # Five: the migrations, found by the plugin from the app's rootdir,
    # are checked by the example's own last test.
    assert "5 passed" in r.stdout


def test_the_console_script_runs_the_shipped_binary(venv):
    r = subprocess.run(["supa", "projects", "bootstrap-sql", "abcdefghijklmnopqrst"], env=clean_env(venv),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'CREATE DATABASE "proj_abcdefghijklmnopqrst" TEMPLATE "supa_template";' in r.stdout
    bad = subprocess.run(["supa", "projects", "bootstrap-sql", "nope"], env=clean_env(venv),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid project ref" in bad.stderr
