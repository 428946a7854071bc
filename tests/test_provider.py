"""Tests of the demo OpenID provider in provider/ (a real node process; no nbauth import)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parents[1] / "provider"))

from devprovider import ProviderError, ProviderInfo, running_provider
from scripted_user import LoginRejected, ScriptedUserError, complete_device_login, complete_login

TIMEOUT = 10

pytestmark = pytest.mark.provider
SCOPES = "openid profile email offline_access read:messages"


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderInfo]:
    """A provider of this module's own (deliberately shadows any conftest fixture)."""
    with running_provider() as info:
        yield info


@pytest.fixture()
def web() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def b64json(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _signature = token.split(".")
    return b64json(header), b64json(payload)


def authorize_url(
    info: ProviderInfo,
    *,
    redirect_uri: str = "http://127.0.0.1:51234/callback",
    client_id: str | None = None,
    scope: str = SCOPES,
    audience: str | None = None,
    state: str = "state-123",
    nonce: str | None = "nonce-456",
    challenge: str | None = None,
    **extra: str,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id or info.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        **extra,
    }
    if nonce:
        params["nonce"] = nonce
    if challenge:
        params["code_challenge"] = challenge
        params["code_challenge_method"] = "S256"
    if audience:
        params["audience"] = audience
    return f"{info.issuer}authorize?{urlencode(params)}"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def login_and_exchange(
    info: ProviderInfo,
    web: requests.Session,
    *,
    scope: str = SCOPES,
    audience: str | None = None,
    username: str = "demo@example.com",
    client_id: str | None = None,
    redirect_uri: str = "http://127.0.0.1:51234/callback",
) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    url = authorize_url(
        info,
        scope=scope,
        audience=audience,
        challenge=challenge,
        client_id=client_id,
        redirect_uri=redirect_uri,
    )
    redirect = complete_login(url, username=username, follow_callback=False)
    params = query(redirect)
    assert redirect.startswith(redirect_uri + "?")
    assert params["state"] == "state-123"
    assert params["iss"] == info.issuer
    resp = web.post(
        f"{info.issuer}oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": client_id or info.client_id,
            "code_verifier": verifier,
        },
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    tokens: dict[str, Any] = resp.json()
    return tokens


def refresh(info: ProviderInfo, web: requests.Session, token: str) -> requests.Response:
    return web.post(
        f"{info.issuer}oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": info.client_id},
        timeout=TIMEOUT,
    )


def call_api(info: ProviderInfo, web: requests.Session, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return web.get(info.api_url, headers=headers, timeout=TIMEOUT)


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------


def test_discovery_uses_auth0_paths_and_trailing_slash_issuer(
    provider: ProviderInfo, web: requests.Session
) -> None:
    iss = provider.issuer
    assert iss.startswith("http://127.0.0.1:") and iss.endswith("/")
    doc = web.get(f"{iss}.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert doc["issuer"] == iss
    assert doc["authorization_endpoint"] == f"{iss}authorize"
    assert doc["token_endpoint"] == f"{iss}oauth/token"
    assert doc["userinfo_endpoint"] == f"{iss}userinfo"
    assert doc["jwks_uri"] == f"{iss}.well-known/jwks.json"
    assert doc["device_authorization_endpoint"] == f"{iss}oauth/device/code"
    assert doc["revocation_endpoint"] == f"{iss}oauth/revoke"
    assert doc["end_session_endpoint"] == f"{iss}v2/logout"
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "client_credentials" in doc["grant_types_supported"]
    assert "urn:ietf:params:oauth:grant-type:device_code" in doc["grant_types_supported"]
    assert {"openid", "profile", "email", "offline_access"} <= set(doc["scopes_supported"])
    keys = web.get(doc["jwks_uri"], timeout=TIMEOUT).json()["keys"]
    assert keys and all(k["kid"] and k["alg"] == "RS256" and "d" not in k for k in keys)


def test_ready_info(provider: ProviderInfo) -> None:
    assert provider.api_url.startswith("http://127.0.0.1:") and provider.api_url.endswith(
        "/api/private"
    )
    assert provider.audience == "https://api.nbauth.test/"
    assert (provider.client_id, provider.m2m_client_id, provider.exact_client_id) == (
        "nbauth-demo",
        "nbauth-m2m",
        "nbauth-exact",
    )
    assert provider.m2m_client_secret
    assert provider.exact_ports == (8765, 8766, 8767)
    assert provider.pid > 0


def test_login_page_follows_the_form_contract(
    provider: ProviderInfo, web: requests.Session
) -> None:
    _verifier, challenge = pkce_pair()
    resp = web.get(
        authorize_url(provider, challenge=challenge), timeout=TIMEOUT, allow_redirects=False
    )
    assert resp.status_code in (302, 303)
    location = resp.headers["Location"]
    path = urlsplit(location).path
    assert path.startswith("/interaction/")
    uid = path.split("/")[2]
    page = web.get(f"{provider.issuer}interaction/{uid}", timeout=TIMEOUT)
    assert page.status_code == 200
    html = page.text
    assert "Sign in" in html
    assert f'<form method="post" action="/interaction/{uid}/login"' in html
    assert 'name="username"' in html
    assert 'name="password" type="password"' in html
    assert '<button type="submit">Sign in</button>' in html
    assert (
        "http://" not in html.split("<main>")[0] and "https://" not in html
    )  # no external resources


def test_code_flow_with_audience_gives_jwt_accepted_by_api(
    provider: ProviderInfo, web: requests.Session
) -> None:
    tokens = login_and_exchange(provider, web, audience=provider.audience)
    assert tokens["token_type"].lower() == "bearer"
    assert "refresh_token" in tokens  # offline_access honoured without prompt=consent
    assert set(tokens["scope"].split()) == set(SCOPES.split())  # every granted scope, like Auth0

    header, claims = jwt_parts(tokens["access_token"])
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == provider.audience
    assert claims["sub"] == "auth0|demo"
    assert claims["client_id"] == provider.client_id and claims["azp"] == provider.client_id
    assert "read:messages" in claims["scope"].split()
    assert claims["exp"] > claims["iat"]

    id_header, id_claims = jwt_parts(tokens["id_token"])
    assert id_header["alg"] == "RS256" and id_header["kid"] == header["kid"]
    assert id_claims["iss"] == provider.issuer
    assert id_claims["aud"] == provider.client_id
    assert id_claims["nonce"] == "nonce-456"
    assert id_claims["name"] == "Demo User"
    assert id_claims["email"] == "demo@example.com"
    assert id_claims["email_verified"] is True

    ok = call_api(provider, web, tokens["access_token"])
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["message"] == "Hello from the nbauth demo API"
    assert body["sub"] == "auth0|demo"
    assert "read:messages" in body["scope"]

    head, payload, signature = tokens["access_token"].split(".")
    forged = dict(claims, sub="auth0|bob")
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    for bad in (
        f"{head}.{forged_payload}.{signature}",
        f"{head}.{payload}.{flipped}",
        "not-a-jwt",
        None,
    ):
        refused = call_api(provider, web, bad)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]

    public = web.get(provider.api_public_url, timeout=TIMEOUT)
    assert public.status_code == 200 and "message" in public.json()


def test_without_audience_opaque_token_works_at_userinfo_only(
    provider: ProviderInfo, web: requests.Session
) -> None:
    tokens = login_and_exchange(
        provider, web, scope="openid profile email", username="alice@example.com"
    )
    assert "refresh_token" not in tokens
    assert tokens["access_token"].count(".") != 2  # opaque
    info = web.get(
        f"{provider.issuer}userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    )
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == "auth0|alice"
    assert info.json()["email"] == "alice@example.com"
    assert call_api(provider, web, tokens["access_token"]).status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_family(
    provider: ProviderInfo, web: requests.Session
) -> None:
    tokens = login_and_exchange(provider, web, audience=provider.audience)
    first = tokens["refresh_token"]

    resp = refresh(provider, web, first)
    assert resp.status_code == 200, resp.text
    second = resp.json()["refresh_token"]
    assert second != first
    assert jwt_parts(resp.json()["access_token"])[1]["aud"] == provider.audience
    assert "id_token" in resp.json()

    reused = refresh(provider, web, first)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"

    # Reuse detection revoked the whole family: the newest refresh token is dead too.
    after = refresh(provider, web, second)
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"


def test_revoked_refresh_token_is_refused(provider: ProviderInfo, web: requests.Session) -> None:
    tokens = login_and_exchange(provider, web, audience=provider.audience)
    resp = web.post(
        f"{provider.issuer}oauth/revoke",
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": provider.client_id,
        },
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    refused = refresh(provider, web, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_loopback_listener_receives_the_code(provider: ProviderInfo) -> None:
    received: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(query(self.path))
            body = b"Login complete. You can close this tab."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        port = server.server_address[1]
        _verifier, challenge = pkce_pair()
        url = authorize_url(
            provider, redirect_uri=f"http://127.0.0.1:{port}/callback", challenge=challenge
        )
        text = complete_login(url, username="bob@example.com")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert text == "Login complete. You can close this tab."
    assert len(received) == 1
    assert (
        received[0]["code"]
        and received[0]["state"] == "state-123"
        and received[0]["iss"] == provider.issuer
    )


def test_deny_gives_access_denied_with_state(provider: ProviderInfo) -> None:
    _verifier, challenge = pkce_pair()
    redirect = complete_login(
        authorize_url(provider, challenge=challenge), decision="deny", follow_callback=False
    )
    params = query(redirect)
    assert params["error"] == "access_denied"
    assert params["state"] == "state-123"
    assert params["iss"] == provider.issuer
    assert "code" not in params


def test_wrong_password_shows_the_error(provider: ProviderInfo, web: requests.Session) -> None:
    _verifier, challenge = pkce_pair()
    with pytest.raises(LoginRejected, match=r"Wrong email or password\."):
        complete_login(
            authorize_url(provider, challenge=challenge), password="wrong", follow_callback=False
        )

    # By hand: the page is re-rendered with the message and the login keeps waiting.
    resp = web.get(authorize_url(provider, challenge=challenge), timeout=TIMEOUT)
    assert resp.url.split("?")[0].startswith(f"{provider.issuer}interaction/")
    uid = urlsplit(resp.url).path.split("/")[2]
    bad = web.post(
        f"{provider.issuer}interaction/{uid}/login",
        data={"username": "demo@example.com", "password": "nope"},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert bad.status_code == 200 and "Wrong email or password." in bad.text
    good = web.post(
        f"{provider.issuer}interaction/{uid}/login",
        data={"username": "demo@example.com", "password": "nbauth-demo"},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert good.status_code == 303
    assert good.headers["Location"].startswith(f"{provider.issuer}authorize/")


def test_pkce_is_required_for_the_public_client(provider: ProviderInfo) -> None:
    redirect = requests.get(authorize_url(provider), timeout=TIMEOUT, allow_redirects=False)
    assert redirect.status_code in (302, 303)
    params = query(redirect.headers["Location"])
    assert params["error"] == "invalid_request"
    assert params["state"] == "state-123"


def test_exact_client_matches_the_port(provider: ProviderInfo, web: requests.Session) -> None:
    registered = provider.exact_redirect_uri(0)
    tokens = login_and_exchange(
        provider,
        web,
        client_id=provider.exact_client_id,
        redirect_uri=registered,
        audience=provider.audience,
    )
    assert jwt_parts(tokens["access_token"])[1]["aud"] == provider.audience
    assert "refresh_token" in tokens

    unregistered = max(provider.exact_ports) + 1
    _verifier, challenge = pkce_pair()
    url = authorize_url(
        provider,
        client_id=provider.exact_client_id,
        redirect_uri=f"http://127.0.0.1:{unregistered}/callback",
        challenge=challenge,
    )
    resp = web.get(url, timeout=TIMEOUT, allow_redirects=False)
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert "redirect_uri" in resp.text
    with pytest.raises(ScriptedUserError, match="HTTP 400"):
        complete_login(url, follow_callback=False)


def test_client_credentials_for_the_m2m_client(
    provider: ProviderInfo, web: requests.Session
) -> None:
    token_url = f"{provider.issuer}oauth/token"
    data = {
        "grant_type": "client_credentials",
        "audience": provider.audience,
        "scope": "read:messages",
    }
    basic = web.post(
        token_url,
        data=data,
        auth=(provider.m2m_client_id, provider.m2m_client_secret),
        timeout=TIMEOUT,
    )
    post = web.post(
        token_url,
        data={
            **data,
            "client_id": provider.m2m_client_id,
            "client_secret": provider.m2m_client_secret,
        },
        timeout=TIMEOUT,
    )
    for resp in (basic, post):
        assert resp.status_code == 200, resp.text
        claims = jwt_parts(resp.json()["access_token"])[1]
        assert claims["aud"] == provider.audience and claims["iss"] == provider.issuer
        assert claims["client_id"] == provider.m2m_client_id
        api = call_api(provider, web, resp.json()["access_token"])
        assert api.status_code == 200 and api.json()["scope"] == "read:messages"

    wrong = web.post(token_url, data=data, auth=(provider.m2m_client_id, "wrong"), timeout=TIMEOUT)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def _device_code(provider: ProviderInfo, web: requests.Session) -> dict[str, Any]:
    resp = web.post(
        f"{provider.issuer}oauth/device/code",
        data={"client_id": provider.client_id, "scope": SCOPES, "audience": provider.audience},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["verification_uri"] == f"{provider.issuer}activate"
    assert body["verification_uri_complete"].startswith(f"{provider.issuer}activate?user_code=")
    assert body["interval"] == 5 and body["expires_in"] == 600
    return body


def _device_token(
    provider: ProviderInfo, web: requests.Session, device_code: str
) -> requests.Response:
    return web.post(
        f"{provider.issuer}oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": device_code,
            "client_id": provider.client_id,
        },
        timeout=TIMEOUT,
    )


def test_device_flow(provider: ProviderInfo, web: requests.Session) -> None:
    device = _device_code(provider, web)
    pending = _device_token(provider, web, device["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"

    text = complete_device_login(
        device["verification_uri"], device["user_code"], username="alice@example.com"
    )
    assert "Device activated" in text

    tokens: dict[str, Any] = {}
    deadline = time.monotonic() + 15
    for _ in range(10):
        time.sleep(max(1, int(device.get("interval", 5))) if _ else 0)
        resp = _device_token(provider, web, device["device_code"])
        if resp.status_code == 200:
            tokens = resp.json()
            break
        assert resp.json()["error"] in ("authorization_pending", "slow_down"), resp.text
        if time.monotonic() > deadline:
            break
    assert tokens, "no tokens from the device flow"
    assert jwt_parts(tokens["access_token"])[1]["sub"] == "auth0|alice"
    assert jwt_parts(tokens["access_token"])[1]["aud"] == provider.audience
    assert "refresh_token" in tokens and "id_token" in tokens

    # verification_uri_complete (the code in the URL) and Deny.
    other = _device_code(provider, web)
    complete_device_login(other["verification_uri_complete"], decision="deny")
    denied = _device_token(provider, web, other["device_code"])
    assert denied.status_code == 400 and denied.json()["error"] == "access_denied"

    with pytest.raises(ScriptedUserError, match="code"):
        complete_device_login(device["verification_uri"], "BCDF-GHJK")


def test_logs_never_contain_tokens(web: requests.Session) -> None:
    with running_provider() as info:
        tokens = login_and_exchange(info, web, audience=info.audience)
        refreshed = refresh(info, web, tokens["refresh_token"]).json()
        assert call_api(info, web, refreshed["access_token"]).status_code == 200
        time.sleep(0.2)
        log = Path(info.log_path).read_text()
    assert "GET /authorize -> 303" in log
    for value in (
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        refreshed["refresh_token"],
    ):
        assert value not in log
    assert "code=" not in log and "state-123" not in log


def test_short_access_token_ttl_expires(web: requests.Session) -> None:
    with running_provider(access_token_ttl=1) as info:
        resp = web.post(
            f"{info.issuer}oauth/token",
            data={
                "grant_type": "client_credentials",
                "audience": info.audience,
                "scope": "read:messages",
            },
            auth=(info.m2m_client_id, info.m2m_client_secret),
            timeout=TIMEOUT,
        )
        assert resp.status_code == 200 and resp.json()["expires_in"] == 1
        time.sleep(2.2)
        expired = call_api(info, web, resp.json()["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error_description"] == "token expired"


def test_provider_stops_when_the_context_exits() -> None:
    import os

    with running_provider() as info:
        pid = info.pid
        issuer = info.issuer
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{issuer}.well-known/openid-configuration", timeout=2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_ready_line_fails_with_stderr_tail() -> None:
    # -1 is rejected by the server's own argument parser: it exits without a ready line.
    with pytest.raises(ProviderError, match="api-port"), running_provider(api_port=-1):
        pass


def test_missing_node_modules_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devprovider

    monkeypatch.setattr(devprovider, "PROVIDER_DIR", tmp_path)
    with pytest.raises(ProviderError, match="npm ci --prefix provider"), running_provider():
        pass
