"""Credentials: expiry states with an injected clock, single-flight refresh, rotation (S-50…S-53)."""

from __future__ import annotations

import json
import threading

import pytest
from scripted_provider import ScriptedProvider

from nbauth.credentials import Credentials, Identity
from nbauth.errors import LoginRequiredError
from nbauth.tokens import TokenResponse, TokenState


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def rotating_answers(count):
    """Token answers that rotate the refresh token: rt-1 → rt-2 → …"""
    def make(i):
        def answer(form, p):
            body = {"access_token": f"at-{i}", "token_type": "Bearer", "expires_in": 3600,
                    "refresh_token": f"rt-{i}"}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return answer
    return [make(i) for i in range(2, count + 2)]


def credentials(p, clock, *, expires_in=3600.0, refresh_token="rt-1"):
    response = TokenResponse(access_token="at-1", token_type="Bearer",
                             expires_at=clock() + expires_in, scope="openid offline_access",
                             refresh_token=refresh_token)
    return Credentials(response, identity=Identity(subject="s"), issuer=p.issuer,
                       client_id=p.client_id, token_endpoint=p.issuer + "oauth/token", clock=clock)


def refresh_calls(p):
    return [r for r in p.calls("/oauth/token") if r.form.get("grant_type") == "refresh_token"]


def test_states_walk_fresh_stale_expired():
    with ScriptedProvider() as p:
        clock = Clock()
        creds = credentials(p, clock)
        assert creds.state is TokenState.FRESH
        clock.now += 3600 - 30
        assert creds.state is TokenState.STALE
        clock.now += 60
        assert creds.state is TokenState.EXPIRED


def test_fresh_token_is_used_without_a_refresh():
    with ScriptedProvider(token_answers=rotating_answers(1)) as p:
        creds = credentials(p, Clock())
        assert creds.token() == "at-1"
        assert refresh_calls(p) == []


def test_stale_token_is_refreshed_and_rotation_is_honoured():
    with ScriptedProvider(token_answers=rotating_answers(2)) as p:
        clock = Clock()
        creds = credentials(p, clock)
        seen = []
        creds.on_change(lambda c: seen.append(c.current_token))
        clock.now += 3590
        assert creds.token() == "at-2"
        clock.now += 3590
        assert creds.token() == "at-3"
        sent = [r.form["refresh_token"] for r in refresh_calls(p)]
        assert sent == ["rt-1", "rt-2"]  # the rotated token replaced the old one
        assert seen == ["at-2", "at-3"]


def test_response_without_a_new_refresh_token_keeps_the_old_one():
    def answer(form, p):
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"access_token": "at-x", "token_type": "Bearer", "expires_in": 3600}).encode()
    with ScriptedProvider(token_answers=[answer]) as p:
        clock = Clock()
        creds = credentials(p, clock)
        clock.now += 3590
        creds.token()
        clock.now += 3590
        creds.token()
        assert [r.form["refresh_token"] for r in refresh_calls(p)] == ["rt-1", "rt-1"]


def test_twenty_threads_at_expiry_cause_one_refresh():
    slow = ScriptedProvider.raw(200, json.dumps({
        "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt-2"}).encode(), "application/json", delay=0.3)
    with ScriptedProvider(token_answers=[slow]) as p:
        clock = Clock()
        creds = credentials(p, clock)
        clock.now += 3600
        barrier = threading.Barrier(20)
        results = []

        def ask():
            barrier.wait(timeout=10)
            results.append(creds.token())

        threads = [threading.Thread(target=ask) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert results == ["at-2"] * 20
        assert len(refresh_calls(p)) == 1


def test_invalid_grant_on_refresh_is_final():
    refused = ScriptedProvider.raw(400, b'{"error": "invalid_grant"}', "application/json")
    with ScriptedProvider(token_answers=[refused]) as p:
        clock = Clock()
        creds = credentials(p, clock)
        clock.now += 3600
        with pytest.raises(LoginRequiredError, match="%auth0_login"):
            creds.token()
        with pytest.raises(LoginRequiredError):
            creds.token()
        assert len(refresh_calls(p)) == 1
        assert not creds.valid and not creds.can_refresh


def test_expired_without_refresh_token_says_log_in_again():
    with ScriptedProvider() as p:
        clock = Clock()
        creds = credentials(p, clock, refresh_token=None)
        clock.now += 4000
        clock.now -= 3600  # while it lasts it is used, stale or not
        assert creds.token() == "at-1"
        clock.now += 3600
        assert creds.state is TokenState.EXPIRED
        with pytest.raises(LoginRequiredError, match="offline_access"):
            creds.token()
        with pytest.raises(LoginRequiredError, match="offline_access"):
            creds.refresh()


def test_short_lived_tokens_are_not_refreshed_on_every_use():
    with ScriptedProvider(token_answers=rotating_answers(1)) as p:
        clock = Clock()
        creds = credentials(p, clock, expires_in=30)
        clock.now += 10
        assert creds.state is TokenState.FRESH
        clock.now += 10
        assert creds.state is TokenState.STALE


def test_repr_never_shows_tokens():
    with ScriptedProvider() as p:
        creds = credentials(p, Clock())
        text = repr(creds) + repr(creds.session()) + repr(creds.auth) + creds._repr_html_()
        assert "at-1" not in text and "rt-1" not in text


def validating_credentials(p, clock, subject="scripted|1"):
    from nbauth.http import ProviderClient
    from nbauth.idtoken import JwksCache

    response = TokenResponse(access_token="at-1", token_type="Bearer",
                             expires_at=clock() + 3600, scope="openid offline_access",
                             refresh_token="rt-1")
    return Credentials(response, identity=Identity(subject=subject), issuer=p.issuer,
                       client_id=p.client_id, token_endpoint=p.issuer + "oauth/token",
                       jwks=JwksCache(p.issuer + ".well-known/jwks.json", ProviderClient()),
                       clock=clock)


def test_a_failed_id_token_check_on_refresh_still_keeps_the_rotated_refresh_token():
    from nbauth.errors import IdTokenError

    def answer(form, p):
        body = {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "rt-2", "id_token": p.id_token(None, aud="someone-else")}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    with ScriptedProvider(token_answers=[answer]) as p:
        clock = Clock(__import__("time").time())
        creds = validating_credentials(p, clock)
        with pytest.raises(IdTokenError):
            creds.refresh()
        assert creds._refresh_token == "rt-2"  # rt-1 is spent at the provider
        assert creds.current_token == "at-1"  # the unverified response is not used


def test_a_refresh_for_another_user_ends_the_login():
    def answer(form, p):
        body = {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "rt-2", "id_token": p.id_token(None, sub="someone|else")}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    with ScriptedProvider(token_answers=[answer]) as p:
        creds = validating_credentials(p, Clock(__import__("time").time()))
        with pytest.raises(LoginRequiredError, match="another user"):
            creds.refresh()
        assert not creds.valid


def test_provider_error_text_is_bounded_and_printable():
    from nbauth.errors import oauth_error

    error = oauth_error("access_denied", "\x1b[31mred\x1b[0m\nline two " + "x" * 5000)
    assert "\x1b" not in str(error) and "\n" not in str(error)
    assert len(str(error)) < 600


# -- a token response without expires_in: the JWT's own exp (for scheduling only) ------------
def jwt_access_token(**claims):
    import jwt

    return jwt.encode(claims, "not-the-providers-key-" * 2, algorithm="HS256")


def test_without_expires_in_a_jwt_access_tokens_exp_sets_the_expiry():
    from nbauth.tokens import parse_token_response

    now = 1_000_000.0
    body = {"access_token": jwt_access_token(exp=now + 300, iat=now, sub="x"),
            "token_type": "Bearer", "refresh_token": "rt-1"}
    response = parse_token_response(body, now=now)
    assert response.expires_at == now + 300
    # read without verifying the signature: the key above is not the provider's
    clock = Clock(now)
    creds = Credentials(response, identity=Identity(subject="s"), issuer="https://x.test/",
                        client_id="c", token_endpoint="https://x.test/oauth/token", clock=clock)
    assert creds.state is TokenState.FRESH
    clock.now += 250
    assert creds.state is TokenState.STALE  # so it is refreshed, instead of fresh forever


def test_without_expires_in_the_background_refresh_is_scheduled_before_the_jwts_exp():
    import time

    from nbauth.tokens import parse_token_response

    now = time.time()
    response = parse_token_response({"access_token": jwt_access_token(exp=now + 600),
                                     "token_type": "Bearer", "refresh_token": "rt-1"}, now=now)
    creds = Credentials(response, identity=Identity(subject="s"), issuer="https://x.test/",
                        client_id="c", token_endpoint="https://x.test/oauth/token")
    creds.start_auto_refresh()
    try:
        due = creds.next_refresh_at
        assert due is not None and abs(due - (now + 600 - 60)) < 5  # exp less the threshold
    finally:
        creds.stop_auto_refresh()


@pytest.mark.parametrize("token", [
    "at-opaque-value",                                   # not a JWT
    "a.b.c", "....", "eyJhbGciOiJub25lIn0.W10.",          # garbage, a JSON array as claims
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",          # a JWT without exp
])
def test_without_expires_in_a_non_jwt_or_garbage_token_stays_unknown(token):
    from nbauth.tokens import parse_token_response

    body = {"access_token": token, "token_type": "Bearer"}
    assert parse_token_response(body, now=1000.0).expires_at is None


@pytest.mark.parametrize("exp", [True, "2000", 1e400, float("nan"), 10**400, 500.0, 10**12])
def test_without_expires_in_an_unusable_exp_stays_unknown(exp):
    import base64

    from nbauth.tokens import parse_token_response

    def segment(text):
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    token = f"{segment(json.dumps({'alg': 'RS256'}))}.{segment(json.dumps({'exp': exp}))}.c2ln"
    body = {"access_token": token, "token_type": "Bearer"}
    assert parse_token_response(body, now=1000.0).expires_at is None  # past, absurd or not a number


def test_expires_in_wins_over_the_jwts_exp():
    from nbauth.tokens import parse_token_response

    body = {"access_token": jwt_access_token(exp=5000), "token_type": "Bearer",
            "expires_in": 60}
    assert parse_token_response(body, now=1000.0).expires_at == 1060.0


def test_a_clock_behind_the_providers_does_not_push_the_expiry_past_the_tokens_lifetime():
    from nbauth.tokens import parse_token_response

    provider_now = 2000.0
    token = jwt_access_token(iat=provider_now, exp=provider_now + 300)
    behind = parse_token_response({"access_token": token, "token_type": "Bearer"}, now=1000.0)
    assert behind.expires_at == 1000.0 + 300  # not 1300 s from now
    ahead = parse_token_response({"access_token": token, "token_type": "Bearer"}, now=2100.0)
    assert ahead.expires_at == 2300.0  # the exp by the provider's clock, sooner is safe


def test_a_token_type_that_repeats_a_token_is_not_echoed():
    from nbauth.errors import ProviderError
    from nbauth.tokens import parse_token_response

    token = "0" * 20  # the example Hypothesis found (tests/security/test_properties.py)
    for body in ({"access_token": token, "token_type": token},
                 {"access_token": "at", "refresh_token": token, "token_type": token + "x"}):
        with pytest.raises(ProviderError, match="withheld") as info:
            parse_token_response(body, now=0)
        assert token not in str(info.value) + repr(info.value)
    with pytest.raises(ProviderError, match="'mac'"):
        parse_token_response({"access_token": "at-1", "token_type": "mac"}, now=0)


# -- where to end the browser session at the provider ---------------------------------------
def logout_url(issuer, end_session_endpoint=None):
    response = TokenResponse(access_token="at-1", token_type="Bearer", expires_at=None,
                             scope=None)
    creds = Credentials(response, identity=Identity(), issuer=issuer, client_id="my client",
                        token_endpoint=issuer + "oauth/token",
                        end_session_endpoint=end_session_endpoint)
    return creds.end_session_url()


@pytest.mark.parametrize("issuer", ["https://example.auth0.com/", "https://example.eu.auth0.com/",
                                    "https://Example.US.Auth0.com/"])
def test_an_auth0_tenant_without_end_session_endpoint_gets_v2_logout(issuer):
    assert logout_url(issuer) == f"{issuer}v2/logout?client_id=my+client"


def test_an_advertised_end_session_endpoint_wins():
    assert logout_url("https://example.auth0.com/", "https://example.auth0.com/oidc/logout") == (
        "https://example.auth0.com/oidc/logout?client_id=my+client")
    assert logout_url("https://login.example.com/", "https://login.example.com/end?x=1") == (
        "https://login.example.com/end?x=1&client_id=my+client")


@pytest.mark.parametrize("issuer", [
    "https://gitlab.com/",                       # /oauth/token too, but no /v2/logout
    "https://login.example.com/realms/data/",
    "https://example.auth0.com.evil.test/",      # not an auth0.com host
    "https://evilauth0.com/",
    "http://example.auth0.com/",                 # Auth0 is https only
])
def test_other_providers_without_end_session_endpoint_get_no_logout_url(issuer):
    assert logout_url(issuer) is None


@pytest.mark.parametrize("granted,refresh_token,expected", [
    ("openid profile email offline_access", "rt", None),
    ("openid profile email", None, "No refresh token was granted (offline_access)"),
    ("openid email offline_access", "rt", "The provider did not grant profile."),
    (None, "rt", None),  # no scope in the answer: what was asked was granted (RFC 6749 §5.1)
])
def test_scope_shortfall_says_what_was_asked_for_and_not_granted(granted, refresh_token,
                                                                 expected):
    response = TokenResponse(access_token="at-1", token_type="Bearer", expires_at=None,
                             scope=granted, refresh_token=refresh_token)
    creds = Credentials(response, identity=Identity(subject="s"), issuer="https://t/",
                        client_id="c", token_endpoint="https://t/oauth/token",
                        requested_scope="openid profile email offline_access")
    shortfall = creds.scope_shortfall()
    if expected is None:
        assert shortfall is None
    else:
        assert expected in shortfall and "rt" not in shortfall.replace("grant", "")
