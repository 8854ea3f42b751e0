"""A Supabase app's mixed workload with a client-side ledger, for the fault
drills: supabase-py clients write rows through REST, sign users up and in,
upload objects, call an edge function and listen to Postgres changes, each
on its own thread, all through the load balancer.

Every write carries an id of its own. The ledger keeps what the client saw
acknowledged and what it did not (an error or a timeout: it may or may not
have happened), with the drill phase it was sent in. `check()` compares the
ledger with the database afterwards: every acknowledged write must be
there, none twice, and nothing the client never sent."""

import asyncio
import hashlib
import os
import secrets
import threading
import time
import uuid
from collections import defaultdict

from supabase import AsyncClientOptions, ClientOptions, acreate_client, create_client

SCHEMA = """
create table ledger (id uuid not null, writer text not null, at timestamptz not null default now());
alter publication supabase_realtime add table ledger;
create function slow(seconds float8) returns text language sql as $$ select pg_sleep(seconds)::text || 'slept' $$;
"""

ECHO = """
Deno.serve(async (req) => Response.json({ echo: await req.json() }));
"""

KINDS = ("rest", "auth", "storage", "functions", "realtime")


class Stats:
    """Successes and errors per phase and kind, and when each kind last
    succeeded."""

    def __init__(self):
        self.phase = "start"
        self.lock = threading.Lock()
        self.counts = defaultdict(lambda: {"ok": 0, "errors": 0, "first_error": None})
        self.last_ok = {}

    def note(self, kind, ok, error=None):
        with self.lock:
            seen = self.counts[(self.phase, kind)]
            if ok:
                seen["ok"] += 1
                self.last_ok[kind] = time.monotonic()
            else:
                seen["errors"] += 1
                seen["first_error"] = seen["first_error"] or error[:300]

    def of(self, phase, kind):
        with self.lock:
            return dict(self.counts[(phase, kind)])

    def errors(self, phase):
        with self.lock:
            return {kind: self.counts[(phase, kind)]["errors"] for kind in KINDS
                    if self.counts[(phase, kind)]["errors"]}

    def ok_since(self, kinds, t):
        with self.lock:
            return all(self.last_ok.get(kind, 0.0) > t for kind in kinds)


def failure(e):
    return f"{type(e).__name__}: {e}"


class Workload:
    """The app against one project (`project["url"]` through the load
    balancer). `kinds` picks what it does; REST alone for a project whose
    other services are not the drill's subject."""

    def __init__(self, project, kinds=KINDS):
        self.project, self.kinds = project, kinds
        self.stats = Stats()
        # id -> phase it was sent in; acknowledged or not.
        self.acked = {kind: {} for kind in ("rest", "auth", "storage")}
        self.unknown = {kind: {} for kind in ("rest", "auth", "storage")}
        self.digests = {}
        self.heard = set()
        self.running = True
        self.threads = []
        options = ClientOptions(postgrest_client_timeout=10, storage_client_timeout=10,
                                function_client_timeout=10)
        self.client = lambda: create_client(project["url"], project["secret_key"], options)
        loops = {"rest": self.rest, "auth": self.auth, "storage": self.storage,
                 "functions": self.functions, "realtime": self.realtime}
        self.subscribed = threading.Event()
        for kind in kinds:
            thread = threading.Thread(target=loops[kind], name=f"drill-{kind}", daemon=True)
            thread.start()
            self.threads.append(thread)
        if "realtime" in kinds:
            assert self.subscribed.wait(30), "the realtime subscriber did not join"

    @property
    def phase(self):
        return self.stats.phase

    @phase.setter
    def phase(self, name):
        self.stats.phase = name

    def write(self, kind, key, action):
        """Runs one write of `key`, filed in the ledger by its outcome."""
        phase = self.phase
        try:
            action()
        except Exception as e:  # noqa: BLE001: whatever the app sees
            self.unknown[kind][key] = phase
            self.stats.note(kind, False, failure(e))
            return False
        self.acked[kind][key] = phase
        self.stats.note(kind, True)
        return True

    def read(self, kind, action):
        try:
            action()
        except Exception as e:  # noqa: BLE001
            self.stats.note(kind, False, failure(e))
            return
        self.stats.note(kind, True)

    def rest(self):
        db = self.client()
        n = 0
        while self.running:
            row = str(uuid.uuid4())
            if self.write("rest", row, lambda: db.table("ledger").insert(
                    {"id": row, "writer": self.project["name"]}).execute()):
                n += 1
                if n % 5 == 0:
                    def read_back():
                        got = db.table("ledger").select("id").eq("id", row).execute().data
                        assert got == [{"id": row}], got
                    self.read("rest", read_back)
            time.sleep(0.01)

    def auth(self):
        db = self.client()
        while self.running:
            email = f"drill-{uuid.uuid4().hex[:12]}@example.com"
            password = secrets.token_hex(8)
            if self.write("auth", email, lambda: db.auth.sign_up({"email": email, "password": password})):
                def sign_in():
                    session = self.client().auth.sign_in_with_password(
                        {"email": email, "password": password}).session
                    assert session.access_token
                self.read("auth", sign_in)
            time.sleep(0.2)

    def storage(self):
        bucket = self.client().storage.from_("drill")
        n = 0
        while self.running:
            name = f"{uuid.uuid4().hex}.bin"
            body = os.urandom(1024 + n % 3072)
            if self.write("storage", name, lambda: bucket.upload(name, body)):
                self.digests[name] = hashlib.sha256(body).hexdigest()
                n += 1
                if n % 5 == 0:
                    def download():
                        assert bucket.download(name) == body
                    self.read("storage", download)
            time.sleep(0.05)

    def functions(self):
        fns = self.client().functions
        n = 0
        while self.running:
            n += 1

            def call():
                got = fns.invoke("echo", invoke_options={"body": {"n": n}})
                assert b'"n":%d' % n in got, got
            self.read("functions", call)
            time.sleep(0.05)

    def realtime(self):
        """A subscriber to the ledger's inserts; it reconnects as realtime-py
        does. Each event is a success of the kind."""
        async def listen():
            client = await acreate_client(self.project["url"], self.project["secret_key"], AsyncClientOptions(
                realtime={"max_retries": 1000, "initial_backoff": 0.5}))

            def on_insert(payload):
                self.heard.add(payload["data"]["record"]["id"])
                self.stats.note("realtime", True)

            def on_state(state, error):
                if str(state).endswith("SUBSCRIBED"):
                    self.subscribed.set()
                elif error is not None:
                    self.stats.note("realtime", False, f"{state}: {error}")

            await client.channel("drill").on_postgres_changes("INSERT", on_insert, table="ledger") \
                .subscribe(on_state)
            while self.running:
                await asyncio.sleep(0.1)
            await client.realtime.close()
        asyncio.run(listen())

    def stop(self):
        self.running = False
        for thread in self.threads:
            thread.join(30)

    def check(self, sql, download):
        """The ledger against the database (`sql(query)` runs a query in the
        project): per kind, the writes acknowledged, lost (acknowledged,
        missing), doubled, stray (never sent) and unacknowledged but
        written. `download(name)` reads an object back."""
        present = {
            "rest": sql("select id::text as k, count(*) as n from ledger group by id"),
            "auth": sql("select email as k, count(*) as n from auth.users where email like 'drill-%' group by email"),
            "storage": sql("select name as k, count(*) as n from storage.objects where bucket_id = 'drill' "
                           "group by name"),
        }
        report = {}
        for kind in (k for k in ("rest", "auth", "storage") if k in self.kinds):
            counts = {r["k"]: r["n"] for r in present[kind]}
            acked, unknown = self.acked[kind], self.unknown[kind]
            lost = defaultdict(int)
            for key, phase in acked.items():
                if key not in counts:
                    lost[phase] += 1
            report[kind] = {
                "acknowledged": len(acked), "unacknowledged": len(unknown),
                "lost": dict(lost),
                "twice": {k: n for k, n in counts.items() if n > 1},
                "stray": sorted(set(counts) - set(acked) - set(unknown)),
                "unacknowledged_but_written": len(set(unknown) & set(counts)),
            }
        if "storage" in self.kinds:
            # Acknowledged objects read back whole (a sample of 50).
            names = list(self.acked["storage"])[-50:]
            report["storage"]["corrupt"] = [n for n in names
                                            if hashlib.sha256(download(n)).hexdigest() != self.digests[n]]
        if "realtime" in self.kinds:
            acked = set(self.acked["rest"])
            report["realtime"] = {"inserts_heard": len(self.heard & acked), "of": len(acked)}
        return report
