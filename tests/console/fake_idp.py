"""A local OpenID Connect provider speaking the protocol over HTTP: discovery, authorize, token, JWKS.

It issues real RS256-signed ID tokens, checks the client's credentials and the PKCE S256 verifier at
the token endpoint, and answers errors as a provider does (400 with an OAuth error body).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "orchestrator-console"


@dataclass
class FakeIdp:
    """The provider's state: who signs in next, the codes it issued, the requests it saw."""

    url: str = ""
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    email: str = "approver@example.com"
    email_verified: bool = True
    audience: str = CLIENT_ID
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwks(self) -> dict[str, Any]:
        """The public key set."""
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def id_token(self, nonce: str) -> str:
        """A signed ID token for the current person."""
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "sub-" + self.email,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": self.email,
            "email_verified": self.email_verified,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})


def _handler(idp: FakeIdp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            if parsed.path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": idp.url,
                        "authorization_endpoint": idp.url + "/authorize",
                        "token_endpoint": idp.url + "/token",
                        "jwks_uri": idp.url + "/jwks",
                        "response_types_supported": ["code"],
                        "code_challenge_methods_supported": ["S256"],
                    },
                )
            elif parsed.path == "/jwks":
                self._json(200, idp.jwks())
            elif parsed.path == "/authorize":
                if query.get("client_id") != CLIENT_ID or query.get("code_challenge_method") != "S256":
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                idp.codes[code] = query
                target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            idp.token_requests.append(form)
            basic = base64.b64encode(f"{CLIENT_ID}:{idp.client_secret}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {basic}":
                self._json(401, {"error": "invalid_client"})
                return
            asked = idp.codes.pop(form.get("code", ""), None)
            if asked is None:
                self._json(400, {"error": "invalid_grant", "error_description": "unknown or used code"})
                return
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if challenge != asked["code_challenge"]:
                self._json(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
                return
            self._json(
                200,
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": idp.id_token(asked.get("nonce", "")),
                },
            )

    return Handler


@contextmanager
def running_idp() -> Iterator[FakeIdp]:
    """A provider on a free local port, for the duration of the block."""
    idp = FakeIdp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(idp))
    idp.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
