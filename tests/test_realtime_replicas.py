"""Realtime across two `supa-gateway` processes sharing one real Redis
(and the `supa up` of the suite): clients on different gateways share a
channel's broadcasts and presence, and when the gateway reading a
project's replication slot is killed, the other takes the slot over
within 5 s and the change stream goes on."""

import asyncio
import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from supabase import acreate_client

from conftest import ROOT, create_project, free_port, stop, until, wait_for_port

GATEWAY = ROOT / "target" / "debug" / "supa-gateway"


def start_gateway(platform, redis_server):
    token = platform.service_token
    port = free_port()
    # SUPA_KEEP_LOG keeps each gateway's log in a temp file.
    log = (tempfile.NamedTemporaryFile(prefix=f"supa-gateway-{port}-", suffix=".log", delete=False)
           if os.environ.get("SUPA_KEEP_LOG") else subprocess.DEVNULL)
    proc = subprocess.Popen(
        [str(GATEWAY), "--tenant-url", platform.api_url, "--service-token", token,
         "--redis-url", redis_server.url, "--port", str(port), "--admin-port", str(free_port()),
         "--bind", "127.0.0.1", "--realtime-slot-grace", "2",
         "--log", "info,supa_realtime=debug" if log is not subprocess.DEVNULL else "warn"],
        stdout=log, stderr=log,
    )
    wait_for_port(port, proc, "supa-gateway")
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_gateways(platform, redis_server):
    started = [start_gateway(platform, redis_server) for _ in range(2)]
    try:
        yield started
    finally:
        for proc, _ in started:
            if proc.poll() is None:
                stop(proc)


def redis_get(redis_server, key):
    return subprocess.run(["redis-cli", "-u", redis_server.url, "GET", key],
                          capture_output=True, text=True, check=True).stdout.strip()


def sql(platform, ref, query):
    with platform.client() as api:
        r = api.post(f"/v1/projects/{ref}/database/query", json={"query": query})
        assert r.status_code == 201, r.text


def test_broadcast_and_presence_span_gateways(platform, two_gateways):
    project = create_project(platform, "realtime-replicas")
    (_, url1), (_, url2) = two_gateways

    async def main():
        a = await acreate_client(f"{url1}/project/{project['ref']}", project["publishable_key"])
        b = await acreate_client(f"{url2}/project/{project['ref']}", project["publishable_key"])
        heard_a, heard_b = [], []
        ca = a.channel("lobby", {"config": {"presence": {"key": "ann"}}})
        ca.on_broadcast("say", lambda p: heard_a.append(p))
        ca.on_presence_sync(lambda: None)
        await ca.subscribe()
        await ca.track({"status": "here"})
        cb = b.channel("lobby", {"config": {"presence": {"key": "bob"}}})
        cb.on_broadcast("say", lambda p: heard_b.append(p))
        cb.on_presence_sync(lambda: None)
        await cb.subscribe()
        # bob's gateway learns ann's presence from ann's gateway.
        assert await until(5, lambda: "ann" in cb.presence.state), cb.presence.state
        await cb.track({"status": "also here"})
        assert await until(5, lambda: "bob" in ca.presence.state), ca.presence.state
        await ca.send_broadcast("say", {"text": "hi from 1"})
        await cb.send_broadcast("say", {"text": "hi from 2"})
        assert await until(5, lambda: heard_a and heard_b)
        assert [m["payload"]["text"] for m in heard_b] == ["hi from 1"]
        assert [m["payload"]["text"] for m in heard_a] == ["hi from 2"]
        # ann leaves: bob's gateway drops her presence.
        await a.remove_all_channels()
        assert await until(5, lambda: "ann" not in cb.presence.state), cb.presence.state
        await b.remove_all_channels()

    asyncio.run(main())


def test_the_slot_reader_fails_over_within_five_seconds(platform, redis_server, two_gateways):
    project = create_project(platform, "realtime-failover",
                             "create table t (id int primary key); "
                             "alter publication supabase_realtime add table t;")
    ref = project["ref"]
    (proc1, url1), (_, url2) = two_gateways
    lease = f"supa:realtime:lease:{ref}"

    async def main():
        first = await acreate_client(f"{url1}/project/{ref}", project["publishable_key"])
        got1 = []
        await first.channel("t").on_postgres_changes("INSERT", lambda p: got1.append(p), table="t").subscribe()
        # The first gateway with a channel reads the slot.
        assert await until(5, lambda: redis_get(redis_server, lease) != "")
        holder = redis_get(redis_server, lease)
        second = await acreate_client(f"{url2}/project/{ref}", project["publishable_key"])
        got2 = []
        await second.channel("t").on_postgres_changes("INSERT", lambda p: got2.append((time.monotonic(), p)),
                                                      table="t").subscribe()
        # Rows keep coming, one every 100 ms, from another thread.
        inserted, stop_writing = [], threading.Event()

        def writer():
            i = 0
            while not stop_writing.is_set():
                i += 1
                sql(platform, ref, f"insert into t values ({i})")
                inserted.append((time.monotonic(), i))
                time.sleep(0.1)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert await until(5, lambda: len(got2) >= 5 and len(got1) >= 5)
            ids2 = {p["data"]["record"]["id"] for _, p in got2}
            assert {p["data"]["record"]["id"] for p in got1} & ids2, "both gateways hear the same stream"
            proc1.send_signal(signal.SIGKILL)
            proc1.wait()
            killed = time.monotonic()
            # Wait for rows written well after the kill to arrive.
            assert await until(15, lambda: any(t > killed + 6 for t, _ in inserted))
            after = next(i for t, i in inserted if t > killed)
            assert await until(10, lambda: any(p["data"]["record"]["id"] >= after + 20 for _, p in got2))
        finally:
            stop_writing.set()
            thread.join()
        # Every row written (the last ones after the wait above too) arrives.
        assert await until(10, lambda: {i for _, i in inserted} <= {p["data"]["record"]["id"] for _, p in got2}
                           | set(range(min(p["data"]["record"]["id"] for _, p in got2))))
        new_holder = redis_get(redis_server, lease)
        assert new_holder not in ("", holder), (holder, new_holder)
        # The first row committed after the kill reached the survivor
        # within 5 s of it.
        written = dict((i, t) for t, i in inserted)
        arrived = min(t for t, p in got2 if p["data"]["record"]["id"] >= after)
        assert arrived - written[after] < 5.0, arrived - written[after]
        # Nothing committed while subscribed is lost; a row delivered twice
        # around the hand-over carries the same commit_timestamp.
        received = {}
        for _, p in got2:
            rid = p["data"]["record"]["id"]
            received.setdefault(rid, set()).add(p["data"]["commit_timestamp"])
        first_seen = min(received)
        missing = [i for _, i in inserted if i >= first_seen and i not in received]
        assert missing == [], missing
        assert all(len(stamps) == 1 for stamps in received.values())
        await second.remove_all_channels()

    asyncio.run(main())
