"""S-05 (and S-02): state, nonce and verifier are long, fresh per attempt, and single-use.

10 000 authorization requests (the checklist's count) share no state, nonce or verifier, and
each is 256 bits of `secrets` output in base64url. Single use: once a login has taken its
response, the same callback — same state, same code — is refused: its listener is closed (a
replay finds nothing listening, or at most a 409 while it closes), and a newer login on the
same port treats the old state as not its own (400, the login keeps waiting). The token
endpoint sees the code once.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from scripted_provider import ScriptedProvider

import nbauth
from nbauth.authorize import build_authorization_request
from nbauth.discovery import ProviderMetadata

DRAWS = 10_000
TOKEN = "/oauth/token"
_BASE64URL_256_BITS = re.compile(r"[A-Za-z0-9_-]{43}")

METADATA = ProviderMetadata(
    issuer="https://tenant.example/",
    authorization_endpoint="https://tenant.example/authorize",
    token_endpoint="https://tenant.example/oauth/token",
    jwks_uri="https://tenant.example/.well-known/jwks.json",
    code_challenge_methods_supported=("S256",),
)


def test_S05_S02_ten_thousand_requests_share_no_state_nonce_or_verifier():
    started = time.monotonic()
    states, nonces, verifiers = set(), set(), set()
    for _ in range(DRAWS):
        request = build_authorization_request(
            METADATA, client_id="client", redirect_uri="http://127.0.0.1:8765/callback")
        assert _BASE64URL_256_BITS.fullmatch(request.state)
        assert _BASE64URL_256_BITS.fullmatch(request.nonce)
        states.add(request.state)
        nonces.add(request.nonce)
        verifiers.add(request.pkce.verifier)
    assert len(states) == len(nonces) == len(verifiers) == DRAWS
    assert not states & nonces  # state and nonce are independent draws
    assert time.monotonic() - started < 10  # about 0.25 s here; a generous bound for slow CI


def _provider_redirect(pending) -> str:
    """The callback URL the stand-in's /authorize sends the browser back to (code + state)."""
    return requests.get(pending.url, allow_redirects=False, timeout=10).headers["Location"]


def _replay_until_refused(url: str, seconds: float = 5.0) -> list[int]:
    """GET `url` until nothing listens any more; the statuses seen before that."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen.append(requests.get(url, timeout=5).status_code)
        except requests.ConnectionError:
            return seen
        time.sleep(0.05)
    pytest.fail(f"the listener still answers a consumed callback: {seen}")


def test_S05_S23_a_consumed_state_is_refused_and_its_code_is_never_sent_again():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        first = nbauth.start_login(p.issuer, p.client_id, port=0, timeout=20)
        callback = _provider_redirect(first)
        consumed_state = parse_qs(urlsplit(callback).query)["state"][0]
        assert requests.get(callback, timeout=10).status_code == 200
        credentials = first.wait(10)
        assert all(status == 409 for status in _replay_until_refused(callback))
        assert len(p.calls(TOKEN)) == 1

        # The next login on the same port: the consumed state (and its code) is not its own.
        second = nbauth.start_login(p.issuer, p.client_id, port=first.port, timeout=20)
        try:
            assert second.port == first.port
            assert second._request.state != consumed_state
            replay = requests.get(callback, timeout=10)
            assert replay.status_code == 400 and "Not for this login" in replay.text
            assert not second.done() and len(p.calls(TOKEN)) == 1
            assert requests.get(_provider_redirect(second), timeout=10).status_code == 200
            assert second.wait(10).identity.subject == credentials.identity.subject
            assert len(p.calls(TOKEN)) == 2
            codes = [call.form["code"] for call in p.calls(TOKEN)]
            assert len(set(codes)) == 2  # the consumed code never reached the provider again
        finally:
            second.cancel()
