"""A stand-in for an AWS Lambda function behind a Function URL with AWS_IAM
auth, for tests: the Function URL front end and the Lambda Runtime API, with
the function itself run as a real process.

The front end verifies what the real one verifies: the SigV4 signature
(service `lambda`), recomputed with botocore from the request as received,
against known credentials; a missing or wrong signature gets AWS's 403. A
verified request becomes a payload format 2.0 event (the format Function
URLs send), handed to the function through the Runtime API as documented
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):

    GET  /2018-06-01/runtime/invocation/next         -> the next event
    POST /2018-06-01/runtime/invocation/{id}/response
    POST /2018-06-01/runtime/invocation/{id}/error
    POST /2018-06-01/runtime/init/error

The function's answer (statusCode, headers, cookies, body, isBase64Encoded)
becomes the HTTP response; an error, an init error, a malformed answer or a
timeout is AWS's 502. One function process serves every invocation, one at
a time, as a warm execution environment does; `GET /__double/stats` on the
front end reports how many times it was started and invoked.

Usage: python lambda_double.py PORT ACCESS_KEY_ID SECRET REGION -- COMMAND...
(the function's own settings come from this process's environment).
"""

import base64
import datetime
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT, AKID, SECRET, REGION = sys.argv[1:5]
COMMAND = sys.argv[sys.argv.index("--") + 1:]
FUNCTION = "supa-rest"
ACCOUNT = "123456789012"
TIMEOUT_S = 30
RUNTIME = "/2018-06-01/runtime"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

pending = queue.Queue()  # events not yet taken by the function
waiting = {}  # request id -> (event done, [answer]) for events in flight
taken = set()  # request ids the function has taken and not answered
lock = threading.Lock()
stats = {"inits": 0, "invocations": 0, "init_errors": 0}


def expected_authorization(method, host, raw_path, headers, body, signed, amz_date, token):
    path, _, query = raw_path.partition("?")
    # AWS canonicalizes the query itself (decode, then strict encoding);
    # botocore signs the query as written, so hand it the canonical form.
    pairs = [p.partition("=") for p in query.split("&") if p] if query else []
    canonical = "&".join(
        f"{urllib.parse.quote(urllib.parse.unquote(k), safe='-_.~')}={urllib.parse.quote(urllib.parse.unquote(v), safe='-_.~')}"
        for k, _, v in pairs
    )
    url = f"http://{host}{urllib.parse.unquote(path)}" + (f"?{canonical}" if canonical else "")
    to_sign = {k: v for k, v in headers.items() if k.lower() in signed}
    request = AWSRequest(method=method, url=url, headers=to_sign, data=body)
    signer = botocore.auth.SigV4Auth(Credentials(AKID, SECRET, token), "lambda", REGION)
    at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
        signer.add_auth(request)
    return request.headers["Authorization"]


def event_of(handler, body):
    """The payload format 2.0 event of a Function URL request."""
    raw_path, _, raw_query = handler.path.partition("?")
    headers = {}
    for k, v in handler.headers.items():
        k = k.lower()
        if k == "cookie":
            continue
        headers[k] = f"{headers[k]},{v}" if k in headers else v
    cookies = [c.strip() for v in handler.headers.get_all("Cookie") or [] for c in v.split(";") if c.strip()]
    query = {}
    for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    text_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
    is_text = text_type.startswith("text/") or text_type.endswith(("json", "xml", "csv")) or text_type == ""
    now = datetime.datetime.now(datetime.timezone.utc)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "supatestfunctionurl",
            "domainName": handler.headers.get("Host", ""),
            "domainPrefix": "supatestfunctionurl",
            "http": {
                "method": handler.command,
                "path": urllib.parse.unquote(raw_path),
                "protocol": "HTTP/1.1",
                "sourceIp": handler.client_address[0],
                "userAgent": handler.headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and not is_text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = base64.b64encode(body).decode() if event["isBase64Encoded"] else body.decode()
    return event


def invoke(event):
    """Hands the event to the function and waits for its answer, or None."""
    request_id = str(uuid.uuid4())
    done = threading.Event()
    slot = []
    with lock:
        waiting[request_id] = (done, slot)
        stats["invocations"] += 1
    pending.put((request_id, event))
    done.wait(TIMEOUT_S)
    with lock:
        waiting.pop(request_id, None)
    return slot[0] if slot else None


class Front(BaseHTTPRequestHandler):
    """The Function URL."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() == "content-type" for k, _ in headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/__double/stats":
            with lock:
                return self.answer(200, dict(stats))
        auth = self.headers.get("Authorization", "")
        amz_date = self.headers.get("X-Amz-Date")
        if not auth.startswith("AWS4-HMAC-SHA256 ") or not amz_date:
            return self.answer(403, {"Message": "Forbidden"})
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        signed = set(fields.get("SignedHeaders", "").split(";"))
        headers = {k: v for k, v in self.headers.items()}
        want = expected_authorization(
            self.command, self.headers["Host"], self.path, headers, body, signed, amz_date,
            self.headers.get("X-Amz-Security-Token"),
        )
        if want != auth:
            return self.answer(403, {"message": MISMATCH})
        answer = invoke(event_of(self, body))
        try:
            status = int(answer["statusCode"])
            out = answer.get("body") or ""
            out = base64.b64decode(out) if answer.get("isBase64Encoded") else out.encode()
            headers = [(k, v) for k, v in (answer.get("headers") or {}).items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection")]
            headers += [("Set-Cookie", c) for c in answer.get("cookies") or []]
        except (TypeError, KeyError, ValueError, AttributeError):
            return self.answer(502, {"Message": "Internal Server Error"})
        self.answer(status, out, headers)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Runtime(BaseHTTPRequestHandler):
    """The Lambda Runtime API the function polls."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != f"{RUNTIME}/invocation/next":
            return self.reply(404, {"errorMessage": "not found", "errorType": "InvalidRequest"})
        request_id, event = pending.get()
        with lock:
            taken.add(request_id)
        deadline = int(time.time() * 1000) + TIMEOUT_S * 1000
        self.reply(200, event, [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"),
            ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
        ])

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path[len(RUNTIME):].strip("/").split("/")
        if parts == ["init", "error"]:
            with lock:
                stats["init_errors"] += 1
            return self.reply(202, {"status": "OK"})
        if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
            return self.reply(404, {"errorMessage": "not found", "errorType": "InvalidRequest"})
        with lock:
            entry = waiting.get(parts[1])
        if entry is None:
            return self.reply(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
        if len(body) > 6 * 1024 * 1024:
            return self.reply(413, {"errorMessage": "Response payload too large", "errorType": "RequestEntityTooLarge"})
        done, slot = entry
        with lock:
            taken.discard(parts[1])
        if parts[2] == "response":
            try:
                slot.append(json.loads(body))
            except ValueError:
                pass
        done.set()
        self.reply(202, {"status": "OK"})


def serve(port, handler):
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    runtime = serve(0, Runtime)
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]supatest",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "_HANDLER": "bootstrap",
    })
    stopping = threading.Event()
    function = [None]

    def run_function():
        # Lambda starts a new execution environment when one dies; the
        # invocation it held fails (502).
        while not stopping.is_set():
            with lock:
                stats["inits"] += 1
            function[0] = subprocess.Popen(COMMAND, env=env)
            function[0].wait()
            with lock:
                lost = [waiting[r][0] for r in taken if r in waiting]
                taken.clear()
            for done in lost:
                done.set()
            time.sleep(0.2)

    threading.Thread(target=run_function, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    front = ThreadingHTTPServer(("127.0.0.1", int(PORT)), Front)
    front.daemon_threads = True
    try:
        front.serve_forever()
    finally:
        stopping.set()
        if function[0] is not None:
            function[0].terminate()
            function[0].wait(10)
