"""A local OAuth 2.0 / OpenID Connect provider for the auth tests, since no
real one is reachable here. It verifies what GitHub and an OpenID provider
verify: a registered client and its secret, the redirect URI registered
and sent at authorization, codes that are single-use and short-lived, and
the PKCE verifier of the challenge (S256). Two shapes are served: OpenID
Connect under /oidc (discovery, authorize, token, userinfo) and GitHub's
under /gh (login/oauth/..., api/v3/user and user/emails)."""

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Provider:
    def __init__(self, client_id, client_secret, redirect_uri):
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.user = {}          # who signs in next: OpenID claims
        self.github_emails = []
        self.codes = {}         # code -> grant
        self.tokens = {}        # access token -> user
        self.refusals = []      # why token requests were refused
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()

    def _handler(provider):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send_json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/oidc/.well-known/openid-configuration":
                    base = provider.base + "/oidc"
                    return self.send_json(200, {
                        "issuer": base, "authorization_endpoint": base + "/authorize",
                        "token_endpoint": base + "/token", "userinfo_endpoint": base + "/userinfo",
                        "code_challenge_methods_supported": ["S256"],
                    })
                if url.path in ("/oidc/authorize", "/gh/login/oauth/authorize"):
                    return self.authorize(q)
                if url.path in ("/oidc/userinfo", "/gh/api/v3/user", "/gh/api/v3/user/emails"):
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    user = provider.tokens.get(token)
                    if user is None:
                        return self.send_json(401, {"error": "invalid_token"})
                    # GitHub's API refuses requests without a User-Agent.
                    if url.path.startswith("/gh") and not self.headers.get("User-Agent"):
                        return self.send_json(403, {"message": "User-Agent required"})
                    if url.path.endswith("/emails"):
                        return self.send_json(200, provider.github_emails)
                    return self.send_json(200, user)
                self.send_json(404, {"error": "not_found"})

            def authorize(self, q):
                if q.get("client_id") != provider.client_id:
                    return self.send_json(400, {"error": "invalid_client"})
                if q.get("redirect_uri") != provider.redirect_uri:
                    return self.send_json(400, {"error": "redirect_uri_mismatch"})
                if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                    return self.send_json(400, {"error": "invalid_request", "error_description": "PKCE required"})
                code = secrets.token_urlsafe(16)
                provider.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"],
                                        "user": dict(provider.user), "at": time.time()}
                target = q["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()

            def do_POST(self):
                url = urllib.parse.urlparse(self.path)
                if url.path not in ("/oidc/token", "/gh/login/oauth/access_token"):
                    return self.send_json(404, {"error": "not_found"})
                length = int(self.headers.get("Content-Length", 0))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                why = self.refuse(form)
                if why:
                    provider.refusals.append(why)
                    return self.send_json(400, {"error": "invalid_grant", "error_description": why})
                grant = provider.codes.pop(form["code"])
                token = secrets.token_urlsafe(24)
                provider.tokens[token] = grant["user"]
                self.send_json(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600,
                                     "scope": "openid email profile"})

            def refuse(self, form):
                if form.get("grant_type") != "authorization_code":
                    return "unsupported grant_type"
                if form.get("client_id") != provider.client_id or form.get("client_secret") != provider.client_secret:
                    return "bad client credentials"
                grant = provider.codes.get(form.get("code", ""))
                if grant is None:
                    return "unknown or used code"
                if time.time() - grant["at"] > 60:
                    provider.codes.pop(form["code"], None)
                    return "expired code"
                if form.get("redirect_uri") != grant["redirect_uri"]:
                    return "redirect_uri mismatch"
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if digest != grant["challenge"]:
                    return "PKCE verification failed"
                return None

        return Handler
