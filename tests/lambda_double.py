"""A stand-in for an AWS Lambda Function URL with AWS_IAM auth, for tests.

It verifies what the real one verifies: the SigV4 signature (service
`lambda`), recomputed with botocore from the request as received, against
known credentials; a missing or wrong signature gets AWS's 403. A verified
request goes on to a PostgREST-compatible server the way AWS Lambda Web
Adapter hands it to the function: `X-Client-Authorization` becomes
`Authorization`.

Usage: python lambda_double.py PORT UPSTREAM_URL ACCESS_KEY_ID SECRET REGION
"""

import datetime
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import botocore.auth
import httpx
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT, UPSTREAM, AKID, SECRET, REGION = sys.argv[1:6]
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


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


class Handler(BaseHTTPRequestHandler):
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
        forward = {
            k: v for k, v in headers.items()
            if k.lower() not in ("host", "authorization", "x-amz-date", "x-amz-security-token",
                                 "x-client-authorization", "content-length", "connection")
        }
        if "X-Client-Authorization" in self.headers:
            forward["Authorization"] = self.headers["X-Client-Authorization"]
        r = httpx.request(self.command, UPSTREAM.rstrip("/") + self.path, headers=forward, content=body)
        keep = [(k, v) for k, v in r.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        self.answer(r.status_code, r.content, keep)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = handle_any


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
