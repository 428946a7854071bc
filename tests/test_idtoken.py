"""ID-token rules with keys the test makes (S-40 … S-45). The JWKS comes from a stand-in client."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from nbauth.errors import IdTokenError
from nbauth.idtoken import JwksCache, validate_id_token

ISSUER = "https://tenant.auth0.com/"
CLIENT = "client-123"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_800_000_000.0


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key, kid, alg="RS256"):
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    data.update(kid=kid, alg=alg, use="sig")
    return data


class StandInClient:
    """Serves a JWKS document and counts fetches (the only I/O JwksCache does)."""

    def __init__(self, *jwks):
        self.keys = list(jwks)
        self.fetches = 0

    def get_json(self, url, *, what):
        self.fetches += 1
        return {"keys": self.keys}


KEY = rsa_key()


def claims(**overrides):
    base = {"iss": ISSUER, "aud": CLIENT, "sub": "auth0|123", "exp": NOW + 600, "iat": NOW - 5,
            "nonce": NONCE, "email": "someone@example.com", "name": "Some One"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload, key=KEY, kid="k1", alg="RS256", headers=None):
    hdr = {"kid": kid} if kid else {}
    hdr.update(headers or {})
    return jwt.encode(payload, key, algorithm=alg, headers=hdr)


def validate(token, client=None, **kwargs):
    client = client or StandInClient(public_jwk(KEY, "k1"))
    kwargs.setdefault("nonce", NONCE)
    return validate_id_token(token, issuer=ISSUER, client_id=CLIENT,
                             jwks=JwksCache("https://tenant.auth0.com/.well-known/jwks.json", client),
                             clock=lambda: NOW, **kwargs)


def test_valid_token_returns_claims():
    assert validate(sign(claims()))["sub"] == "auth0|123"


@pytest.mark.parametrize("name,payload,reason", [
    ("iss_missing", claims(iss=None), "issuer"),
    ("iss_wrong", claims(iss="https://evil.example/"), "issuer"),
    ("iss_without_trailing_slash", claims(iss=ISSUER.rstrip("/")), "issuer"),
    ("aud_missing", claims(aud=None), "audience"),
    ("aud_wrong", claims(aud="other-client"), "another application"),
    ("aud_malformed", claims(aud=[1]), "audience"),
    ("multi_aud_without_azp", claims(aud=[CLIENT, "https://api"]), "azp"),
    ("azp_wrong", claims(aud=[CLIENT, "https://api"], azp="other"), "azp"),
    ("sub_missing", claims(sub=None), "sub"),
    ("exp_missing", claims(exp=None), "'exp'"),
    ("exp_passed", claims(exp=NOW - 61), "expired"),
    ("exp_string", claims(exp="soon"), "'exp'"),
    ("iat_missing", claims(iat=None), "'iat'"),
    ("iat_future", claims(iat=NOW + 120), "future"),
    ("iat_ancient", claims(iat=NOW - 3 * 86400), "too long ago"),
    ("nonce_missing", claims(nonce=None), "nonce"),
    ("nonce_wrong", claims(nonce="other"), "nonce"),
])
def test_claim_rules(name, payload, reason):
    with pytest.raises(IdTokenError, match=reason) as info:
        validate(sign(payload))
    text = str(info.value) + repr(info.value)
    for secret in ("auth0|123", "someone@example.com", NONCE, "evil.example"):
        assert secret not in text


def test_leeway_allows_small_clock_skew():
    assert validate(sign(claims(exp=NOW - 30, iat=NOW + 30)))


def test_multi_aud_with_correct_azp_is_accepted():
    assert validate(sign(claims(aud=[CLIENT, "https://api"], azp=CLIENT)))


def test_alg_none_is_rejected():
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(IdTokenError, match="unsigned"):
        validate(token)


def test_hs256_signed_with_the_public_key_is_rejected():
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    import hashlib
    import hmac as hmac_mod

    sig = hmac_mod.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    token = (header + b"." + body + b"." + jwt.utils.base64url_encode(sig)).decode()
    with pytest.raises(IdTokenError, match="public-key"):
        validate(token)


def test_algorithm_not_advertised_is_rejected():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(IdTokenError, match="advertises"):
        validate(sign(claims(), key=ec_key, alg="ES256"))


def test_bad_signature_is_rejected():
    other = rsa_key()
    with pytest.raises(IdTokenError, match="signature"):
        validate(sign(claims(), key=other))


def test_garbage_is_rejected():
    with pytest.raises(IdTokenError, match="well-formed"):
        validate("not-a-jwt")


def test_rotated_key_is_fetched_once():
    new_key = rsa_key()
    client = StandInClient(public_jwk(KEY, "k1"))
    cache = JwksCache("u", client)
    common = dict(issuer=ISSUER, client_id=CLIENT, nonce=NONCE, jwks=cache, clock=lambda: NOW)
    validate_id_token(sign(claims()), **common)
    assert client.fetches == 1
    client.keys = [public_jwk(new_key, "k2")]  # the provider rotates
    validate_id_token(sign(claims(), key=new_key, kid="k2"), **common)
    assert client.fetches == 2


def test_unknown_key_that_stays_unknown_is_not_refetched_again():
    client = StandInClient(public_jwk(KEY, "k1"))
    cache = JwksCache("u", client)
    common = dict(issuer=ISSUER, client_id=CLIENT, nonce=NONCE, jwks=cache, clock=lambda: NOW)
    for _ in range(3):
        with pytest.raises(IdTokenError, match="unknown key id"):
            validate_id_token(sign(claims(), key=rsa_key(), kid="ghost"), **common)
    assert client.fetches == 2


def test_token_without_kid_tries_the_published_keys():
    other = rsa_key()
    client = StandInClient(public_jwk(other, "a"), public_jwk(KEY, "b"))
    assert validate(sign(claims(), kid=None), client=client)


def test_a_token_naming_a_kid_is_checked_against_keys_published_without_one():
    # a JWKS of one key without "kid" (or with "kid": null) while the token names one
    # (pyjwt #737, google/jwt_verify_lib #65): the signature decides, not the name
    unnamed = public_jwk(KEY, None)
    del unnamed["kid"]
    for jwk in (unnamed, public_jwk(KEY, None)):
        assert validate(sign(claims(), kid="k1"), client=StandInClient(jwk))["sub"] == "auth0|123"
    with pytest.raises(IdTokenError, match="signature"):  # another unnamed key: refused
        validate(sign(claims(), key=rsa_key(), kid="k1"), client=StandInClient(unnamed))


def test_real_clock_default():
    token = sign(claims(exp=time.time() + 600, iat=time.time()))
    client = StandInClient(public_jwk(KEY, "k1"))
    assert validate_id_token(token, issuer=ISSUER, client_id=CLIENT, nonce=NONCE,
                             jwks=JwksCache("u", client))
