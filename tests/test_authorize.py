"""Authorization request building and response checks (RFC 6749 §4.1, RFC 9207; S-05, S-20, S-21)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from nbauth.authorize import (
    DEFAULT_SCOPE,
    build_authorization_request,
    check_authorization_response,
)
from nbauth.discovery import ProviderMetadata
from nbauth.errors import (
    AccessDeniedError,
    ConfigurationError,
    IssuerMismatchError,
    OAuthError,
    StateMismatchError,
)
from nbauth.pkce import s256_challenge

ISSUER = "https://tenant.example.auth0.com/"


def metadata(**overrides):
    doc = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "authorize",
        "token_endpoint": ISSUER + "oauth/token",
        "jwks_uri": ISSUER + ".well-known/jwks.json",
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }
    doc.update(overrides)
    return ProviderMetadata.from_document(doc, expected_issuer=ISSUER)


def build(**kwargs):
    kwargs.setdefault("client_id", "abc")
    kwargs.setdefault("redirect_uri", "http://127.0.0.1:8765/callback")
    return build_authorization_request(kwargs.pop("meta", None) or metadata(), **kwargs)


def query(request):
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def test_authorize_url_carries_every_required_parameter():
    request = build(audience="https://api.example.com")
    q = query(request)
    assert q["response_type"] == "code"
    assert q["client_id"] == "abc"
    assert q["redirect_uri"] == "http://127.0.0.1:8765/callback"
    assert q["scope"] == DEFAULT_SCOPE == "openid profile email offline_access"
    assert q["audience"] == "https://api.example.com"
    assert q["code_challenge_method"] == "S256"
    assert q["code_challenge"] == s256_challenge(request.pkce.verifier)
    assert q["state"] == request.state and q["nonce"] == request.nonce
    assert "code_verifier" not in q
    assert urlsplit(request.url).path == "/authorize"


@pytest.mark.parametrize("scope,sent", [
    (" openid  profile ", "openid profile"),
    ("openid\tprofile\nemail", "openid profile email"),
    ("openid profile openid", "openid profile"),
])
def test_scope_whitespace_is_normalised(scope, sent):
    request = build(scope=scope)
    assert query(request)["scope"] == sent
    assert request.requested_scope == sent  # what refresh and remembered logins use


@pytest.mark.parametrize("scope,sent", [
    ("profile email", "openid profile email"),
    ("read:messages offline_access", "openid read:messages offline_access"),
    ("  email  ", "openid email"),
    ("OpenID email", "openid OpenID email"),  # scopes are case-sensitive (RFC 6749 §3.3)
    ("profile openid", "profile openid"),  # present: kept where the user put it
])
def test_openid_is_always_requested(scope, sent):
    request = build(scope=scope)
    assert query(request)["scope"] == sent
    assert request.requested_scope == sent


@pytest.mark.parametrize("scope", ["", "   ", "\t\n"])
def test_empty_scope_is_a_configuration_error_naming_the_scope(scope):
    with pytest.raises(ConfigurationError, match="scope is empty"):
        build(scope=scope)


@pytest.mark.parametrize("scope", [None, b"openid", ["openid", "email"], 3])
def test_non_string_scope_is_a_configuration_error_naming_the_scope(scope):
    with pytest.raises(ConfigurationError, match="scope must be a string"):
        build(scope=scope)


@pytest.mark.parametrize("scope", ['openid "email"', "openid pro\\file", "openid \x00x",
                                   "openid écrire"])
def test_scope_characters_outside_rfc6749_are_refused_before_the_provider(scope):
    with pytest.raises(ConfigurationError, match="RFC 6749"):
        build(scope=scope)


@pytest.mark.parametrize("scope,hint", [
    ("openid,profile,email", "--scope openid profile email"),
    ("openid, profile email", "--scope openid profile email"),
    ("read:messages,", "--scope read:messages"),
])
def test_a_comma_separated_scope_is_refused_with_the_spaced_form(scope, hint):
    with pytest.raises(ConfigurationError, match="separated by commas") as info:
        build(scope=scope)
    assert hint in str(info.value)


def test_no_audience_parameter_when_none_given():
    assert "audience" not in query(build())


def test_state_and_nonce_are_long_and_fresh_per_attempt():
    states, nonces = set(), set()
    for _ in range(2000):
        request = build()
        assert len(request.state) >= 43 and len(request.nonce) >= 43  # 256 bits base64url
        states.add(request.state)
        nonces.add(request.nonce)
    assert len(states) == len(nonces) == 2000


def test_auth0_extras_pass_through():
    q = query(build(extra_params={"organization": "org_1", "connection": "github",
                                  "login_hint": "a@b.c", "prompt": "login"}))
    assert (q["organization"], q["connection"], q["login_hint"], q["prompt"]) == (
        "org_1", "github", "a@b.c", "login")


@pytest.mark.parametrize("key", ["state", "code_challenge_method", "redirect_uri", "response_type"])
def test_protocol_parameters_cannot_be_overridden(key):
    with pytest.raises(ConfigurationError, match=key):
        build(extra_params={key: "x"})


def test_unknown_extra_parameter_is_named():
    with pytest.raises(ConfigurationError, match="orgnization"):
        build(extra_params={"orgnization": "typo"})


def test_provider_without_s256_is_refused_not_downgraded():
    with pytest.raises(ConfigurationError, match="S256"):
        build(meta=metadata(code_challenge_methods_supported=["plain"]))


def test_existing_query_on_authorize_endpoint_is_kept():
    meta = metadata(authorization_endpoint=ISSUER + "authorize?tenant=x")
    assert query(build(meta=meta))["tenant"] == "x"


def test_good_response_returns_the_code():
    request = build()
    assert check_authorization_response(
        request, {"code": "c0de", "state": request.state, "iss": ISSUER}, iss_required=True
    ) == "c0de"


@pytest.mark.parametrize("params", [{"code": "c"}, {"code": "c", "state": "wrong"},
                                    {"code": "c", "state": ""}])
def test_missing_or_wrong_state_is_refused(params):
    with pytest.raises(StateMismatchError):
        check_authorization_response(build(), params, iss_required=False)


def test_error_without_the_right_state_is_a_state_mismatch_not_an_error():
    with pytest.raises(StateMismatchError):
        check_authorization_response(build(), {"error": "access_denied", "state": "x"},
                                     iss_required=False)


def test_error_with_the_right_state_raises_the_typed_error():
    request = build()
    with pytest.raises(AccessDeniedError) as info:
        check_authorization_response(
            request, {"error": "access_denied", "error_description": "User said no",
                      "state": request.state}, iss_required=False)
    assert "User said no" in str(info.value)
    assert request.state not in str(info.value)


AUDIENCE_HINT = "must equal the API's Identifier at the provider exactly, trailing slash included"


@pytest.mark.parametrize("error,description,cls", [
    ("invalid_target", "unknown audience", OAuthError),  # the bundled provider (RFC 8707)
    ("invalid_target", None, OAuthError),
    ("access_denied", "Service not found: https://api.example.com", AccessDeniedError),  # Auth0
    ("access_denied", " service not found: x", AccessDeniedError),
])
def test_an_unknown_audience_gets_the_audience_hint_not_approve_again(error, description, cls):
    request = build(audience="https://api.example.com")
    params = {"error": error, "state": request.state}
    if description:
        params["error_description"] = description
    with pytest.raises(cls) as info:
        check_authorization_response(request, params, iss_required=False)
    message = str(info.value)
    assert AUDIENCE_HINT in message and "--audience" in message
    assert "approve" not in message
    assert info.value.error == error


def test_access_denied_by_the_user_still_says_approve():
    request = build()
    with pytest.raises(AccessDeniedError) as info:
        check_authorization_response(request, {"error": "access_denied", "state": request.state,
                                               "error_description": "User denied access"},
                                     iss_required=False)
    assert "approve" in str(info.value) and AUDIENCE_HINT not in str(info.value)


def test_provider_text_in_the_audience_error_is_still_sanitised():
    request = build()
    with pytest.raises(AccessDeniedError) as info:
        check_authorization_response(request, {
            "error": "access_denied", "state": request.state,
            "error_description": "Service not found: \x1b[31mhttps://x\x1b[0m" + "y" * 1000,
        }, iss_required=False)
    message = str(info.value)
    assert "\x1b" not in message and len(message) < 700 and AUDIENCE_HINT in message


# RFC 9207 §2.4: the 4-case table.
@pytest.mark.parametrize("advertised,iss,ok", [
    (True, ISSUER, True),
    (True, None, False),
    (False, None, True),
    (False, "https://evil.example/", False),
    (True, ISSUER.rstrip("/"), False),
])
def test_issuer_parameter(advertised, iss, ok):
    request = build()
    params = {"code": "c", "state": request.state}
    if iss is not None:
        params["iss"] = iss
    if ok:
        assert check_authorization_response(request, params, iss_required=advertised) == "c"
    else:
        with pytest.raises(IssuerMismatchError):
            check_authorization_response(request, params, iss_required=advertised)


def test_response_without_code_or_error():
    request = build()
    with pytest.raises(OAuthError):
        check_authorization_response(request, {"state": request.state}, iss_required=False)


def test_request_repr_and_pickle_hide_secrets():
    import pickle

    request = build()
    text = repr(request)
    assert request.state not in text and request.nonce not in text
    with pytest.raises(TypeError):
        pickle.dumps(request)
