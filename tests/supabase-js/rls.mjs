// Signs two users up and in with the real supabase-js, each writes a note
// under RLS, and prints what each can see: the pytest asserts on it.
import { createClient } from "@supabase/supabase-js";

const url = process.env.SUPA_URL;
const key = process.env.SUPA_KEY;
const out = {};
for (const name of ["ann", "bob"]) {
  const db = createClient(url, key, { auth: { persistSession: false, autoRefreshToken: false } });
  const email = `${name}-${Date.now()}-${Math.random().toString(16).slice(2)}@example.com`;
  const signedUp = await db.auth.signUp({ email, password: "correct horse", options: { data: { name } } });
  if (signedUp.error) throw signedUp.error;
  const signedIn = await db.auth.signInWithPassword({ email, password: "correct horse" });
  if (signedIn.error) throw signedIn.error;
  const inserted = await db.from("notes").insert({ body: `${name}'s note` }).select("body");
  if (inserted.error) throw inserted.error;
  const seen = await db.from("notes").select("body");
  if (seen.error) throw seen.error;
  const user = await db.auth.getUser();
  const wrong = await db.auth.signInWithPassword({ email, password: "wrong password" });
  out[name] = {
    user: user.data.user.email === email,
    metadata: user.data.user.user_metadata,
    seen: seen.data.map((n) => n.body),
    wrongPassword: { status: wrong.error?.status, code: wrong.error?.code },
  };
}
console.log(JSON.stringify(out));
