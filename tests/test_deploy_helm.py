"""The Helm chart (`deploy/helm/supa`), checked by the tools Kubernetes
operators use: `helm lint` and `helm template` with each values file under
`ci/`, every rendered core object against the Kubernetes API schemas
(kubernetes-validate, strict: unknown fields are errors) of the oldest and
newest supported version, and every custom resource against the
CloudNativePG, Knative and KEDA schemas. Then what the schemas cannot say:
secrets only through Secrets, hardened containers with probes and
resources, and the wiring between the parts."""

import base64
import json
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "supa"
HELM = ROOT / "deploy" / "node_modules" / ".tools" / "helm" / "helm"
VALUES = sorted((CHART / "ci").glob("*.yaml"))
KUBERNETES = ("1.29", "1.35")
RELEASE = "prod"
NAMESPACE = "supa"
WORKLOADS = {"Deployment", "Job"}


def helm(*args, check=True):
    result = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def render(values, *extra):
    out = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values), *extra).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, name, api=None):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
             and (api is None or d["apiVersion"] == api)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module", params=VALUES, ids=lambda p: p.stem)
def rendered(request):
    return request.param, render(request.param)


def test_there_are_values_files_for_each_shape():
    assert {p.stem for p in VALUES} >= {"default-values", "external-values", "knative-values"}


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_helm_lint_passes(values):
    out = helm("lint", str(CHART), "--strict", "-f", str(values)).stdout
    assert "0 chart(s) failed" in out, out


def test_core_objects_match_the_kubernetes_schemas(rendered):
    _, docs = rendered
    core = [d for d in docs if "." not in d["apiVersion"].split("/")[0] or "k8s.io" in d["apiVersion"]]
    assert len(core) >= 8
    for version in KUBERNETES:
        for doc in core:
            kubernetes_validate.validate(doc, version, strict=True)


def test_custom_resources_match_their_crd_schemas(rendered):
    values, docs = rendered
    result = subprocess.run(["node", str(CHART.parent / "validate-crds.mjs")],
                            input=yaml.safe_dump_all(docs), capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and not report["errors"], report["errors"]
    custom = [f"{d['kind']} {d['metadata']['name']}" for d in docs if d["apiVersion"].split("/")[0] in (
        "postgresql.cnpg.io", "serving.knative.dev", "keda.sh")]
    assert sorted(report["checked"]) == sorted(custom) and custom


def test_the_crd_validator_rejects_a_bad_resource():
    bad = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler", "metadata": {"name": "p"},
           "spec": {"instances": "two", "pgbouncer": {"poolMode": "sometimes"}}}
    result = subprocess.run(["node", str(CHART.parent / "validate-crds.mjs")], input=yaml.safe_dump(bad),
                            capture_output=True, text=True, timeout=60)
    errors = json.loads(result.stdout)["errors"]
    assert result.returncode == 1
    assert "required property cluster" in errors[0] and "instances must be integer" in errors[0]


def test_every_container_is_hardened_probed_and_bounded(rendered):
    _, docs = rendered
    checked = 0
    for doc in docs:
        if doc["kind"] not in WORKLOADS and doc["apiVersion"] != "serving.knative.dev/v1":
            continue
        spec = pod_spec(doc)
        assert spec["automountServiceAccountToken"] is False, doc["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in spec["containers"]:
            where = f"{doc['kind']} {doc['metadata']['name']} {c['name']}"
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert "memory" in c["resources"]["limits"], where
            image, _, tag = c["image"].rpartition(":")
            assert image and tag and tag != "latest" and "/" not in tag, where
            if doc["kind"] != "Job":
                assert "livenessProbe" in c and "readinessProbe" in c, where
            checked += 1
    assert checked >= 3


def test_secrets_reach_containers_only_through_secrets(rendered):
    _, docs = rendered
    secretive = re.compile(r"(TOKEN|PASSWORD|SECRET|MASTER_KEY|DATABASE_URL|ACCESS_KEY)")
    seen = set()
    for doc in docs:
        if doc["kind"] not in WORKLOADS and doc["apiVersion"] != "serving.knative.dev/v1":
            continue
        for c in pod_spec(doc)["containers"]:
            for name, e in env_of(c).items():
                if secretive.search(name):
                    assert "secretKeyRef" in e.get("valueFrom", {}), f"{c['name']}: {name} is not from a Secret"
                    seen.add(name)
                if name == "SUPA_REDIS_URL" and "value" in e:
                    # The in-chart Redis: its password comes apart, from the Secret.
                    assert "@" not in e["value"]
                    assert "secretKeyRef" in env_of(c)["SUPA_REDIS_PASSWORD"]["valueFrom"]
    assert {"SUPA_MASTER_KEY", "SUPA_ADMIN_TOKEN", "SUPA_SERVICE_TOKEN", "SUPA_WORKER_ADMIN_PASSWORD"} <= seen


def test_the_gateways_are_reachable_at_both_url_forms_and_scale(rendered):
    values, docs = rendered
    config = yaml.safe_load(values.read_text())
    domain = config["baseDomain"]
    fullname = f"{RELEASE}-supa"
    ingress = find(docs, "Ingress", fullname)
    rules = {r["host"]: r["http"]["paths"] for r in ingress["spec"]["rules"]}
    assert set(rules) == {domain, f"*.{domain}"}
    assert [p["path"] for p in rules[domain]] == ["/project"]
    for paths in rules.values():
        assert paths[0]["backend"]["service"]["name"] == f"{fullname}-gateway"
    gateway = find(docs, "Deployment", f"{fullname}-gateway")
    env = env_of(pod_spec(gateway)["containers"][0])
    assert env["SUPA_TENANT_URL"]["value"] == f"http://{fullname}-tenant-manager:8001"
    assert env["SUPA_BASE_DOMAIN"]["value"] == domain
    assert find(docs, "PodDisruptionBudget", f"{fullname}-gateway")["spec"]["minAvailable"] >= 1
    mode = config.get("gateway", {}).get("autoscaling", {}).get("mode", "hpa")
    scalers = [d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert [d["kind"] for d in scalers] == {"hpa": ["HorizontalPodAutoscaler"], "keda": ["ScaledObject"],
                                            "none": []}[mode]
    assert ("replicas" in gateway["spec"]) == (mode == "none")
    for scaler in scalers:
        assert scaler["spec"]["scaleTargetRef"]["name"] == f"{fullname}-gateway"
    # The gateways and the tenant manager see the same object store.
    tm = find(docs, "Deployment", f"{fullname}-tenant-manager")
    storage = {k: v for k, v in env.items() if k.startswith(("SUPA_STORAGE_", "AWS_"))}
    assert storage == {k: v for k, v in env_of(pod_spec(tm)["containers"][0]).items()
                       if k.startswith(("SUPA_STORAGE_", "AWS_"))}


def test_workers_are_logical_clusters_registered_by_the_job(rendered):
    values, docs = rendered
    config = yaml.safe_load(values.read_text())
    workers = config.get("workers") or yaml.safe_load((CHART / "values.yaml").read_text())["workers"]
    job = find(docs, "Job", f"{RELEASE}-supa-register")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    containers = {c["name"]: c for c in pod_spec(job)["containers"]}
    for w in workers:
        cluster = find(docs, "Cluster", f"{RELEASE}-supa-{w['name']}")
        assert cluster["spec"]["postgresql"]["parameters"]["wal_level"] == "logical"
        assert cluster["spec"]["enableSuperuserAccess"] is True
        poolers = [d for d in docs if d["kind"] == "Pooler" and d["spec"]["cluster"]["name"] == cluster["metadata"]["name"]]
        assert len(poolers) == (1 if w["pooler"]["enabled"] else 0)
        register = containers[f"worker-{w['name']}"]
        args = register["args"]
        assert args[:3] == ["workers", "register", w["name"]]
        assert args[args.index("--host") + 1] == f"{cluster['metadata']['name']}-rw.{NAMESPACE}.svc"
        assert args[args.index("--max-databases") + 1] == str(w["maxDatabases"])
        password = env_of(register)["SUPA_WORKER_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": f"{cluster['metadata']['name']}-superuser", "key": "password"}
    for s in config.get("services", []):
        args = containers[f"upstream-{s['name']}"]["args"]
        assert args == ["projects", "upstream", s["project"], "--service", s["service"],
                        "--http", f"http://{RELEASE}-supa-{s['name']}.{NAMESPACE}.svc.cluster.local"]


def test_standalone_services_are_knative_or_deployments():
    docs = render(CHART / "ci" / "knative-values.yaml")
    knative = {d["metadata"]["name"]: d for d in docs if d["apiVersion"] == "serving.knative.dev/v1"}
    assert set(knative) == {f"{RELEASE}-supa-shop-rest", f"{RELEASE}-supa-shop-fn"}
    for ksvc in knative.values():
        assert ksvc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "0"
        assert ksvc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    rest = pod_spec(knative[f"{RELEASE}-supa-shop-rest"])["containers"][0]
    assert rest["command"] == ["/usr/local/bin/supa-rest"]
    assert env_of(rest)["PGRST_SERVER_PORT"]["value"] == str(rest["ports"][0]["containerPort"])
    assert rest["envFrom"] == [{"secretRef": {"name": "shop-rest-env"}}]
    functions = pod_spec(knative[f"{RELEASE}-supa-shop-fn"])["containers"][0]
    assert functions["image"] == "registry.example.net/shop-functions:2026.12.1"
    assert functions["command"][:4] == ["/usr/local/bin/supa-functions", "start", "--main-service",
                                        "/home/deno/functions/main"]
    auth = find(docs, "Deployment", f"{RELEASE}-supa-blog-auth")
    assert auth["spec"]["replicas"] == 2
    assert pod_spec(auth)["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
    service = find(docs, "Service", f"{RELEASE}-supa-blog-storage", api="v1")
    assert service["spec"]["selector"]["supa.dev/service"] == "blog-storage"


def test_generated_secrets_are_strong_and_kept():
    docs = render(CHART / "ci" / "default-values.yaml")
    secret = find(docs, "Secret", f"{RELEASE}-supa")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert len(base64.b64decode(data["master-key"], validate=True)) == 32
    assert len(data["admin-token"]) >= 32 and len(data["service-token"]) >= 32
    assert data["admin-token"] != data["service-token"]
    # Nothing generated when the operator brings the Secret.
    docs = render(CHART / "ci" / "external-values.yaml")
    assert not [d for d in docs if d["kind"] == "Secret"]


BAD = {
    "latest": (["--set", "image.tag=latest"], "/image/tag"),
    "no-bucket": (["--set", "storage.s3.bucket="], "/storage/s3/bucket"),
    "file-without-claim": (["--set", "storage.backend=file"], "/storage/file/existingClaim"),
    "short-token": (["--set", "secrets.adminToken=short"], "/secrets/adminToken"),
    "bad-master-key": (["--set", "secrets.masterKey=not-base64"], "/secrets/masterKey"),
    "typo": (["--set", "gatway.replicas=3"], "gatway"),
    "wal-level": (["--set", "workers[0].parameters.wal_level=replica"], "wal_level"),
    "bad-domain": (["--set", "baseDomain=https://x"], "/baseDomain"),
    "knative-auth": (["--set", "knative.enabled=true", "--set-json",
                      'services=[{"name":"a","project":"abcdefghijklmnopqrst","service":"auth","knative":true,"envSecret":"e"}]'],
                     "/services/0/service"),
    "knative-off": (["--set-json",
                     'services=[{"name":"a","project":"abcdefghijklmnopqrst","service":"rest","knative":true,"envSecret":"e"}]'],
                    "knative.enabled is false"),
    "external-db-unnamed": (["--set", "managementDatabase.mode=external"], "/managementDatabase/external/existingSecret"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_values_are_refused_with_the_setting_named(case):
    extra, needle = BAD[case]
    result = helm("template", RELEASE, str(CHART), "-f", str(CHART / "ci" / "default-values.yaml"), *extra,
                  check=False)
    assert result.returncode != 0
    assert needle in result.stderr, result.stderr
