// Two supabase-js clients on one channel (realtime-js, serializer 2.0.0):
// a broadcast each way (self off), presence tracked by one and seen by the
// other. Prints what each saw: the pytest asserts on it.
import { createClient } from "@supabase/supabase-js";
import { subscribed, until } from "./realtime-helpers.mjs";

const url = process.env.SUPA_URL;
const key = process.env.SUPA_KEY;
const options = { auth: { persistSession: false, autoRefreshToken: false } };
const a = createClient(url, key, options);
const b = createClient(url, key, options);
const seen = { a: [], b: [], presence: [], vsn: a.realtime.vsn ?? null };

const ca = a.channel("js-room", { config: { broadcast: { self: false, ack: true }, presence: { key: "ann" } } });
ca.on("broadcast", { event: "msg" }, ({ payload }) => seen.a.push(payload.from));
const cb = b.channel("js-room", { config: { presence: { key: "bob" } } });
cb.on("broadcast", { event: "msg" }, ({ payload }) => seen.b.push(payload.from));
cb.on("presence", { event: "join" }, ({ key }) => seen.presence.push(key));
await subscribed(ca);
await subscribed(cb);
const ack = await ca.send({ type: "broadcast", event: "msg", payload: { from: "a" } });
await cb.send({ type: "broadcast", event: "msg", payload: { from: "b" } });
await ca.track({ status: "online" });
await until(() => seen.a.length === 1 && seen.b.length === 1 && seen.presence.includes("ann"));
seen.ack = ack;
seen.state = Object.keys(cb.presenceState());
await a.removeAllChannels();
await b.removeAllChannels();
console.log(JSON.stringify(seen));
process.exit(0);
