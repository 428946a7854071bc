"""F. Refresh against a misbehaving provider (S-31, S-50, S-53, S-54).

tests/test_credentials.py covers rotation, single flight, the FRESH/STALE/EXPIRED walk and
invalid_grant with a stand-in client; these run the refresh against the scripted provider.
"""

from __future__ import annotations

import threading

import pytest
import requests
from scripted_provider import ScriptedProvider

import nbauth
from nbauth.errors import LoginRequiredError, ProviderError

TOKEN = "/oauth/token"


def login(p):
    return nbauth.login(domain=p.issuer, client_id=p.client_id, port=0, timeout=20,
                        open_browser=lambda url: threading.Thread(
                            target=requests.get, args=(url,), kwargs={"timeout": 10},
                            daemon=True).start())


def test_S31_S50_a_failed_refresh_is_not_retried_and_keeps_the_refresh_token():
    """A 503 during refresh: one request, a clear error, and the refresh token is kept for the
    next attempt (the provider did not take it); the next refresh succeeds and rotates."""
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        creds = login(p)
        first_rt = creds._refresh_token
        p.token_answers = [ScriptedProvider.raw(503, b"<h1>busy</h1>")]
        with pytest.raises(ProviderError, match="503"):
            creds.refresh()
        assert len(p.calls(TOKEN)) == 2 and creds.valid and creds._refresh_token == first_rt
        p.token_answers = [ScriptedProvider.good_tokens()]
        creds.refresh()
        assert p.calls(TOKEN)[-1].form["refresh_token"] == first_rt
        assert creds._refresh_token != first_rt  # rotated
        creds.refresh()
        assert p.calls(TOKEN)[-1].form["refresh_token"] not in (first_rt, None)


def test_S53_invalid_grant_on_refresh_ends_the_login_after_one_request():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        creds = login(p)
        p.token_answers = [ScriptedProvider.oauth_error("invalid_grant")]
        with pytest.raises(LoginRequiredError, match="%auth0_login"):
            creds.refresh()
        calls = len(p.calls(TOKEN))
        with pytest.raises(LoginRequiredError):
            creds.token()
        assert len(p.calls(TOKEN)) == calls == 2 and creds._refresh_token is None


def test_S54_renewal_never_goes_through_the_authorization_endpoint():
    """Auth0 rejects prompt=none for loopback callbacks when non-verifiable-callback
    confirmation is on: renewal is by refresh token only, never a silent authorize."""
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        creds = login(p)
        for _ in range(3):
            creds.refresh()
        creds.session().get(p.issuer + ".well-known/jwks.json", timeout=10)
        authorize = p.calls("/authorize")
    assert len(authorize) == 1 and authorize[0].query.get("prompt") != "none"
