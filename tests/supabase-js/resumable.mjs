// A file over 6 MB uploaded with tus-js-client as Supabase documents it
// (6 MB chunks, data sent with the creation request, upsert), cut in the
// middle of its second chunk, resumed from the upload's URL, then read
// back with supabase-js. Prints what happened: the pytest asserts on it.
import { createHash, randomBytes } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import * as tus from "tus-js-client";

const MB = 1024 * 1024;
const url = process.env.SUPA_URL;
const key = process.env.SUPA_KEY;
const bucket = process.env.SUPA_BUCKET;
const objectName = "movies/big.bin";
const data = randomBytes(13 * MB + 777);
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

const options = {
  endpoint: `${url}/storage/v1/upload/resumable`,
  headers: { authorization: `Bearer ${key}`, apikey: key, "x-upsert": "true" },
  uploadDataDuringCreation: true,
  removeFingerprintOnSuccess: true,
  metadata: { bucketName: bucket, objectName, contentType: "application/octet-stream", cacheControl: "3600" },
  chunkSize: 6 * MB,
  retryDelays: [],
};

// First attempt: abort (without terminating) once 9 MB are on the wire.
const uploadUrl = await new Promise((resolve, reject) => {
  let cut = false;
  const upload = new tus.Upload(data, {
    ...options,
    onProgress(sent) {
      if (!cut && sent >= 9 * MB) {
        cut = true;
        upload.abort(false).then(() => resolve(upload.url), reject);
      }
    },
    onError: reject,
    onSuccess: () => reject(new Error("the upload finished before it was cut")),
  });
  upload.start();
});

// Let the server store the piece that arrived before the cut.
await new Promise((r) => setTimeout(r, 1000));
const head = await fetch(uploadUrl, {
  method: "HEAD",
  headers: { ...options.headers, "Tus-Resumable": "1.0.0" },
});
const offsetAfterCut = Number(head.headers.get("upload-offset"));

// Second attempt: a new client resumes from the upload's URL.
let resumedFrom;
await new Promise((resolve, reject) => {
  const upload = new tus.Upload(data, {
    ...options,
    uploadUrl,
    onBeforeRequest(req) {
      if (req.getMethod() === "PATCH" && resumedFrom === undefined) {
        resumedFrom = Number(req.getHeader("Upload-Offset"));
      }
    },
    onError: reject,
    onSuccess: resolve,
  });
  upload.start();
});

const db = createClient(url, key, { auth: { persistSession: false, autoRefreshToken: false } });
const { data: blob, error } = await db.storage.from(bucket).download(objectName);
if (error) throw error;
const downloaded = Buffer.from(await blob.arrayBuffer());
console.log(
  JSON.stringify({
    size: data.length,
    sha256: sha256(data),
    offsetAfterCut,
    resumedFrom,
    downloadedSha256: sha256(downloaded),
  }),
);
