"""C and K. The authorization response against the real provider (S-20, S-21, S-23, K).

The real provider sends RFC 9207's `iss` and advertises it; these tests tamper with the response
between the provider and nbauth's listener, as a local attacker could, and prove that nbauth
refuses it *before* using the code: the code is still unredeemed afterwards (the test redeems it
itself). An attacker who learned the state and injects a code from their own login gets nothing.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from scripted_user import complete_login

import nbauth
from nbauth.authorize import build_authorization_request
from nbauth.discovery import discover
from nbauth.errors import InvalidGrantError, IssuerMismatchError
from nbauth.http import ProviderClient

pytestmark = pytest.mark.provider


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def redeem(provider, pending, code: str, verifier: str | None) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "client_id": provider.client_id,
            "redirect_uri": pending.redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    return requests.post(provider.issuer + "oauth/token", data=form, timeout=10)


@pytest.mark.parametrize("tamper", ["iss_removed", "iss_other", "iss_without_slash"])
def test_S21_S20_tampered_iss_is_refused_and_the_code_is_never_redeemed(provider, tamper):
    pending = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    try:
        assert pending._metadata.authorization_response_iss_parameter_supported is True
        redirect = complete_login(pending.start_url, follow_callback=False)
        params = query_of(redirect)
        assert params["iss"] == provider.issuer  # the real provider sends RFC 9207 iss
        if tamper == "iss_removed":
            del params["iss"]
        elif tamper == "iss_other":
            params["iss"] = "https://evil.example/"
        else:
            params["iss"] = provider.issuer.rstrip("/")
        page = requests.get(f"{pending.redirect_uri}?{urlencode(params)}", timeout=10)
        assert page.status_code == 400 and params["code"] not in page.text
        with pytest.raises(IssuerMismatchError) as info:
            pending.wait(10)
        assert params["code"] not in str(info.value) and params["state"] not in str(info.value)
        # nbauth never sent the code: it is still good for one redemption (by the test)
        answer = redeem(provider, pending, params["code"], pending._request.pkce.verifier)
        assert answer.status_code == 200, answer.text
    finally:
        pending.cancel()


def test_K_S23_injected_code_from_the_attackers_own_login_fails_closed(provider):
    """The attacker (Bob, on the same host) learned the victim's state — from a shared notebook
    or a process list — runs his own login with his own PKCE and the victim's redirect URI, and
    delivers *his* code with the victim's state. The victim's token request carries the victim's
    verifier, which does not match Bob's challenge: invalid_grant, nothing stored, exactly one
    token request (the code is not retried)."""
    victim = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    try:
        metadata = discover(provider.issuer, ProviderClient())
        bob = build_authorization_request(metadata, client_id=provider.client_id,
                                          redirect_uri=victim.redirect_uri)
        bobs_redirect = complete_login(bob.url, username="bob@example.com",
                                       follow_callback=False)
        injected = query_of(bobs_redirect)
        injected["state"] = victim._request.state  # the leaked state
        page = requests.get(f"{victim.redirect_uri}?{urlencode(injected)}", timeout=10)
        assert page.status_code == 400
        with pytest.raises(InvalidGrantError) as info:
            victim.wait(10)
        assert victim.result() is None
        assert injected["code"] not in str(info.value)
        # the login is over: the real callback (or a replay) finds no listener
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{victim.redirect_uri}?{urlencode(injected)}", timeout=5)
    finally:
        victim.cancel()


def test_K_a_captured_code_is_useless_without_the_verifier_and_cannot_be_replayed(provider):
    """The attacker captures the callback (code and state) of a login that then completes: the
    code cannot be redeemed without the verifier (PKCE), nor after nbauth redeemed it, and the
    listener that received it is gone."""
    pending = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    redirect = complete_login(pending.start_url, follow_callback=False)
    code = query_of(redirect)["code"]
    assert redeem(provider, pending, code, None).status_code == 400  # no verifier
    assert redeem(provider, pending, code, "x" * 43).status_code == 400  # a guessed verifier
    requests.get(redirect, timeout=10)
    credentials = pending.wait(10)  # failed attempts by others did not spoil the real login
    assert credentials.identity.email == "demo@example.com"
    assert redeem(provider, pending, code, pending._request.pkce.verifier).status_code == 400
    with pytest.raises(requests.ConnectionError):
        requests.get(redirect, timeout=5)
