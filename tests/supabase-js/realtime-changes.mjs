// supabase-js (realtime-js, serializer 2.0.0) subscribed to Postgres
// changes of `items` (all events, and inserts filtered by `n`) and to a
// broadcast sent from SQL; the rows are written through supabase-js's own
// REST client with the secret key. Prints what it saw: the pytest asserts
// on it.
import { createClient } from "@supabase/supabase-js";
import { subscribed, until } from "./realtime-helpers.mjs";

const options = { auth: { persistSession: false, autoRefreshToken: false } };
const reader = createClient(process.env.SUPA_URL, process.env.SUPA_KEY, options);
const writer = createClient(process.env.SUPA_URL, process.env.SUPA_SECRET, options);
const seen = { all: [], big: [], broadcast: [] };

const channel = reader
  .channel("js-items")
  .on("postgres_changes", { event: "*", schema: "public", table: "items" }, (p) =>
    seen.all.push({ type: p.eventType, new: p.new, old: p.old, ts: p.commit_timestamp }),
  )
  .on("postgres_changes", { event: "INSERT", schema: "public", table: "items", filter: "n=gte.10" }, (p) =>
    seen.big.push(p.new.id),
  )
  .on("broadcast", { event: "note" }, ({ payload }) => seen.broadcast.push(payload));
await subscribed(channel);
const check = (r) => {
  if (r.error) throw new Error(JSON.stringify(r.error));
};
check(await writer.from("items").insert([{ id: 1, n: 5 }, { id: 2, n: 50 }]));
check(await writer.from("items").update({ n: 7 }).eq("id", 1));
check(await writer.from("items").delete().eq("id", 2));
check(await writer.rpc("send_note", { body: "from sql" }));
await until(() => seen.all.length === 4 && seen.broadcast.length === 1);
await reader.removeAllChannels();
console.log(JSON.stringify(seen));
process.exit(0);
