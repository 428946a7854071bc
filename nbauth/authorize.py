"""The authorization request and the checks on its response (RFC 6749 §4.1, RFC 9207).

Pure functions of data: nothing here does I/O, so every rule is unit-tested without a socket.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .defaults import DEFAULT_SCOPE
from .discovery import ProviderMetadata
from .errors import (
    ConfigurationError,
    IssuerMismatchError,
    OAuthError,
    StateMismatchError,
    oauth_error,
)
from .pkce import CODE_CHALLENGE_METHOD, Pkce

__all__ = [
    "DEFAULT_SCOPE",
    "PASSTHROUGH_PARAMS",
    "AuthorizationRequest",
    "build_authorization_request",
    "check_authorization_response",
    "new_random_value",
    "normalize_scope",
    "state_matches",
]


#: Extra authorize parameters users need with Auth0; anything else is refused so that a typo
#: does not silently vanish and protocol parameters cannot be overridden.
PASSTHROUGH_PARAMS = frozenset(
    {"organization", "invitation", "connection", "login_hint", "prompt", "screen_hint",
     "max_age", "ui_locales", "acr_values"}
)

_RESERVED = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "audience",
     "code_challenge", "code_challenge_method", "response_mode"}
)


#: Longest authorization URL built; longer ones are refused by browsers, proxies or providers.
MAX_URL_LENGTH = 8000


def normalize_scope(scope: object) -> str:
    """The scope to send: single spaces, each scope once, and ``openid`` first if missing.

    RFC 6749 §3.3: "The value of the scope parameter is expressed as a list of space-delimited,
    case-sensitive strings", each ``1*( %x21 / %x23-5B / %x5D-7E )``. nbauth always sends a
    nonce and validates an ID token, which needs ``openid`` (OIDC Core §3.1.2.1); Auth0's own
    SDKs add it the same way.
    """
    if not isinstance(scope, str):
        raise ConfigurationError(
            f"The scope must be a string of space-separated scopes, not {type(scope).__name__}."
        )
    scopes = list(dict.fromkeys(scope.split()))
    if not scopes:
        raise ConfigurationError(
            "The scope is empty. Pass --scope 'openid profile email offline_access' (or set "
            "NBAUTH_SCOPE), or leave it out for that default."
        )
    for token in scopes:
        if any(not ("\x21" <= ch <= "\x7e") or ch in '"\\' for ch in token):
            raise ConfigurationError(
                f"The scope {token[:80]!r} contains a character scopes may not hold (RFC 6749 "
                "§3.3: printable ASCII other than space, '\"' and '\\'). Separate scopes "
                "with spaces."
            )
    if any("," in token for token in scopes):  # allowed in a scope, but a person meant a list
        spaced = " ".join(part for part in scope.replace(",", " ").split())[:120]
        raise ConfigurationError(
            f"The scope {scope.strip()[:120]!r} is separated by commas; scopes are separated by "
            f"spaces: --scope {spaced} (or NBAUTH_SCOPE='{spaced}')."
        )
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    return " ".join(scopes)


def new_random_value() -> str:
    """A fresh 256-bit URL-safe value for state and nonce (RFC 6749 §10.10 asks ≥ 128)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AuthorizationRequest:
    """One login attempt: the URL to open and the values its response is checked against."""

    url: str = field(repr=False)
    redirect_uri: str
    issuer: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    pkce: Pkce = field(repr=False)
    requested_scope: str = ""
    #: OIDC max_age sent, if any: the ID token must then carry a recent auth_time (Core §3.1.2.1).
    max_age: int | None = None
    #: Auth0 organization sent, if any: the ID token must name it (org_id / org_name).
    organization: str | None = None

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a pending authorization request is not picklable")


def build_authorization_request(
    metadata: ProviderMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str = DEFAULT_SCOPE,
    audience: str | None = None,
    extra_params: Mapping[str, str] | None = None,
) -> AuthorizationRequest:
    """Build a code + PKCE (S256) authorization request with fresh state and nonce."""
    if not client_id:
        raise ConfigurationError("The client id is empty. Pass --client-id or set AUTH0_CLIENT_ID.")
    scope = normalize_scope(scope)
    methods = metadata.code_challenge_methods_supported
    if methods and CODE_CHALLENGE_METHOD not in methods:
        raise ConfigurationError(
            f"The provider {metadata.issuer} does not advertise PKCE with S256 "
            f"(it lists {', '.join(methods)}). nbauth never falls back to 'plain'."
        )
    extra = dict(extra_params or {})
    for key in extra:
        if key in _RESERVED:
            raise ConfigurationError(
                f"The authorize parameter {key!r} is set by nbauth itself and cannot be overridden."
            )
        if key not in PASSTHROUGH_PARAMS:
            raise ConfigurationError(
                f"Unknown authorize parameter {key!r}. Allowed extras: "
                f"{', '.join(sorted(PASSTHROUGH_PARAMS))}."
            )
    max_age = None
    if "max_age" in extra:
        text = str(extra["max_age"]).strip()
        if not text.isdigit() or len(text) > 9:
            raise ConfigurationError(
                f"max_age must be a whole number of seconds, not {extra['max_age']!r}."
            )
        max_age = int(text)
    organization = str(extra["organization"]) if extra.get("organization") else None
    pkce = Pkce()
    state = new_random_value()
    nonce = new_random_value()
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": pkce.challenge,
        "code_challenge_method": CODE_CHALLENGE_METHOD,
    }
    if audience:
        params["audience"] = audience
    params.update({k: str(v) for k, v in extra.items()})
    parts = urlsplit(metadata.authorization_endpoint)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    url = urlunsplit(parts._replace(query=urlencode(query)))
    if len(url) > MAX_URL_LENGTH:
        raise ConfigurationError(
            f"The login URL would be {len(url)} characters long; browsers and providers refuse "
            f"URLs over about {MAX_URL_LENGTH}. Shorten the scope or the extra parameters."
        )
    return AuthorizationRequest(
        url=url,
        redirect_uri=redirect_uri,
        issuer=metadata.issuer,
        state=state,
        nonce=nonce,
        pkce=pkce,
        requested_scope=scope,
        max_age=max_age,
        organization=organization,
    )


def state_matches(request: AuthorizationRequest, params: Mapping[str, str]) -> bool:
    """Constant-time check of the callback's state against the request's."""
    received = params.get("state")
    if not received:
        return False
    return hmac.compare_digest(received.encode("utf-8", "replace"), request.state.encode("ascii"))


def check_authorization_response(
    request: AuthorizationRequest,
    params: Mapping[str, str],
    *,
    iss_required: bool,
) -> str:
    """Return the authorization code from callback parameters, or raise.

    Order: state (RFC 6749 §10.12), then iss (RFC 9207 §2.4), then error, then code — so an
    error that does not carry the right state never ends a login.
    """
    if not state_matches(request, params):
        raise StateMismatchError(
            "The callback's state does not match this login. It was not sent by the provider "
            "for this login; it was ignored."
        )
    iss = params.get("iss")
    if iss is None and iss_required:
        raise IssuerMismatchError(
            "The provider advertises RFC 9207 but its response has no 'iss': the login was "
            "stopped before the code was used (possible mix-up attack)."
        )
    if iss is not None and iss != request.issuer:
        raise IssuerMismatchError(
            "The response names another issuer than the one this login was sent to: the login "
            "was stopped before the code was used (possible mix-up attack)."
        )
    error = params.get("error")
    if error:
        raise oauth_error(error, params.get("error_description") or None,
                          params.get("error_uri") or None)
    code = params.get("code")
    if not code:
        raise OAuthError("invalid_request", "the callback has neither a code nor an error")
    return code
