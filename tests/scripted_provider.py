"""A tiny stand-in provider for misbehaviour the real one cannot show (HTML 502s, bad ID tokens…).

It speaks just enough OIDC for nbauth's code flow: discovery, an /authorize that sends the
browser straight back with a code (no login page), a token endpoint whose answers the test
scripts, and a JWKS with a key the test controls. Every request is recorded so tests can assert
what nbauth sent — and what it did *not* send (S-20: no token request after a failed check).

With `device_flow=True` it also advertises an RFC 8628 device authorization endpoint
(/oauth/device/code) whose answers `device_answers` script (by default: a fresh device code, the
user code ABCD-EFGH, expires_in 600, interval 5). An answer may also drop the connection without
answering (`ScriptedProvider.disconnect()`), which a client sees as a connection error.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TokenAnswer = Callable[[dict[str, str], "ScriptedProvider"], tuple[int, dict[str, str], bytes]]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (nbauth's timeout tests) is expected here


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class ScriptedProvider:
    """Start with `with ScriptedProvider() as p:`; set `p.token_answers` to script /oauth/token."""

    client_id: str = "scripted-client"
    advertise_iss: bool = True
    send_iss: bool = True
    iss_value: str | None = None
    token_answers: list[TokenAnswer] = field(default_factory=list)
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    kid: str = "k1"
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    device_flow: bool = False
    device_answers: list[TokenAnswer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self.port = self._server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}/"
        self._codes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> ScriptedProvider:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what tests read ---------------------------------------------------------------------
    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def metadata(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "authorize",
            "token_endpoint": self.issuer + "oauth/token",
            "jwks_uri": self.issuer + ".well-known/jwks.json",
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_response_iss_parameter_supported": self.advertise_iss,
        }
        if self.device_flow:
            doc["device_authorization_endpoint"] = self.issuer + "oauth/device/code"
        doc.update(self.extra_metadata)
        return doc

    def jwks(self) -> dict[str, Any]:
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        data.update(kid=self.kid, alg="RS256", use="sig")
        return {"keys": [data]}

    def id_token(self, nonce: str | None, /, **overrides: Any) -> str:
        now = time.time()
        claims = {"iss": self.issuer, "aud": self.client_id, "sub": "scripted|1", "iat": now,
                  "exp": now + 3600, "email": "scripted@example.com", "name": "Scripted User"}
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(self.id_token_claims)
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def nonce_for(self, code: str) -> str | None:
        return self._codes.get(code, {}).get("nonce")

    # -- canned token answers ----------------------------------------------------------------
    @staticmethod
    def good_tokens(**id_overrides: Any) -> TokenAnswer:
        def answer(form: dict[str, str], p: ScriptedProvider) -> tuple[int, dict[str, str], bytes]:
            body = {"access_token": "at-" + secrets.token_urlsafe(24), "token_type": "Bearer",
                    "expires_in": 3600, "scope": "openid profile email offline_access",
                    "refresh_token": "rt-" + secrets.token_urlsafe(24),
                    "id_token": p.id_token(p.nonce_for(form.get("code", "")), **id_overrides)}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return answer

    @staticmethod
    def device_response(**overrides: Any) -> TokenAnswer:
        """A device authorization response (RFC 8628 §3.2); a None override drops the field."""
        def answer(form: dict[str, str], p: ScriptedProvider) -> tuple[int, dict[str, str], bytes]:
            body: dict[str, Any] = {
                "device_code": "dc-" + secrets.token_urlsafe(24),
                "user_code": "ABCD-EFGH",
                "verification_uri": p.issuer + "activate",
                "verification_uri_complete": p.issuer + "activate?user_code=ABCD-EFGH",
                "expires_in": 600,
                "interval": 5,
            }
            body.update(overrides)
            body = {k: v for k, v in body.items() if v is not None}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return answer

    @staticmethod
    def oauth_error(error: str, status: int = 400, **extra: Any) -> TokenAnswer:
        """An RFC 6749 §5.2 error body (authorization_pending, slow_down, expired_token …)."""
        body = json.dumps({"error": error, **extra}).encode()
        return ScriptedProvider.raw(status, body, "application/json")

    @staticmethod
    def disconnect() -> TokenAnswer:
        """Close the connection without answering (the client sees a connection error)."""
        def answer(form: dict[str, str], p: ScriptedProvider) -> tuple[int, dict[str, str], bytes]:
            raise _Disconnect
        return answer

    @staticmethod
    def raw(status: int, body: bytes | Trickle, content_type: str = "text/html",
            delay: float = 0.0, headers: dict[str, str] | None = None) -> TokenAnswer:
        def answer(form: dict[str, str], p: ScriptedProvider) -> tuple[int, dict[str, str], Any]:
            if delay:
                time.sleep(delay)
            return status, {"Content-Type": content_type, **(headers or {})}, body
        return answer


@dataclass(frozen=True)
class Trickle:
    """A body sent one byte every `every` seconds (a provider that answers but never finishes)."""

    body: bytes
    every: float
    declared_length: int | None = None  # a larger Content-Length: the body is cut short


class _Disconnect(Exception):
    """Raised by a scripted answer to drop the connection without a response."""


def _next(answers: list[TokenAnswer]) -> TokenAnswer | None:
    """The next scripted answer; the last one repeats."""
    return answers.pop(0) if len(answers) > 1 else (answers[0] if answers else None)


def _make_handler(provider: ScriptedProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: Any) -> None:
            pass

        def _record(self, form: dict[str, str]) -> Recorded:
            url = urlsplit(self.path)
            rec = Recorded(self.command, url.path, dict(parse_qsl(url.query)), form,
                           dict(self.headers.items()))
            provider.requests.append(rec)
            return rec

        def _send(self, status: int, headers: dict[str, str], body: bytes | Trickle) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            length = len(body.body) if isinstance(body, Trickle) else len(body)
            if isinstance(body, Trickle) and body.declared_length is not None:
                length = body.declared_length
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if not isinstance(body, Trickle):
                self.wfile.write(body)
                return
            for i in range(len(body.body)):  # bounded by the body's length
                try:
                    self.wfile.write(body.body[i:i + 1])
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up (what the test wants)
                time.sleep(body.every)

        def _json(self, doc: Any, status: int = 200) -> None:
            self._send(status, {"Content-Type": "application/json"}, json.dumps(doc).encode())

        def do_GET(self) -> None:
            rec = self._record({})
            if rec.path == "/.well-known/openid-configuration":
                self._json(provider.metadata())
            elif rec.path == "/.well-known/jwks.json":
                self._json(provider.jwks())
            elif rec.path == "/authorize":
                code = "code-" + secrets.token_urlsafe(16)
                provider._codes[code] = rec.query
                params = {"code": code, "state": rec.query.get("state", "")}
                if provider.send_iss:
                    params["iss"] = provider.iss_value or provider.issuer
                location = rec.query["redirect_uri"] + "?" + urlencode(params)
                self._send(302, {"Location": location}, b"")
            else:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            rec = self._record(form)
            if rec.path == "/oauth/device/code" and provider.device_flow:
                answer = _next(provider.device_answers) or ScriptedProvider.device_response()
            elif rec.path == "/oauth/token":
                answer = _next(provider.token_answers)
            else:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")
                return
            if answer is None:
                self._json({"error": "server_error"}, 500)
                return
            try:
                reply = answer(form, provider)
            except _Disconnect:
                self.close_connection = True
                return
            self._send(*reply)

    return Handler
