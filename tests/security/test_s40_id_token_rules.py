"""E. ID-token rules added by issue 6: auth_time when max_age was sent, and the Auth0
organization (S-40, OIDC Core §3.1.2.1 and §3.1.3.7 step 13; auth0-python's org_id/org_name
checks). The rest of the S-40 matrix is in tests/test_idtoken.py."""

from __future__ import annotations

import threading

import pytest
import requests
from scripted_provider import ScriptedProvider
from test_idtoken import NOW, claims, sign, validate

import nbauth
from nbauth.authorize import build_authorization_request
from nbauth.errors import ConfigurationError, IdTokenError


@pytest.mark.parametrize("payload,max_age,reason", [
    (claims(), 300, "'auth_time' claim is missing"),
    (claims(auth_time=NOW - 1000), 300, "older than the max_age"),
    (claims(auth_time="yesterday"), 300, "'auth_time' claim is not a number"),
])
def test_S40_max_age_requires_a_recent_auth_time(payload, max_age, reason):
    with pytest.raises(IdTokenError, match=reason):
        validate(sign(payload), max_age=max_age)


def test_S40_recent_auth_time_within_max_age_and_leeway_is_accepted():
    assert validate(sign(claims(auth_time=NOW - 320)), max_age=300)  # 60 s leeway
    assert validate(sign(claims()), max_age=None)  # not sent: auth_time not required


@pytest.mark.parametrize("payload,organization,ok", [
    (claims(org_id="org_abc"), "org_abc", True),
    (claims(org_id="org_xyz"), "org_abc", False),
    (claims(), "org_abc", False),
    (claims(org_name="acme"), "Acme", True),  # Auth0 stores organization names in lower case
    (claims(org_name="evil"), "acme", False),
    (claims(org_id="acme"), "acme", False),  # a name is checked against org_name only
])
def test_S40_auth0_organization_is_checked(payload, organization, ok):
    if ok:
        assert validate(sign(payload), organization=organization)
    else:
        with pytest.raises(IdTokenError, match="organization") as info:
            validate(sign(payload), organization=organization)
        assert "org_xyz" not in str(info.value) and "evil" not in str(info.value)


def test_S40_max_age_must_be_a_number_of_seconds():
    with ScriptedProvider() as p:
        from nbauth.discovery import ProviderMetadata

        metadata = ProviderMetadata.from_document(p.metadata(), expected_issuer=p.issuer)
    with pytest.raises(ConfigurationError, match="max_age"):
        build_authorization_request(metadata, client_id="c", redirect_uri="http://127.0.0.1:1/",
                                    extra_params={"max_age": "soon"})


def _browse(url):
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10},
                     daemon=True).start()


def test_S40_max_age_sent_and_no_auth_time_returned_end_to_end():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        with pytest.raises(IdTokenError, match="auth_time"):
            nbauth.login(domain=p.issuer, client_id=p.client_id, port=0, timeout=20,
                         open_browser=_browse, extra_params={"max_age": "60"})
        assert p.calls("/authorize")[0].query["max_age"] == "60"


@pytest.mark.provider
def test_S40_real_provider_sends_auth_time_for_max_age(provider, browser):
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id, port=0,
                         timeout=60, open_browser=person, extra_params={"max_age": "600"})
    person.join()
    assert creds.identity.email == "demo@example.com"
