"""ID-token validation (OIDC Core §3.1.3.7) and the provider's JWKS cache.

Signatures are checked by PyJWT against keys from the provider's JWKS (fetched through
`ProviderClient`, so proxies and CA bundles apply); the claim rules are plain comparisons run
here, in a fixed order, each failing with its own reason and an injectable clock. Reasons never
contain claim values (they end up in notebook outputs).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Sequence
from typing import Any

import jwt
from jwt import PyJWK

from .errors import IdTokenError, ProviderError
from .http import ProviderClient
from .tokens import Clock

__all__ = ["ASYMMETRIC_ALGORITHMS", "DEFAULT_LEEWAY", "JwksCache", "validate_id_token"]

#: Clock skew tolerated on exp and iat, in seconds (S-40: at most 60).
DEFAULT_LEEWAY = 60.0

#: Only public-key algorithms: `none` is refused, and HS* would need a client secret as the
#: key — accepting them with a public key is the classic algorithm-confusion attack.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

#: A token whose iat lies further in the past than this is refused as absurd.
MAX_TOKEN_AGE = 24 * 3600.0


#: Keys read from one JWKS document (providers publish two or three).
MAX_JWKS_KEYS = 32
_PUBLIC_KEY_TYPES = ("RSA", "EC", "OKP")
#: What PyJWT raises for a malformed JWK: its own errors, and for missing or mistyped members
#: plain KeyError/TypeError/ValueError/AttributeError, or NotImplementedError for an "alg" it
#: has no implementation of (e.g. "none").
_MALFORMED_KEY = (jwt.PyJWTError, KeyError, TypeError, ValueError, AttributeError,
                  NotImplementedError)


class JwksCache:
    """The provider's signing keys, refetched once when a token names a key id the cache does not
    know (key rotation); a kid still unknown after that is not refetched for again."""

    def __init__(self, jwks_uri: str, client: ProviderClient) -> None:
        self.jwks_uri = jwks_uri
        self._client = client
        self._keys: list[PyJWK] = []
        self._fetched = False
        self._unknown: set[str] = set()  # kids still unknown after a refetch: not refetched again
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        doc = self._client.get_json(self.jwks_uri, what="JWKS")
        entries = doc.get("keys")
        keys: list[PyJWK] = []
        for entry in entries[:MAX_JWKS_KEYS] if isinstance(entries, list) else ():
            # Public signing keys only: a symmetric ("oct") key in a JWKS is never trusted.
            if not isinstance(entry, dict) or entry.get("kty") not in _PUBLIC_KEY_TYPES:
                continue
            if entry.get("use") not in (None, "sig"):
                continue
            try:
                keys.append(PyJWK(entry))
            except _MALFORMED_KEY:
                continue  # one malformed key must not hide the good ones
        if not keys:
            raise ProviderError(
                "The provider's JWKS has no usable signing key; the ID token cannot be verified."
            )
        self._keys = keys
        self._fetched = True
        self._unknown.clear()

    def keys_for(self, kid: str | None) -> list[PyJWK]:
        """Candidate keys for a token's `kid`, refetching once if the kid is unknown."""
        with self._lock:
            if not self._fetched:
                self._fetch()
            found = self._match(kid)
            if found or kid is None:
                return found
            if kid not in self._unknown:
                # The provider may have rotated its keys since the last fetch: look once more.
                self._fetch()
                found = self._match(kid)
                if not found:
                    self._unknown.add(kid)
            # Keys published without a kid may be the one (a JWKS of one unnamed key, while
            # the token names it: pyjwt #737); the signature check decides.
            return found or [k for k in self._keys if k.key_id is None]

    def _match(self, kid: str | None) -> list[PyJWK]:
        if kid is None:
            return list(self._keys)
        return [k for k in self._keys if k.key_id == kid]


def _reject(reason: str) -> IdTokenError:
    return IdTokenError(reason)


def _verify_signature(id_token: str, jwks: JwksCache, allowed: Sequence[str]) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.DecodeError:
        raise _reject("it is not a well-formed JWT") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise _reject("it is unsigned (alg 'none')")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise _reject(f"its algorithm {alg[:20]!r} is not a public-key algorithm")
    if alg not in allowed:
        raise _reject(f"its algorithm {alg!r} is not one the provider advertises")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _reject("its key id is malformed")
    candidates = [
        k for k in jwks.keys_for(kid)
        if (k.algorithm_name == alg or _jwk_alg(k) in (None, alg))
    ]
    if not candidates:
        raise _reject("it is signed with a key the provider does not publish (unknown key id)")
    for key in candidates:
        try:
            payload: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[alg],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
            return payload
        except jwt.InvalidSignatureError:
            continue
        except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
            continue
        except jwt.DecodeError:
            raise _reject("its signature or payload cannot be decoded") from None
    raise _reject("its signature does not verify with the provider's keys")


def _jwk_alg(key: PyJWK) -> str | None:
    value = getattr(key, "_jwk_data", {}).get("alg")
    return value if isinstance(value, str) else None


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if value is None:
        raise _reject(f"the {name!r} claim is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _reject(f"the {name!r} claim is not a number")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond any float
        raise _reject(f"the {name!r} claim is out of range") from None
    if number != number:
        raise _reject(f"the {name!r} claim is not a number")
    return number


def validate_id_token(
    id_token: str,
    *,
    issuer: str,
    client_id: str,
    nonce: str | None,
    jwks: JwksCache,
    allowed_algorithms: Sequence[str] = ("RS256",),
    leeway: float = DEFAULT_LEEWAY,
    clock: Clock = time.time,
    max_age: float | None = None,
    organization: str | None = None,
) -> dict[str, Any]:
    """Verify an ID token's signature and claims; return the claims or raise IdTokenError.

    Checks, in order (OIDC Core §3.1.3.7): algorithm and signature; iss equals the discovered
    issuer exactly; aud contains the client id; azp equals the client id when present, and is
    present when aud lists several audiences; sub present; exp not passed; iat present and sane;
    nonce equals the one sent; auth_time present and recent when max_age was sent (§3.1.2.1);
    the Auth0 organization (org_id, or org_name compared in lower case) when one was requested.
    """
    claims = _verify_signature(id_token, jwks, allowed_algorithms)
    if claims.get("iss") != issuer:
        raise _reject("its issuer (iss) is not the provider's issuer exactly")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not audiences or not all(
        isinstance(a, str) for a in audiences
    ):
        raise _reject("its audience (aud) is missing or malformed")
    if client_id not in audiences:
        raise _reject("it was issued to another application (aud does not contain the client id)")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise _reject("it lists several audiences but no authorized party (azp)")
    if azp is not None and azp != client_id:
        raise _reject("its authorized party (azp) is another application")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _reject("the subject (sub) claim is missing")
    now = clock()
    if now > _number(claims, "exp") + leeway:
        raise _reject("it has expired (exp); check this computer's clock if this repeats")
    iat = _number(claims, "iat")
    if iat > now + leeway:
        raise _reject("it is issued in the future (iat); check this computer's clock")
    if iat < now - MAX_TOKEN_AGE:
        raise _reject("it was issued too long ago (iat)")
    if nonce is not None:
        received = claims.get("nonce")
        if not isinstance(received, str):
            raise _reject("the nonce claim is missing")
        if not hmac.compare_digest(received.encode("utf-8", "replace"), nonce.encode("ascii")):
            raise _reject("its nonce does not match this login (possible replay)")
    if max_age is not None:
        auth_time = _number(claims, "auth_time")
        if now > auth_time + max_age + leeway:
            raise _reject("the sign-in at the provider is older than the max_age requested")
    if organization is not None:
        if organization.startswith("org_"):
            if claims.get("org_id") != organization:
                raise _reject("it is not for the organization requested (org_id)")
        elif claims.get("org_name") != organization.lower():
            raise _reject("it is not for the organization requested (org_name)")
    return claims
