"""The AWS CDK app (`deploy/aws-cdk`), checked by its own tools: the
TypeScript compiler, `cdk synth` offline (no credentials, no lookups), and
the app's assertion tests on the synthesized template (node:test with
`aws-cdk-lib/assertions`)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "deploy" / "aws-cdk"
BIN = ROOT / "deploy" / "node_modules" / ".bin"


def run(*cmd, **kw):
    # No AWS credentials or profile may leak in: synth must not need them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(CDK_DISABLE_CLI_TELEMETRY="1", CI="true")
    return subprocess.run(cmd, cwd=APP, env=env, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def compiled():
    result = run(str(BIN / "tsc"), "-p", ".")
    assert result.returncode == 0, result.stdout + result.stderr
    return APP / "dist"


def test_cdk_synth_runs_offline(compiled, tmp_path):
    result = run(str(BIN / "cdk"), "synth", "--no-notices", "--quiet", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert not manifest.get("missing"), manifest["missing"]  # no context lookups
    template = json.loads((tmp_path / "Supa.template.json").read_text())
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::ECS::Service", "AWS::RDS::DBCluster", "AWS::ElastiCache::ReplicationGroup",
            "AWS::Lambda::Url", "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "AWS::SecretsManager::Secret"} <= kinds


def test_the_template_assertions_pass(compiled):
    result = run("node", "--test", str(compiled / "test"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 11" in result.stdout, result.stdout[-2000:]


def test_bad_context_is_refused_by_synth(compiled, tmp_path):
    bad = json.loads((APP / "cdk.json").read_text())["context"]["supa"] | {"imageTag": "latest"}
    result = run(str(BIN / "cdk"), "synth", "--no-notices", "--quiet", "--output", str(tmp_path),
                 "--context", f"supa={json.dumps(bad)}")
    assert result.returncode != 0
    assert "supa.imageTag must name a release" in result.stdout + result.stderr
