"""Property-based tests (Hypothesis) for every parser of untrusted input.

The callback query (the listener's parser and the authorization-response checks), token
responses, the device authorization response, discovery documents, JWKS documents, ID tokens
and provider answers as bytes. For any input: only NbauthError subclasses are raised, messages
never echo a value that looks like a secret, and each call finishes within Hypothesis' deadline.
"""

from __future__ import annotations

import json
import string
import time
from datetime import timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from nbauth.authorize import build_authorization_request, check_authorization_response
from nbauth.device import parse_device_authorization
from nbauth.discovery import ProviderMetadata
from nbauth.errors import NbauthError
from nbauth.http import ProviderClient
from nbauth.idtoken import JwksCache, validate_id_token
from nbauth.loopback import CallbackListener, Reply, parse_callback_query
from nbauth.tokens import parse_token_response

FAST = settings(max_examples=150, deadline=timedelta(milliseconds=500),
                suppress_health_check=[HealthCheck.too_slow])
ISSUER = "https://tenant.example.com/"
CLIENT = "client-abc"

#: Values shaped like tokens, codes and states: long enough that finding one in a message
#: cannot be a coincidence.
secretish = st.text(string.ascii_letters + string.digits + "-_.~", min_size=20, max_size=60)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300,
                                                                    max_value=10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | secretish)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=12)


def assert_nothing_echoed(error: BaseException, *secrets: object) -> None:
    text = str(error) + repr(error)
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 20:
            assert secret not in text


# -- the callback query ------------------------------------------------------------------------
@FAST
@given(st.text(max_size=400))
def test_callback_query_parser_never_raises(query):
    params = parse_callback_query(query)
    assert params is None or (
        0 < len(params) <= 32 and all(isinstance(k, str) and isinstance(v, str)
                                      for k, v in params.items()))


def _metadata(iss_supported: bool = True) -> ProviderMetadata:
    return ProviderMetadata.from_document({
        "issuer": ISSUER, "authorization_endpoint": ISSUER + "authorize",
        "token_endpoint": ISSUER + "oauth/token", "jwks_uri": ISSUER + ".well-known/jwks.json",
        "authorization_response_iss_parameter_supported": iss_supported,
    }, expected_issuer=ISSUER)


REQUEST = build_authorization_request(_metadata(), client_id=CLIENT,
                                      redirect_uri="http://127.0.0.1:8765/callback")
callback_keys = st.sampled_from(["state", "code", "iss", "error", "error_description",
                                 "error_uri"]) | st.text(max_size=10)


@FAST
@given(st.dictionaries(callback_keys, st.text(max_size=80) | secretish, max_size=8),
       st.booleans(), st.booleans(), secretish)
def test_authorization_response_check_raises_only_nbauth_errors(params, right_state,
                                                                 iss_required, code):
    if right_state:
        params["state"] = REQUEST.state
    params.setdefault("code", code)
    for key in ("error", "error_description", "error_uri"):
        assume(code not in params.get(key, "") and REQUEST.state not in params.get(key, ""))
    try:
        result = check_authorization_response(REQUEST, params, iss_required=iss_required)
    except NbauthError as exc:
        assert_nothing_echoed(exc, params["code"], REQUEST.state, params.get("state"))
    else:
        assert result == params["code"] and params.get("state") == REQUEST.state


@FAST
@given(st.text(max_size=300), st.text(max_size=300))
def test_callback_query_end_to_end_never_raises(query, extra):
    params = parse_callback_query(query + extra)
    if params is not None:
        try:
            check_authorization_response(REQUEST, params, iss_required=True)
        except NbauthError:
            pass


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, params):
        self.calls.append(params)
        return Reply(400, "no", "no")


@pytest.fixture(scope="module")
def live_listener():
    recorder = _Recorder()
    listener = CallbackListener([0], recorder)
    listener.start()
    yield listener, recorder
    listener.close()


@settings(max_examples=60, deadline=timedelta(seconds=5),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_real_listener_answers_any_request_target_and_keeps_listening(live_listener, target):
    """Raw bytes as the request target of a real socket: a 4xx (or a dropped connection for
    bytes HTTP cannot carry), never a crash, and only str→str dicts reach the login."""
    listener, recorder = live_listener
    import socket

    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as conn:
        conn.sendall(b"GET /callback?" + target.replace(b"\n", b"") + b" HTTP/1.1\r\nHost: "
                     + f"127.0.0.1:{listener.port}".encode() + b"\r\n\r\n")
        head = conn.recv(64)
    assert head == b"" or head.startswith(b"HTTP/1.0 4")
    assert not listener.closed
    assert all(isinstance(k, str) and isinstance(v, str)
               for params in recorder.calls for k, v in params.items())


# -- token and device responses -----------------------------------------------------------------
token_fields = st.fixed_dictionaries({}, optional={
    "access_token": json_values | secretish, "token_type": json_values
    | st.sampled_from(["Bearer", "bearer", "BEARER", "mac"]), "expires_in": json_values,
    "refresh_token": json_values | secretish, "id_token": json_values | secretish,
    "scope": json_values})


@FAST
@given(token_fields, st.booleans())
def test_token_response_parser_raises_only_provider_errors_and_echoes_no_token(body, need_id):
    try:
        response = parse_token_response(body, now=1_800_000_000.0, require_id_token=need_id)
    except NbauthError as exc:
        assert_nothing_echoed(exc, body.get("access_token"), body.get("refresh_token"),
                              body.get("id_token"))
    else:
        assert isinstance(response.access_token, str) and response.access_token
        assert response.expires_at is None or response.expires_at >= 1_800_000_000.0
        assert response.access_token not in repr(response)


@FAST
@given(st.fixed_dictionaries({}, optional={
    "device_code": json_values | secretish, "user_code": json_values,
    "verification_uri": json_values | st.sampled_from(
        ["https://idp.example/activate", "javascript:alert(1)", "http://idp.example/"]),
    "verification_uri_complete": json_values, "expires_in": json_values,
    "interval": json_values}))
def test_device_authorization_parser_raises_only_provider_errors(body):
    try:
        parsed = parse_device_authorization(body, now=0.0)
    except NbauthError as exc:
        assert_nothing_echoed(exc, body.get("device_code"))
    else:
        assert parsed.interval >= 1 and parsed.expires_at > 0
        assert parsed.device_code not in repr(parsed)


# -- discovery ----------------------------------------------------------------------------------
url_like = st.sampled_from([ISSUER, ISSUER.rstrip("/"), "http://tenant.example.com/",
                            "http://127.0.0.1:9/", "javascript:alert(1)", "https://",
                            ISSUER + "authorize", "https://user:pw@tenant.example.com/"])


@FAST
@given(st.dictionaries(st.sampled_from([
    "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
    "revocation_endpoint", "device_authorization_endpoint", "end_session_endpoint",
    "code_challenge_methods_supported", "id_token_signing_alg_values_supported",
    "authorization_response_iss_parameter_supported"]) | st.text(max_size=10),
    url_like | json_values, max_size=12), st.sampled_from([ISSUER, ISSUER.rstrip("/")]))
def test_discovery_document_parser_raises_only_nbauth_errors(doc, expected):
    try:
        metadata = ProviderMetadata.from_document(doc, expected_issuer=expected)
    except NbauthError:
        return
    assert metadata.issuer.rstrip("/") == expected.rstrip("/")
    for url in (metadata.authorization_endpoint, metadata.token_endpoint, metadata.jwks_uri):
        assert url.startswith("https://") or url.startswith("http://127.0.0.1")


# -- JWKS ---------------------------------------------------------------------------------------
class _Client:
    def __init__(self, doc):
        self.doc = doc

    def get_json(self, url, *, what):
        return self.doc


jwk = st.fixed_dictionaries({"kty": st.sampled_from(["RSA", "EC", "oct", "OKP", "none"])
                             | json_values}, optional={
    "kid": json_values, "use": st.sampled_from(["sig", "enc"]) | json_values,
    "alg": st.sampled_from(["RS256", "ES256", "HS256", "none"]) | json_values,
    "n": st.text(string.ascii_letters + string.digits + "-_", max_size=40) | json_values,
    "e": st.sampled_from(["AQAB", "", "=="]) | json_values,
    "crv": st.sampled_from(["P-256", "Ed25519", "X"]) | json_values,
    "x": json_values, "y": json_values, "k": json_values})


@FAST
@given(st.fixed_dictionaries({}, optional={"keys": st.lists(jwk, max_size=4) | json_values}),
       st.none() | st.text(max_size=10))
def test_jwks_parser_raises_only_nbauth_errors(doc, kid):
    try:
        keys = JwksCache("https://x/jwks", _Client(doc)).keys_for(kid)
    except NbauthError:
        return
    assert isinstance(keys, list)


# -- ID tokens ----------------------------------------------------------------------------------
KEY = rsa.generate_private_key(65537, 2048)
PUBLIC = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
PUBLIC.update(kid="k1", alg="RS256", use="sig")
NOW = 1_800_000_000.0


@FAST
@given(st.text(max_size=200) | st.from_regex(r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\."
                                             r"[A-Za-z0-9_-]{0,40}", fullmatch=True))
def test_id_token_validator_refuses_garbage_with_id_token_errors(token):
    with pytest.raises(NbauthError):
        validate_id_token(token, issuer=ISSUER, client_id=CLIENT, nonce="n" * 43,
                          jwks=JwksCache("u", _Client({"keys": [PUBLIC]})), clock=lambda: NOW)


claims = st.fixed_dictionaries({}, optional={
    "iss": st.sampled_from([ISSUER, ISSUER.rstrip("/")]) | json_values,
    "aud": st.sampled_from([CLIENT, [CLIENT], [CLIENT, "api"]]) | json_values,
    "azp": st.sampled_from([CLIENT, "other"]) | json_values,
    "sub": secretish | json_values, "email": secretish,
    "exp": st.sampled_from([NOW + 600, NOW - 600]) | json_values,
    "iat": st.sampled_from([NOW, NOW + 600]) | json_values,
    "nonce": secretish | json_values})


@settings(max_examples=100, deadline=timedelta(seconds=2),
          suppress_health_check=[HealthCheck.too_slow])
@given(claims, secretish)
def test_signed_id_token_claims_never_crash_or_echo(payload, nonce):
    # Signed as raw JSON (jwt.encode itself refuses some claim types a provider could send).
    token = jwt.api_jws.encode(json.dumps(payload).encode(), KEY, algorithm="RS256",
                               headers={"kid": "k1"})
    try:
        validated = validate_id_token(token, issuer=ISSUER, client_id=CLIENT, nonce=nonce,
                                      jwks=JwksCache("u", _Client({"keys": [PUBLIC]})),
                                      clock=lambda: NOW)
    except NbauthError as exc:
        assert_nothing_echoed(exc, payload.get("sub"), payload.get("email"),
                              payload.get("nonce"), nonce)
    else:
        assert validated["iss"] == ISSUER and validated.get("nonce") == nonce


# -- provider answers as bytes --------------------------------------------------------------
def _response(status: int, body: bytes, content_type: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    return response


@FAST
@given(st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503]),
       st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.builds(lambda e, d: json.dumps({"error": e, "error_description": d}).encode(),
                   json_values, json_values),
       st.text(max_size=30))
@example(500, b"", "\x1b")  # found by Hypothesis: a content type was echoed raw
@example(200, b"<html>", "text/html\x1b[2J")
def test_provider_answer_decoder_raises_only_provider_errors(status, body, content_type):
    try:
        result = ProviderClient._json_object(_response(status, body, content_type),
                                             what="token")
    except NbauthError as exc:
        assert "\x1b" not in str(exc) and len(str(exc)) < 1000
    else:
        assert isinstance(result, dict) and status < 300


def test_properties_finish_quickly_on_the_worst_known_inputs():
    """The pathological cases Hypothesis found or should find, as fixed examples."""
    started = time.monotonic()
    with pytest.raises(NbauthError):
        ProviderClient._json_object(_response(200, b"[" * 100_000, "application/json"),
                                    what="token")
    assert parse_token_response({"access_token": "a", "token_type": "Bearer",
                                 "expires_in": 10**400}, now=0).expires_at is None
    assert parse_callback_query("&" * 100_000) is None
    assert parse_callback_query("a=1&" * 1000) is None
    assert time.monotonic() - started < 2


# -- a remembered-login file (S-87: corrupt or planted files are ignored, never an error) ------
@FAST
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({"format": st.just(1) | json_values,
                                "refresh_token": secretish | json_values},
                               optional={"issuer": st.just(ISSUER) | json_values,
                                         "client_id": st.just(CLIENT) | json_values,
                                         "audience": json_values, "scope": json_values,
                                         "subject": json_values}).map(
                                             lambda d: json.dumps(d).encode()))
def test_remembered_login_file_parser_ignores_anything_corrupt(content):
    import warnings

    from nbauth.tokenstore import RememberedEntry, StoreKey, _decode

    key = StoreKey(ISSUER, CLIENT, None, "openid offline_access")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entry = _decode(key, content, "a test file")
    assert entry is None or (isinstance(entry, RememberedEntry) and entry.refresh_token
                             and entry.refresh_token not in repr(entry))


def test_remembered_login_file_with_deep_nesting_is_ignored_not_an_error():
    import warnings

    from nbauth.tokenstore import StoreKey, _decode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _decode(StoreKey(ISSUER, CLIENT, None, "openid"), b"[" * 60_000, "f") is None
