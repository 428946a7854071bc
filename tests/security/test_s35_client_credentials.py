"""H and D. The confidential client (client credentials) against the scripted provider
(S-35, S-65, S-66). tests/test_machine.py runs it against the real provider."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import unquote_plus

import pytest
from scripted_provider import ScriptedProvider

import nbauth
from nbauth.errors import NbauthError

TOKEN = "/oauth/token"


def m2m_token(form, p):
    body = {"access_token": "at-" + secrets.token_urlsafe(24), "token_type": "Bearer",
            "expires_in": 3600}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.mark.parametrize("client_id,secret", [
    ("id:with%+", "s:e%c+r et/ä"),
    ("plain-id", "p+a+s+s:w:o:r:d" + "%" * 3),
])
def test_S35_client_secret_basic_form_encodes_id_and_secret_before_base64(client_id, secret):
    with ScriptedProvider(token_answers=[m2m_token]) as p:
        nbauth.client_credentials(p.issuer, client_id, client_secret=secret, prompt=False)
        (call,) = p.calls(TOKEN)
    scheme, _, encoded = call.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    raw = base64.b64decode(encoded).decode("ascii")  # form-encoded: plain ASCII
    user, _, password = raw.partition(":")  # the first ':' separates them, whatever they hold
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, secret)
    assert secret not in json.dumps(call.form) and call.form["grant_type"] == "client_credentials"


def test_S66_tokens_are_cached_until_stale_and_S65_the_secret_never_shows():
    secret = "cs-" + secrets.token_urlsafe(24)
    with ScriptedProvider(token_answers=[m2m_token]) as p:
        first = nbauth.client_credentials(p.issuer, "m2m", client_secret=secret, prompt=False,
                                          audience="https://api.example")
        for _ in range(2):
            again = nbauth.client_credentials(p.issuer, "m2m", client_secret=secret,
                                              prompt=False, audience="https://api.example")
            assert again.token() == first.token()
        assert len(p.calls(TOKEN)) == 1
        assert p.calls(TOKEN)[0].form["audience"] == "https://api.example"
        p.token_answers = [ScriptedProvider.oauth_error("invalid_client", 401,
                                                        error_description=f"bad {secret}")]
        with pytest.raises(NbauthError) as info:
            nbauth.client_credentials(p.issuer, "other", client_secret=secret, prompt=False)
    shown = str(info.value) + repr(info.value) + repr(first) + first._repr_html_()
    assert secret not in shown
