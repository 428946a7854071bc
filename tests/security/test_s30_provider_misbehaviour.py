"""C–E. A hostile or broken provider, played by the scripted stand-in (S-06, S-20 … S-45).

Complements tests/test_provider_misbehaviour.py (which SECURITY.md maps too) with the cases it
does not cover. Every rejection is checked with the stand-in's call counters: a failed check
must not be followed by a token request (the OpenID conformance suite's "must not call any
other endpoints"), and no error text may carry a claim or token value (S-45).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from scripted_provider import ScriptedProvider, Trickle

import nbauth
from nbauth.errors import (
    AccessDeniedError,
    IdTokenError,
    InvalidGrantError,
    IssuerMismatchError,
    NbauthError,
    ProviderError,
    ProviderUnreachableError,
)
from nbauth.http import MAX_RESPONSE_BYTES, ProviderClient

TOKEN = "/oauth/token"
JWKS = "/.well-known/jwks.json"


def _follow(url: str) -> None:
    requests.get(url, timeout=10)


def run_login(p: ScriptedProvider, **kwargs):
    kwargs.setdefault("open_browser", lambda url: threading.Thread(
        target=_follow, args=(url,), daemon=True).start())
    return nbauth.login(domain=p.issuer, client_id=p.client_id, port=0, timeout=20, **kwargs)


def authorize_redirect(pending, **replace: str) -> str:
    """What the stand-in's /authorize sends the browser back to (query items replaced)."""
    parts = urlsplit(pending.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(replace)
    url = urlunsplit(parts._replace(query=urlencode(query)))
    return requests.get(url, allow_redirects=False, timeout=10).headers["Location"]


def assert_no_claims_in(error: BaseException, *values: str) -> None:
    text = str(error) + repr(error)
    for value in ("scripted|1", "scripted@example.com", "Scripted User", *values):
        assert value not in text


def body_with_id_token(id_token: str, **extra) -> bytes:
    return json.dumps({"access_token": "at-" + secrets.token_urlsafe(24), "token_type": "Bearer",
                       "expires_in": 3600, "id_token": id_token, **extra}).encode()


def answer_with(make_id_token):
    """A token answer whose ID token is built by `make_id_token(provider, nonce)`."""
    def answer(form, p):
        token = make_id_token(p, p.nonce_for(form.get("code", "")))
        return 200, {"Content-Type": "application/json"}, body_with_id_token(token)
    return answer


# -- C. authorization response: nothing is exchanged after a failed check -------------------
def test_S20_wrong_state_makes_no_token_request_and_the_login_keeps_waiting():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        pending = nbauth.start_login(p.issuer, p.client_id, port=0, timeout=20)
        try:
            for forged in (secrets.token_urlsafe(32), pending._request.state[:-1] + "x", ""):
                redirect = authorize_redirect(pending, state=forged)
                assert requests.get(redirect, timeout=10).status_code == 400
            assert p.calls(TOKEN) == [] and not pending.done()
            requests.get(pending.url, timeout=10)
            assert pending.wait(10).identity.subject == "scripted|1"
            assert len(p.calls(TOKEN)) == 1
        finally:
            pending.cancel()


def test_S14_S20_error_with_the_right_state_ends_the_login_without_a_token_request():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        pending = nbauth.start_login(p.issuer, p.client_id, port=0, timeout=20)
        query = urlencode({"error": "access_denied", "error_description": "User said no",
                           "state": pending._request.state, "iss": p.issuer})
        page = requests.get(f"{pending.redirect_uri}?{query}", timeout=10)
        assert page.status_code == 403
        with pytest.raises(AccessDeniedError, match="User said no") as info:
            pending.wait(10)
        assert p.calls(TOKEN) == []
        assert pending._request.state not in str(info.value)


@pytest.mark.parametrize("advertise,iss", [
    (False, "http://127.0.0.1:1/"),  # not advertised, but present and wrong: nbauth rejects
    (True, "TRAILING-SLASH-REMOVED"),  # advertised; differs only by the trailing slash
    (True, "TRAILING-SLASH-ADDED"),
])
def test_S21_issuer_parameter_rejections_make_no_token_request(advertise, iss):
    with ScriptedProvider(advertise_iss=advertise,
                          token_answers=[ScriptedProvider.good_tokens()]) as p:
        p.iss_value = {"TRAILING-SLASH-REMOVED": p.issuer.rstrip("/"),
                       "TRAILING-SLASH-ADDED": p.issuer + "/"}.get(iss, iss)
        with pytest.raises(IssuerMismatchError) as info:
            run_login(p)
        assert p.calls(TOKEN) == []
        assert p.iss_value not in str(info.value)


def test_S23_a_callback_delivered_twice_at_once_is_exchanged_once():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        pending = nbauth.start_login(p.issuer, p.client_id, port=0, timeout=20)
        redirect = authorize_redirect(pending)
        statuses: list[int] = []

        def deliver() -> None:
            try:
                statuses.append(requests.get(redirect, timeout=10).status_code)
            except requests.ConnectionError:
                statuses.append(0)  # arrived after the listener closed: nothing listens

        threads = [threading.Thread(target=deliver) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert pending.wait(10).identity.subject == "scripted|1"
        assert len(p.calls(TOKEN)) == 1
        assert len(statuses) == 4
        assert all(s in (0, 200, 409, 410) or s >= 400 for s in statuses)
        assert statuses.count(200) == 1


# -- D. token endpoint --------------------------------------------------------------------
def test_S30_S31_rate_limited_token_endpoint_is_explained_with_retry_after_and_not_retried():
    answer = ScriptedProvider.raw(429, b"<html>Too Many Requests</html>",
                                  headers={"Retry-After": "7"})
    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(ProviderError, match=r"rate limiting.*HTTP 429.*in 7 s") as info:
            run_login(p)
        assert len(p.calls(TOKEN)) == 1  # a code is never sent twice (S-23)
    assert info.value.status == 429


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_S30_S31_server_errors_end_the_code_exchange_after_one_request(status):
    """A code may have been consumed by a request whose answer was lost: nbauth never resends
    it (RFC 6749 §4.1.2, §10.5), so a 5xx ends the login with the status, once."""
    with ScriptedProvider(token_answers=[ScriptedProvider.raw(status, b"<h1>down</h1>")]) as p:
        with pytest.raises(ProviderError, match=str(status)):
            run_login(p)
        assert len(p.calls(TOKEN)) == 1


@pytest.mark.parametrize("body,needle", [
    (b"[" * 100_000 + b"]" * 100_000, "not a JSON object"),  # nesting beyond the parser's stack
    (b'{"a": "' + b"x" * (MAX_RESPONSE_BYTES + 10) + b'"}', "larger than"),
])
def test_S30_hostile_bodies_become_provider_errors(body, needle):
    with ScriptedProvider(token_answers=[ScriptedProvider.raw(200, body, "application/json")]) as p:
        with pytest.raises(ProviderError, match=needle):
            run_login(p)


def test_S30_a_provider_trickling_its_answer_hits_the_timeout_in_all():
    """requests' read timeout is per read: one byte every 0.2 s would never trip it. nbauth
    bounds the whole answer by connect + read timeout."""
    slow = ScriptedProvider.raw(200, Trickle(b'{"access_token": "' + b"x" * 200 + b'"}', 0.2),
                                "application/json")
    with ScriptedProvider(token_answers=[slow]) as p:
        started = time.monotonic()
        with pytest.raises(ProviderUnreachableError, match="did not answer"):
            run_login(p, client=ProviderClient(timeout=(1.0, 1.0)))
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("trickle,error,needle", [
    (Trickle(b'{"access_token": ', 0.01, declared_length=500), ProviderUnreachableError,
     "Could not connect"),  # the connection ends before the promised length
    (Trickle(b'{"a', 3.0, declared_length=100), ProviderUnreachableError, "did not answer"),
])
def test_S30_a_body_cut_short_or_stalled_mid_way_is_a_provider_error(trickle, error, needle):
    answer = ScriptedProvider.raw(200, trickle, "application/json")
    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(error, match=needle):
            run_login(p, client=ProviderClient(timeout=(1.0, 1.0)))
        assert len(p.calls(TOKEN)) == 1


def test_S32_expires_in_as_a_string_or_absurd_is_handled():
    def answer(expires_in):
        def build(form, p):
            body = json.loads(body_with_id_token(p.id_token(p.nonce_for(form["code"]))))
            body["expires_in"] = expires_in
            body["refresh_token"] = "rt-" + secrets.token_urlsafe(24)  # all that was asked
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return build

    with ScriptedProvider(token_answers=[answer("3600")]) as p:
        creds = run_login(p)
    assert 3500 < creds.expires_at - time.time() <= 3600
    with ScriptedProvider(token_answers=[answer(int("9" * 400))]) as p:
        creds = run_login(p)
    assert creds.expires_at is None


@pytest.mark.parametrize("token_type", ["mac", "N_A", "DPoP", None, 7])
def test_S32_unknown_token_type_is_refused_and_nothing_is_stored(token_type):
    def answer(form, p):
        body = json.loads(body_with_id_token(p.id_token(p.nonce_for(form["code"]))))
        body["token_type"] = token_type
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(ProviderError, match="Bearer") as info:
            run_login(p)
    assert "at-" not in str(info.value)


@pytest.mark.parametrize("granted,shown,warned", [
    # narrower than asked: the granted one is shown, and what is missing is said
    ("openid email", ("openid", "email"), "did not grant profile, offline_access"),
    # omitted: as requested (§5.1), nothing to say
    (None, ("openid", "profile", "email", "offline_access"), None),
])
def test_S32_the_granted_scope_is_what_nbauth_reports(granted, shown, warned):
    """RFC 6749 §5.1: `scope` is required in the response only when it differs from the
    request. nbauth reports the scope the provider granted (or, when it says none, the one
    requested) — in `Credentials.scopes`, its summary (the widget) and `%auth0_token` — and
    says what was asked for and not granted (SECURITY.md, S-32)."""
    def answer(form, p):
        extra = {"refresh_token": "rt-" + secrets.token_urlsafe(24)}
        extra.update({} if granted is None else {"scope": granted})
        token = p.id_token(p.nonce_for(form["code"]))
        return 200, {"Content-Type": "application/json"}, body_with_id_token(token, **extra)

    import warnings

    with ScriptedProvider(token_answers=[answer]) as p, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        credentials = run_login(p)
    said = [str(w.message) for w in caught if issubclass(w.category, nbauth.NbauthWarning)]
    assert said == ([] if warned is None else [f"The provider {warned}."])
    assert credentials.scopes == shown
    assert f"scopes {' '.join(shown)}" in credentials.summary()
    assert credentials.describe()["scopes"] == " ".join(shown)


# -- E. ID tokens --------------------------------------------------------------------------
def _now() -> float:
    return time.time()


BAD_CLAIMS = [
    ("nonce_missing", {"nonce": None}, "nonce"),
    ("iss_without_trailing_slash", {"iss": "ISSUER-NO-SLASH"}, "issuer"),
    ("iss_with_two_slashes", {"iss": "ISSUER-TWO-SLASHES"}, "issuer"),
    ("multi_aud_without_azp", {"aud": ["scripted-client", "https://api.example"]}, "azp"),
    ("azp_other_client", {"aud": ["scripted-client", "https://api.example"], "azp": "other"},
     "azp"),
    ("azp_other_single_aud", {"azp": "other"}, "azp"),
    ("iat_beyond_leeway", {"iat": "FUTURE"}, "future"),
    ("sub_missing", {"sub": None}, "sub"),
    ("aud_missing", {"aud": None}, "audience"),
]


# ids are the case names alone, so SECURITY.md can cite `…_end_to_end[nonce_missing]` exactly
@pytest.mark.parametrize("name,overrides,reason", BAD_CLAIMS, ids=[c[0] for c in BAD_CLAIMS])
def test_S06_S40_S43_S44_bad_id_token_claims_are_refused_end_to_end(name, overrides, reason):
    def answer(form, p):
        claims = dict(overrides)
        if claims.get("iss") == "ISSUER-NO-SLASH":
            claims["iss"] = p.issuer.rstrip("/")
        if claims.get("iss") == "ISSUER-TWO-SLASHES":
            claims["iss"] = p.issuer + "/"
        if claims.get("iat") == "FUTURE":
            claims["iat"] = _now() + 120
        token = p.id_token(p.nonce_for(form["code"]), **claims)
        return 200, {"Content-Type": "application/json"}, body_with_id_token(token)

    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(IdTokenError, match=reason) as info:
            run_login(p)
        assert len(p.calls(TOKEN)) == 1
    assert_no_claims_in(info.value)


def test_S40_iat_inside_the_leeway_is_accepted():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens(iat=_now() + 30)]) as p:
        assert run_login(p).identity.subject == "scripted|1"


def _unsigned(p, nonce):
    claims = {"iss": p.issuer, "aud": p.client_id, "sub": "scripted|1", "iat": _now(),
              "exp": _now() + 600, "nonce": nonce}
    return jwt.encode(claims, None, algorithm="none", headers={"kid": p.kid})


def _hs256_with_public_key(p, nonce):
    claims = {"iss": p.issuer, "aud": p.client_id, "sub": "scripted|1", "iat": _now(),
              "exp": _now() + 600, "nonce": nonce}
    pem = p.key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": p.kid}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    signature = hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()
    return (header + b"." + payload + b"." + jwt.utils.base64url_encode(signature)).decode()


def _unknown_key(p, nonce):
    claims = {"iss": p.issuer, "aud": p.client_id, "sub": "scripted|1", "iat": _now(),
              "exp": _now() + 600, "nonce": nonce}
    other = rsa.generate_private_key(65537, 2048)
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": "ghost"})


def _known_kid_wrong_key(p, nonce):
    claims = {"iss": p.issuer, "aud": p.client_id, "sub": "scripted|1", "iat": _now(),
              "exp": _now() + 600, "nonce": nonce}
    other = rsa.generate_private_key(65537, 2048)
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": p.kid})


@pytest.mark.parametrize("make,reason", [
    (_unsigned, "unsigned"),
    (_hs256_with_public_key, "public-key"),
    (_unknown_key, "unknown key id"),
    (_known_kid_wrong_key, "signature does not verify"),
])
def test_S41_S42_unsigned_confused_or_foreign_signatures_are_refused(make, reason):
    with ScriptedProvider(token_answers=[answer_with(make)]) as p:
        with pytest.raises(IdTokenError, match=reason) as info:
            run_login(p)
        assert len(p.calls(JWKS)) <= 2
    assert_no_claims_in(info.value)


def test_S42_rotated_key_is_refetched_once_and_an_unknown_key_stays_unknown():
    """Login 1 caches the JWKS; the provider rotates its key; login 2's ID token names the new
    kid: exactly one refetch. Logins 3 and 4 are signed by a key nobody publishes: one more
    refetch for the new unknown kid, then none (no refetch storm a hostile token could cause)."""
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        run_login(p)
        assert len(p.calls(JWKS)) == 1
        p.key, p.kid = rsa.generate_private_key(65537, 2048), "k2"
        assert run_login(p).identity.subject == "scripted|1"
        assert len(p.calls(JWKS)) == 2
        p.token_answers = [answer_with(_unknown_key)]
        for _ in range(2):
            with pytest.raises(IdTokenError, match="unknown key id"):
                run_login(p)
        assert len(p.calls(JWKS)) == 3


def test_S45_provider_error_text_with_escapes_is_printable_and_bounded():
    description = "\x1b[31mred\x1b[0m" + "y" * 5000
    answer = ScriptedProvider.oauth_error("invalid_grant", error_description=description)
    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(NbauthError) as info:
            run_login(p)
    assert "\x1b" not in str(info.value) and len(str(info.value)) < 1000


# -- D. the bearer token on the wire -------------------------------------------------------
class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []
    redirect_to: str | None = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).seen.append((self.headers.get("Host", ""), self.path,
                                self.headers.get("Authorization")))
        if type(self).redirect_to and self.path.startswith("/hop"):
            self.send_response(302)
            self.send_header("Location", type(self).redirect_to + self.path.replace("/hop", "/end"))
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_S33_S34_bearer_only_in_the_header_and_dropped_on_a_redirect_to_another_host():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        creds = run_login(p)
    token = str(creds.token())

    class Api(_Recorder):
        seen = []

    class Other(_Recorder):
        seen = []

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), cls) for cls in (Api, Other)]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
    api, other = (s.server_address[1] for s in servers)
    try:
        session = creds.session()
        Api.redirect_to = f"http://127.0.0.1:{api}"  # same origin: the header stays
        session.get(f"http://127.0.0.1:{api}/hop/same", timeout=10)
        Api.redirect_to = f"http://localhost:{other}"  # another host: the header is dropped
        session.get(f"http://127.0.0.1:{api}/hop/cross", timeout=10)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert [a for _, _, a in Api.seen] == [f"Bearer {token}"] * 3
    assert Other.seen and all(a is None for _, _, a in Other.seen)
    for _, path, _ in Api.seen + Other.seen:
        assert token not in path
    assert token not in repr(session.headers) and "Authorization" not in session.headers


def test_S04_S22_token_request_binds_verifier_and_identical_redirect_uri_url_encoded():
    """(tests/test_provider_misbehaviour.py checks the same on the happy path; here the
    redirect URI and verifier are compared byte for byte as the stand-in received them.)"""
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        run_login(p)
        (authz,), (token,) = p.calls("/authorize"), p.calls(TOKEN)
    assert token.form["redirect_uri"].encode() == authz.query["redirect_uri"].encode()
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(token.form["code_verifier"].encode("ascii")).digest()).rstrip(b"=")
    assert challenge.decode() == authz.query["code_challenge"]
    assert authz.query["code_challenge_method"] == "S256"


@pytest.mark.parametrize("code,status", [
    ("invalid_request", 400), ("invalid_client", 401), ("invalid_grant", 400),
    ("unauthorized_client", 400), ("unsupported_grant_type", 400), ("invalid_scope", 400),
])
def test_S30_every_rfc6749_token_error_code_is_typed_with_its_hint_and_sent_once(code, status):
    from nbauth.errors import _HINTS, OAuthError

    answer = ScriptedProvider.oauth_error(code, status, error_description="Nope")
    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(OAuthError) as info:
            run_login(p)
        assert len(p.calls(TOKEN)) == 1
    error = info.value
    assert error.error == code and error.status == status and error.description == "Nope"
    if code in _HINTS:
        assert _HINTS[code] in str(error)
    assert type(error).__name__ != "OAuthError" or code not in ("invalid_grant", "invalid_client")


@pytest.mark.parametrize("echo", ["code", "code_verifier"])
def test_S45_a_provider_error_repeating_the_code_or_verifier_is_withheld(echo):
    """Some servers put the rejected code in error_description; shown in the cell, it would be
    saved with the notebook. The error code and nbauth's hint stay; the echo goes."""
    def answer(form, p):
        body = json.dumps({"error": "invalid_grant",
                           "error_description": f"Invalid {echo}: {form[echo]}"}).encode()
        return 400, {"Content-Type": "application/json"}, body

    with ScriptedProvider(token_answers=[answer]) as p:
        with pytest.raises(InvalidGrantError) as info:
            run_login(p)
        sent = p.calls(TOKEN)[0].form[echo]
    assert sent not in str(info.value) and sent[:16] not in str(info.value)
    assert "withheld" in str(info.value) and "run the login again" in str(info.value)


def test_S45_a_refresh_error_repeating_the_refresh_token_is_withheld():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()]) as p:
        creds = run_login(p)
        rt = creds._refresh_token

        def answer(form, p):
            body = json.dumps({"error": "server_error",
                               "error_description": "cannot use " + form["refresh_token"]})
            return 400, {"Content-Type": "application/json"}, body.encode()

        p.token_answers = [answer]
        with pytest.raises(NbauthError) as info:
            creds.refresh()
    assert rt[:16] not in str(info.value) and "server_error" in str(info.value)
