"""A misbehaving provider (scripted stand-in): clear nbauth errors, never JSONDecodeError/KeyError,
and no token request after a failed check (S-20, S-21, S-23, S-30, S-06)."""

from __future__ import annotations

import json
import os

import pytest
import requests
from scripted_provider import ScriptedProvider

import nbauth
from nbauth.errors import (
    IdTokenError,
    InvalidGrantError,
    IssuerMismatchError,
    OAuthError,
    ProviderError,
    ProviderUnreachableError,
)
from nbauth.http import ProviderClient


def follow(url):
    """A browser: the stand-in's /authorize redirects straight back to the listener."""
    requests.get(url, timeout=10)


def run_login(p, **kwargs):
    kwargs.setdefault("open_browser", lambda url: __import__("threading").Thread(
        target=follow, args=(url,), daemon=True).start())
    return nbauth.login(domain=p.issuer, client_id=p.client_id, port=0, timeout=20, **kwargs)


def test_scripted_happy_path_sends_the_bound_verifier_and_identical_redirect_uri():
    import base64
    import hashlib

    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        creds = run_login(p)
        (authz,), (token,) = p.calls("/authorize"), p.calls("/oauth/token")
    assert creds.identity.email == "scripted@example.com"
    assert token.form["grant_type"] == "authorization_code"
    assert token.form["redirect_uri"] == authz.query["redirect_uri"]
    assert token.form["client_id"] == p.client_id
    digest = hashlib.sha256(token.form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == authz.query["code_challenge"]


@pytest.mark.parametrize("answer,error,needle", [
    (ScriptedProvider.raw(502, b"<html><body>Bad gateway</body></html>"), ProviderError, "502"),
    (ScriptedProvider.raw(500, b'{"oops": 1}', "application/json"), ProviderError, "500"),
    (ScriptedProvider.raw(503, b""), ProviderError, "try again"),
    (ScriptedProvider.raw(200, b"<html>not json</html>"), ProviderError, "not a JSON object"),
    (ScriptedProvider.raw(200, b'{"access_token": "x", "tok', "application/json"),
     ProviderError, "not a JSON object"),
    (ScriptedProvider.raw(200, b"[1, 2]", "application/json"), ProviderError, "JSON object"),
    (ScriptedProvider.raw(200, b'{"token_type": "Bearer"}', "application/json"),
     ProviderError, "access_token"),
    (ScriptedProvider.raw(400, json.dumps({"error": "invalid_grant", "error_description":
                                          "Invalid authorization code"}).encode(),
                          "application/json"), InvalidGrantError, "Invalid authorization code"),
    (ScriptedProvider.raw(401, b'{"error": "invalid_client"}', "application/json"),
     OAuthError, "invalid_client"),
])
def test_token_endpoint_failures_become_clear_errors(answer, error, needle):
    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(error, match=needle) as info:
            run_login(p)
        assert len(p.calls("/oauth/token")) == 1  # a code is never tried twice
    assert not isinstance(info.value, (json.JSONDecodeError, KeyError))
    assert "code-" not in str(info.value)


def test_slow_token_endpoint_times_out_clearly():
    with ScriptedProvider(token_answers=[ScriptedProvider.raw(200, b"{}", delay=3)]) as p:
        with pytest.raises(ProviderUnreachableError, match="did not answer"):
            run_login(p, client=ProviderClient(timeout=(2, 1)))


@pytest.mark.parametrize("overrides,reason", [
    ({"nonce": "someone-elses-nonce"}, "nonce"),
    ({"iss": "http://127.0.0.1:1/"}, "issuer"),
    ({"aud": "another-client"}, "another application"),
    ({"exp": 1_000_000}, "expired"),
])
def test_bad_id_token_stores_nothing(overrides, reason):
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens(**overrides)]) as p:
        with pytest.raises(IdTokenError, match=reason):
            run_login(p)


@pytest.mark.parametrize("send_iss,iss_value", [(False, None), (True, "http://127.0.0.1:1/")])
def test_issuer_mix_up_stops_before_the_token_request(send_iss, iss_value):
    with ScriptedProvider(send_iss=send_iss, iss_value=iss_value,
                          token_answers=[ScriptedProvider.good_tokens()]) as p:
        with pytest.raises(IssuerMismatchError):
            run_login(p)
        assert p.calls("/oauth/token") == []


def test_provider_that_does_not_advertise_iss_may_omit_it():
    with ScriptedProvider(advertise_iss=False, send_iss=False,
                          token_answers=[ScriptedProvider.good_tokens()]) as p:
        assert run_login(p).identity.subject == "scripted|1"


def test_discovery_that_is_html_is_explained():
    with ScriptedProvider(extra_metadata={}) as p:
        p.metadata = lambda: "not a dict"  # type: ignore[method-assign]
        with pytest.raises(ProviderError):
            run_login(p)


def test_timeout_during_the_code_exchange_lets_the_exchange_decide():
    """The browser delivered the code just before the timeout: the login must not be thrown
    away (the browser would say 'logged in' while the notebook says 'nobody logged in')."""
    slow_good = ScriptedProvider.good_tokens()

    def answer(form, p):
        import time as _time

        _time.sleep(2)
        return slow_good(form, p)

    with ScriptedProvider(token_answers=[answer]) as p:
        pages = []
        creds = nbauth.login(domain=p.issuer, client_id=p.client_id, port=0, timeout=1,
                             open_browser=lambda url: __import__("threading").Thread(
                                 target=lambda: pages.append(requests.get(url, timeout=10).text),
                                 daemon=True).start())
        assert creds.identity.email == "scripted@example.com"


def test_cancel_during_the_code_exchange_is_what_the_browser_page_says():
    import threading
    import time as _time

    slow_good = ScriptedProvider.good_tokens()
    pages = []

    def answer(form, p):
        _time.sleep(1)
        return slow_good(form, p)

    with ScriptedProvider(token_answers=[answer]) as p:
        pending = nbauth.start_login(p.issuer, p.client_id, port=0, timeout=20)
        browser = threading.Thread(target=lambda: pages.append(requests.get(pending.url, timeout=10)))
        browser.start()
        for _ in range(100):
            if p.calls("/oauth/token"):
                break
            _time.sleep(0.02)
        pending.cancel("Cancelled in the notebook.")
        browser.join(10)
        with pytest.raises(nbauth.LoginCancelledError):
            pending.wait(5)
    assert pages[0].status_code == 409
    assert "Cancelled in the notebook" in pages[0].text and "logged in as" not in pages[0].text


def test_errors_carry_no_frames_whose_locals_hold_secrets():
    """Tools that print locals (Sentry, pytest --showlocals, %xmode Verbose) must find none."""
    import traceback

    fixed = {"access_token": "AT-SECRET-4242", "refresh_token": "RT-SECRET-4242",
             "token_type": "Bearer", "expires_in": 60}

    def answer(form, p):
        body = dict(fixed, id_token=p.id_token("wrong-nonce"))
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(IdTokenError) as info:
            run_login(p)
        code = next(iter(p._codes))
        verifier = p.calls("/oauth/token")[0].form["code_verifier"]
    # nbauth's own frames: by the package's folder (a checkout may itself be named nbauth)
    package = os.path.dirname(nbauth.__file__) + os.sep
    frames = [frame for frame, _ in traceback.walk_tb(info.value.__traceback__)
              if frame.f_code.co_filename.startswith(package)]
    assert frames, "the public entry point's frame is there"
    nbauth_locals = "".join(repr(frame.f_locals) for frame in frames)  # (the test's own
    for secret in ("AT-SECRET-4242", "RT-SECRET-4242", code, verifier):  # frame holds `fixed`)
        assert secret not in nbauth_locals
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_https_to_a_local_provider_without_tls_says_to_use_plain_http(provider):
    plain = provider.issuer  # http://127.0.0.1:PORT/
    with pytest.raises(ProviderUnreachableError) as caught:
        nbauth.start_login(plain.replace("http://", "https://", 1), provider.client_id, port=0)
    message = str(caught.value)
    assert "certificate" in message and f"plain http: {plain}" in message
