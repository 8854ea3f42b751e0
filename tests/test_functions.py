"""Edge functions through `supa up`: deployed with Supabase's Management
API shapes (multipart), invoked through the gateway with the real
`supabase` client, with the project's secrets and keys in their
environment, `verify_jwt` on and off, a callback into `/rest/v1` with
npm's `@supabase/supabase-js` under the caller's JWT, isolation between
projects, redeploys under load and scale to zero."""

import concurrent.futures
import json
import os
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from supabase import ClientOptions, create_client
from supabase_functions.errors import FunctionsHttpError

from conftest import configure_auth, create_project

ECHO = """
Deno.serve(async (req) => {
  const url = new URL(req.url);
  const bytes = new Uint8Array(await req.arrayBuffer());
  if (url.searchParams.get("fail")) {
    return Response.json({ error: "asked to fail" }, { status: Number(url.searchParams.get("fail")) });
  }
  if (req.headers.get("content-type") === "application/octet-stream") {
    return new Response(bytes.map((b) => 255 - b), { headers: { "content-type": "application/octet-stream" } });
  }
  return Response.json({
    method: req.method,
    path: url.pathname,
    query: url.search,
    header: req.headers.get("x-custom"),
    type: req.headers.get("content-type"),
    body: new TextDecoder().decode(bytes),
  }, { headers: { "x-from-function": "yes" } });
});
"""


def deploy(platform, project, slug, files, verify_jwt=None, entrypoint="index.ts", import_map=None):
    """Deploys `files` ({path: text}) as Supabase's CLI does; the response."""
    metadata = {"entrypoint_path": entrypoint, "name": slug}
    if verify_jwt is not None:
        metadata["verify_jwt"] = verify_jwt
    if import_map:
        metadata["import_map_path"] = import_map
    parts = [("metadata", (None, json.dumps(metadata), "application/json"))]
    parts += [("file", (path, text.encode(), "application/typescript")) for path, text in files.items()]
    with platform.client() as api:
        return api.post(f"/v1/projects/{project['ref']}/functions/deploy", params={"slug": slug},
                        files=parts, timeout=120)


def client(project, key="publishable_key", **options):
    return create_client(project["url"], project[key], ClientOptions(**options))


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "functions")
    r = deploy(platform, created, "echo", {"index.ts": ECHO})
    assert r.status_code == 201, r.text
    return created


def test_deploy_answers_as_supabase_and_versions_count_up(platform, project):
    r = deploy(platform, project, "versions", {"index.ts": "Deno.serve(() => new Response('v1'));"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["slug"] == "versions" and first["status"] == "ACTIVE" and first["version"] == 1
    assert first["verify_jwt"] is True and first["import_map"] is False
    assert first["entrypoint_path"] == "index.ts"
    second = deploy(platform, project, "versions", {"index.ts": "Deno.serve(() => new Response('v2'));"},
                    verify_jwt=False).json()
    assert (second["id"], second["version"], second["verify_jwt"]) == (first["id"], 2, False)
    assert second["created_at"] == first["created_at"] <= second["updated_at"]
    with platform.client() as api:
        listed = api.get(f"/v1/projects/{project['ref']}/functions").json()
        assert {f["slug"]: f["version"] for f in listed}["versions"] == 2
        one = api.get(f"/v1/projects/{project['ref']}/functions/versions").json()
        assert one == second
        body = api.get(f"/v1/projects/{project['ref']}/functions/versions/body")
        assert body.status_code == 200 and body.headers["content-type"].startswith("multipart/form-data")
        assert b"Deno.serve(() => new Response('v2'));" in body.content and b"supa-bundle" not in body.content
        patched = api.patch(f"/v1/projects/{project['ref']}/functions/versions", json={"name": "Versions"}).json()
        assert (patched["name"], patched["version"]) == ("Versions", 2)
        assert api.delete(f"/v1/projects/{project['ref']}/functions/versions").status_code == 200
        assert api.get(f"/v1/projects/{project['ref']}/functions/versions").status_code == 404


def test_bad_deploys_are_refused_with_the_reason(platform, project):
    broken = deploy(platform, project, "broken", {"index.ts": "Deno.serve(() => {"})
    assert broken.status_code == 400 and broken.json()["message"], broken.text
    missing = deploy(platform, project, "missing", {"index.ts": ""}, entrypoint="main.ts")
    assert missing.status_code == 400 and "not among the files" in missing.json()["message"]
    escape = deploy(platform, project, "escape", {"../index.ts": "Deno.serve(() => new Response('x'));"},
                    entrypoint="index.ts")
    assert escape.status_code == 400, escape.text
    outside = deploy(platform, project, "outside",
                     {"index.ts": "import x from '/etc/hostname' with { type: 'text' };\n"
                                  "Deno.serve(() => new Response(x));"})
    assert outside.status_code == 400 and "outside the function's files" in outside.json()["message"]
    bad_slug = deploy(platform, project, "9lives", {"index.ts": "Deno.serve(() => new Response('x'));"})
    assert bad_slug.status_code == 400 and "slug" in bad_slug.json()["message"]
    with platform.client() as api:
        no_metadata = api.post(f"/v1/projects/{project['ref']}/functions/deploy", params={"slug": "x"},
                               files=[("file", ("index.ts", b"x"))])
        assert no_metadata.status_code == 400 and "metadata" in no_metadata.json()["message"]
        not_multipart = api.post(f"/v1/projects/{project['ref']}/functions/deploy", params={"slug": "x"},
                                 json={"entrypoint_path": "index.ts"})
        assert not_multipart.status_code == 400
        assert api.get(f"/v1/projects/{project['ref']}/functions/nope").status_code == 404


def test_the_client_invokes_with_bodies_headers_methods_and_errors(project):
    functions = client(project).functions
    posted = json.loads(functions.invoke("echo", {"body": {"name": "ann"}, "headers": {"x-custom": "42"}}))
    assert posted["method"] == "POST" and json.loads(posted["body"]) == {"name": "ann"}
    assert (posted["header"], posted["type"], posted["path"]) == ("42", "application/json", "/echo")
    text = json.loads(functions.invoke("echo/sub/path?x=1", {"body": "plain words", "method": "PUT"}))
    assert (text["method"], text["body"], text["type"]) == ("PUT", "plain words", "text/plain")
    assert (text["path"], text["query"]) == ("/echo/sub/path", "?x=1")
    assert json.loads(functions.invoke("echo", {"method": "GET"}))["method"] == "GET"
    assert json.loads(functions.invoke("echo", {"method": "DELETE"}))["method"] == "DELETE"
    raw = bytes(range(256))
    assert functions.invoke("echo", {"body": raw}) == bytes(255 - b for b in raw)
    with pytest.raises(FunctionsHttpError) as failed:
        functions.invoke("echo?fail=418", {"body": {}})
    assert failed.value.status == 418
    with pytest.raises(FunctionsHttpError) as missing:
        functions.invoke("no-such-function")
    assert missing.value.status == 404


def test_responses_stream_as_server_sent_events(platform, project):
    source = """Deno.serve(() => {
      let n = 0;
      const body = new ReadableStream({
        async pull(c) {
          if (n === 3) { c.close(); return; }
          if (n > 0) await new Promise((r) => setTimeout(r, 300));
          c.enqueue(new TextEncoder().encode(`data: ${n++}\\n\\n`));
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    });"""
    assert deploy(platform, project, "events", {"index.ts": source}).status_code == 201
    arrivals = []
    with httpx.stream("GET", f"{project['url']}/functions/v1/events",
                      headers={"apikey": project["publishable_key"]}, timeout=30) as r:
        assert r.headers["content-type"] == "text/event-stream"
        started = time.monotonic()
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append((line, time.monotonic() - started))
    assert [a for a, _ in arrivals] == ["data: 0", "data: 1", "data: 2"]
    # Each event arrives when it is sent, not with the last one.
    assert arrivals[0][1] < 0.25 and arrivals[2][1] >= 0.55, arrivals


def test_an_import_map_resolves_bare_specifiers_at_deploy(platform, project):
    files = {
        "index.ts": "import { shout } from 'shout';\nDeno.serve(() => new Response(shout('mapped')));",
        "lib/shout.ts": "export const shout = (s: string) => s.toUpperCase();",
        "import_map.json": json.dumps({"imports": {"shout": "./lib/shout.ts"}}),
    }
    r = deploy(platform, project, "mapped", files, import_map="import_map.json")
    assert r.status_code == 201, r.text
    assert (r.json()["import_map"], r.json()["import_map_path"]) == (True, "import_map.json")
    assert client(project).functions.invoke("mapped") == b"MAPPED"
    unmapped = deploy(platform, project, "unmapped", files)
    assert unmapped.status_code == 400, "without the map, the bare specifier does not resolve"


def test_verify_jwt_on_needs_a_project_jwt_and_off_lets_webhooks_in(platform, project):
    url = f"{project['url']}/functions/v1/echo"
    assert httpx.post(url).json() == {"code": 401, "message": "Missing authorization header"}
    forged = httpx.post(url, headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401 and forged.json()["message"] == "Invalid JWT"
    other = create_project(platform, "functions-other")
    stranger = httpx.post(url, headers={"apikey": other["publishable_key"]})
    assert stranger.status_code in (401, 404)
    r = deploy(platform, project, "webhook", {"index.ts": "Deno.serve(async (r) => new Response('got ' + await r.text()));"},
               verify_jwt=False)
    assert r.status_code == 201, r.text
    hook = httpx.post(f"{project['url']}/functions/v1/webhook", content=b"event")
    assert (hook.status_code, hook.text) == (200, "got event")


def test_secrets_and_the_projects_variables_reach_the_function(platform, project):
    source = """Deno.serve(() => Response.json(Object.fromEntries(
      ["GREETING", "SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SERVICE_ROLE_KEY",
       "SUPABASE_SECRET_KEY", "SUPABASE_DB_URL", "HOME", "PATH"].map((k) => {
        try { return [k, Deno.env.get(k) ?? null]; } catch (e) { return [k, e.name]; }
      }))));"""
    assert deploy(platform, project, "env", {"index.ts": source}).status_code == 201
    with platform.client() as api:
        api.post(f"/v1/projects/{project['ref']}/secrets", json=[{"name": "GREETING", "value": "hello"}])
    env = json.loads(client(project).functions.invoke("env"))
    assert env["GREETING"] == "hello"
    assert env["SUPABASE_URL"] == project["url"]
    assert env["SUPABASE_ANON_KEY"] == env["SUPABASE_PUBLISHABLE_KEY"] == project["publishable_key"]
    assert env["SUPABASE_SERVICE_ROLE_KEY"] == env["SUPABASE_SECRET_KEY"] == project["secret_key"]
    assert env["SUPABASE_DB_URL"].startswith(f"postgresql://{project['ref']}_functions:")
    # Nothing of the server's own environment.
    assert env["HOME"] == "NotCapable" and env["PATH"] == "NotCapable"
    with platform.client() as api:
        api.post(f"/v1/projects/{project['ref']}/secrets", json=[{"name": "GREETING", "value": "changed"}])
    changed_at = time.monotonic()
    while json.loads(client(project).functions.invoke("env"))["GREETING"] != "changed":
        assert time.monotonic() - changed_at < 1, "a changed secret reaches new requests within 1 s"
        time.sleep(0.05)


def test_a_function_calls_the_rest_api_with_supabase_js_under_the_callers_jwt(platform, project):
    configure_auth(platform, project, mailer_autoconfirm=True)
    with platform.client() as api:
        r = api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": """
            create table notes (id serial primary key, owner uuid not null default auth.uid(), body text);
            alter table notes enable row level security;
            create policy own on notes for all to authenticated using (owner = auth.uid()) with check (owner = auth.uid());
            grant all on notes to authenticated; grant usage on sequence notes_id_seq to authenticated;"""})
        assert r.status_code == 201, r.text
    source = """import { createClient } from "npm:@supabase/supabase-js@2";
Deno.serve(async (req) => {
  const db = createClient(Deno.env.get("SUPABASE_URL"), Deno.env.get("SUPABASE_ANON_KEY"), {
    global: { headers: { Authorization: req.headers.get("Authorization") } },
    auth: { persistSession: false },
  });
  const { data, error } = await db.from("notes").select("body").order("id");
  return Response.json({ data, error });
});"""
    r = deploy(platform, project, "notes", {"index.ts": source})
    assert r.status_code == 201, r.text
    users = []
    for name in ("ann", "bob"):
        c = client(project)
        c.auth.sign_up({"email": f"{name}-{uuid.uuid4().hex[:6]}@example.com", "password": "correct horse"})
        c.table("notes").insert({"body": f"{name}'s note"}).execute()
        users.append(c)
    # Each user's function call reads what row level security lets them.
    assert json.loads(users[0].functions.invoke("notes")) == {"data": [{"body": "ann's note"}], "error": None}
    assert json.loads(users[1].functions.invoke("notes")) == {"data": [{"body": "bob's note"}], "error": None}
    anonymous = json.loads(client(project).functions.invoke("notes"))
    assert anonymous["data"] in ([], None)


def test_one_projects_function_cannot_read_anothers_environment_or_files(platform, project):
    other = create_project(platform, "functions-b")
    with platform.client() as api:
        api.post(f"/v1/projects/{other['ref']}/secrets", json=[{"name": "B_ONLY", "value": "b-secret"}])
    assert deploy(platform, other, "b", {"index.ts": "Deno.serve(() => new Response('b'));",
                                          "data.txt": "b's file"}).status_code == 201
    assert client(other).functions.invoke("b") == b"b"
    b_files = platform.functions_dir / "runtime" / "bundles" / other["ref"]
    target = next(b_files.rglob("data.txt"))
    source = """Deno.serve(async (req) => {
      const path = new URL(req.url).searchParams.get("path");
      const tryIt = async (f) => { try { return await f(); } catch (e) { return e.name; } };
      return Response.json({
        env: await tryIt(() => Deno.env.get("B_ONLY") ?? null),
        file: await tryIt(() => Deno.readTextFile(path)),
        write: await tryIt(() => Deno.writeTextFile("/tmp/supa-fn-write-test", "x")),
        run: await tryIt(async () => { await new Deno.Command("/bin/true").output(); return "ran"; }),
      });
    });"""
    assert deploy(platform, project, "snoop", {"index.ts": source}).status_code == 201
    seen = json.loads(client(project).functions.invoke(f"snoop?path={target}", {"method": "GET"}))
    assert seen == {"env": "NotCapable", "file": "NotCapable", "write": "NotCapable", "run": "NotCapable"}


def test_a_function_cannot_reach_the_cloud_metadata_service(platform, project):
    """SSRF through a function: the instance metadata endpoints (the
    host's credentials on AWS, ECS and GCP) are refused by address, in any
    spelling, and by their well-known names; the rest of the network is
    open, as on Supabase."""
    source = """Deno.serve(async () => {
      const tryIt = async (u) => {
        try { await fetch(u, { signal: AbortSignal.timeout(2000) }); return "fetched"; }
        catch (e) { return e.name; }
      };
      const urls = ["http://169.254.169.254/latest/meta-data/", "http://169.254.170.2/v2/credentials",
                    "http://0xa9fea9fe/", "http://[fd00:ec2::254]/", "http://metadata.google.internal/",
                    "http://instance-data/latest/"];
      const seen = {};
      for (const u of urls) seen[u] = await tryIt(u);
      return Response.json(seen);
    });"""
    assert deploy(platform, project, "ssrf", {"index.ts": source}).status_code == 201
    seen = json.loads(client(project).functions.invoke("ssrf", {"method": "GET"}))
    assert set(seen.values()) == {"NotCapable"}, seen
    # Its own project's API stays reachable (the caller's key, through the gateway).
    assert client(project).functions.invoke("echo", {"body": {"a": 1}})


def test_a_redeploy_under_load_fails_no_request(platform, project):
    body = "Deno.serve(() => new Response('{v}'));"
    assert deploy(platform, project, "rolling", {"index.ts": body.format(v="v1")}, verify_jwt=False).status_code == 201
    url = f"{project['url']}/functions/v1/rolling"
    answers, stop = [], threading.Event()

    def load():
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.get(url)
                answers.append((r.status_code, r.text))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = [pool.submit(load) for _ in range(4)]
        time.sleep(0.5)
        assert deploy(platform, project, "rolling", {"index.ts": body.format(v="v2")}).status_code == 201
        time.sleep(1.0)
        stop.set()
        for r in running:
            r.result()
    assert answers and all(status == 200 and text in ("v1", "v2") for status, text in answers), \
        {a for a in answers if a[0] != 200}
    assert answers[-1] == (200, "v2")
    # Once the new version answers, the old one never does again.
    first_v2 = answers.index((200, "v2"))
    assert all(text == "v2" for _, text in answers[first_v2 + 4:])


def deno_processes_of(ref):
    """Deno worker processes running a bundle of project `ref`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(ref.encode() in part and b"bundles" in part for part in cmdline):
            found.append(int(pid))
    return found


def test_workers_scale_to_zero_and_logs_are_kept(platform, project):
    functions = client(project).functions
    assert json.loads(functions.invoke("echo", {"body": {"n": 1}}))["method"] == "POST"
    assert deno_processes_of(project["ref"]), "a worker runs after a request"
    deadline = time.monotonic() + 15
    while deno_processes_of(project["ref"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deno_processes_of(project["ref"]) == [], "idle workers exit (SUPA_FUNCTIONS_IDLE=2)"
    # The next request starts one again.
    assert json.loads(functions.invoke("echo", {"body": {"n": 2}}))["method"] == "POST"
    deadline = time.monotonic() + 5
    with httpx.Client(base_url=platform.api_url, headers={"Authorization": f"Bearer {platform.token}"}) as api:
        while True:
            events = api.get(f"/v1/projects/{project['ref']}/functions/echo/logs", params={"limit": 50}).json()["result"]
            kinds = {e["event_type"] for e in events}
            if {"Boot", "Invocation", "Shutdown"} <= kinds or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert {"Boot", "Invocation", "Shutdown"} <= kinds, events
    invocation = next(e for e in events if e["event_type"] == "Invocation")
    assert (invocation["status_code"], invocation["method"]) == (200, "POST")
    assert isinstance(invocation["execution_time_ms"], int)


def test_the_cli_creates_deploys_lists_reads_logs_and_deletes(platform, project, tmp_path):
    import subprocess
    from conftest import SUPA
    functions_dir = tmp_path / "supabase" / "functions"
    made = subprocess.run([str(SUPA), "functions", "new", "greet", "--dir", str(functions_dir)],
                          capture_output=True, text=True, check=True)
    assert "greet/index.ts" in made.stdout
    (functions_dir / "greet" / "lib").mkdir()
    (functions_dir / "greet" / "lib" / "shout.ts").write_text("export const shout = (s: string) => s.toUpperCase();")
    source = (functions_dir / "greet" / "index.ts").read_text()
    (functions_dir / "greet" / "index.ts").write_text(
        "import { shout } from './lib/shout.ts';\n" + source.replace("`Hello ${name}!`", "shout(`Hello ${name}!`)"))
    ref = project["ref"]
    deployed = platform.cli("functions", "deploy", ref, "greet", "--dir", str(functions_dir))
    assert "Deployed greet version 1 (2 files)" in deployed.stdout
    answer = json.loads(client(project).functions.invoke("greet", {"body": {"name": "cli"}}))
    assert answer == {"message": "HELLO CLI!"}
    listed = platform.cli("functions", "list", ref).stdout
    assert "greet" in listed and "ACTIVE" in listed
    deadline = time.monotonic() + 5
    while "Invocation" not in (logs := platform.cli("functions", "logs", ref, "greet").stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)
    assert "POST | 200 | greet" in logs
    assert "Deleted function greet" in platform.cli("functions", "delete", ref, "greet").stdout
    gone = platform.cli("functions", "delete", ref, "greet", check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr


def test_wait_until_finishes_background_work_after_the_response(platform, project):
    source = """Deno.serve(() => {
      EdgeRuntime.waitUntil(new Promise((r) => setTimeout(r, 1500)).then(() => console.log("background done")));
      return new Response("answered");
    });"""
    assert deploy(platform, project, "later", {"index.ts": source}).status_code == 201
    started = time.monotonic()
    assert client(project).functions.invoke("later") == b"answered"
    assert time.monotonic() - started < 1.0, "the response does not wait for the background work"
    deadline = time.monotonic() + 5
    with platform.client() as api:
        while True:
            events = api.get(f"/v1/projects/{project['ref']}/functions/later/logs").json()["result"]
            if any(e["event_message"] == "background done" for e in events):
                break
            assert time.monotonic() < deadline, events
            time.sleep(0.2)
