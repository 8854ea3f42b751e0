// Supa Studio's only script: copy buttons. Pages work without it.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent).then(() => {
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
});

// Uploads with a progress bar: the same form, sent with XMLHttpRequest.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-upload]") || !window.XMLHttpRequest) return;
  event.preventDefault();
  const bar = form.querySelector("progress");
  bar.hidden = false;
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
  });
  request.addEventListener("load", () => {
    // Redirected to the folder on success; an error page otherwise.
    if (request.responseURL && request.status < 400) {
      window.location.assign(request.responseURL);
    } else {
      document.open();
      document.write(request.responseText);
      document.close();
    }
  });
  request.send(new FormData(form));
});

// The realtime inspector: joins one channel over Phoenix's JSON protocol
// and lists what arrives (as text: payloads are never parsed as HTML).
(() => {
  const box = document.getElementById("inspector");
  if (!box || !window.WebSocket) return;
  const status = document.getElementById("rt-status");
  const list = document.getElementById("rt-events");
  const topic = "realtime:" + box.dataset.channel;
  const changes = box.dataset.changes
    ? [{ event: "*", schema: box.dataset.changes }]
    : [];
  const socket = new WebSocket(box.dataset.socket);
  let ref = 0;
  const send = (t, event, payload) =>
    socket.send(JSON.stringify({ topic: t, event, payload, ref: String(++ref), join_ref: "1" }));
  const show = (kind, payload) => {
    const item = document.createElement("li");
    const when = document.createElement("span");
    when.className = "hint";
    when.textContent = new Date().toISOString().slice(11, 23) + " " + kind + " ";
    const body = document.createElement("code");
    body.textContent = JSON.stringify(payload);
    item.append(when, body);
    list.prepend(item);
  };
  socket.addEventListener("open", () => {
    send(topic, "phx_join", {
      config: { broadcast: { self: true }, presence: { key: "" }, postgres_changes: changes },
    });
    setInterval(() => send("phoenix", "heartbeat", {}), 25000);
  });
  socket.addEventListener("message", (m) => {
    const frame = JSON.parse(m.data);
    if (frame.event === "phx_reply" && frame.ref === "1") {
      status.textContent = frame.payload.status === "ok"
        ? "Listening on " + box.dataset.channel
        : "Refused: " + JSON.stringify(frame.payload.response);
    } else if (["broadcast", "postgres_changes", "presence_diff", "presence_state"].includes(frame.event)) {
      show(frame.event, frame.payload);
    } else if (frame.event === "system" || frame.event === "phx_error") {
      show(frame.event, frame.payload);
    }
  });
  socket.addEventListener("close", () => { status.textContent = "Disconnected. Reload to listen again."; });
})();
