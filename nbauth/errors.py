"""Every error nbauth raises, under one base class.

Messages say what went wrong and what to do next; they never contain a token, code, verifier,
state, nonce or client secret (they end up in notebook outputs and logs).

    NbauthError
    ├── ConfigurationError          a setting is missing or unusable (domain, client id, port …)
    │   ├── InsecureTransportError  plain http to a non-loopback host
    │   └── DeviceFlowUnsupportedError  the provider offers no device authorization grant
    ├── LoopbackBindError           none of the configured callback ports could be bound
    ├── ProviderError               the provider could not be reached or answered nonsense
    │   ├── ProviderUnreachableError    connection refused, DNS failure, timeout
    │   ├── DiscoveryError              the OIDC discovery document is unusable
    │   └── OAuthError                  the provider answered with an RFC 6749 error code
    │       ├── AccessDeniedError           the user (or a rule) refused the login
    │       ├── InvalidGrantError           code or refresh token rejected
    │       └── InvalidClientError          the client id is unknown or not allowed
    ├── AuthorizationResponseError  the callback failed a check (state, issuer)
    │   ├── StateMismatchError
    │   └── IssuerMismatchError
    ├── IdTokenError                the ID token failed validation
    ├── LoginEndedError             a pending login ended without a result
    │   ├── LoginTimeoutError           nobody completed the login in time
    │   │   └── DeviceLoginExpiredError     the device code expired before approval
    │   └── LoginCancelledError         cancelled, interrupted, or superseded by a newer login
    │       └── LoginSupersededError
    ├── LoginRequiredError          the credentials can no longer be renewed: log in again
    └── TokenStoreError             a remembered login's store is unsafe (owner, mode) or unusable

    NbauthWarning (UserWarning)     something was skipped, and the login went on without it
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = [
    "AccessDeniedError",
    "AuthorizationResponseError",
    "ConfigurationError",
    "DeviceFlowUnsupportedError",
    "DeviceLoginExpiredError",
    "DiscoveryError",
    "IdTokenError",
    "InsecureTransportError",
    "InvalidClientError",
    "InvalidGrantError",
    "IssuerMismatchError",
    "LoginCancelledError",
    "LoginEndedError",
    "LoginRequiredError",
    "LoginSupersededError",
    "LoginTimeoutError",
    "LoopbackBindError",
    "NbauthError",
    "NbauthWarning",
    "OAuthError",
    "ProviderError",
    "ProviderUnreachableError",
    "StateMismatchError",
    "TokenStoreError",
    "hide_internal_frames",
    "names_unknown_audience",
    "oauth_error",
    "scrub",
]

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=BaseException)


class NbauthError(Exception):
    """Base class of every error nbauth raises."""


class ConfigurationError(NbauthError, ValueError):
    """A setting is missing or unusable; the message names it and how to set it."""


class InsecureTransportError(ConfigurationError):
    """A provider URL uses plain http on a host that is not a loopback address."""


class DeviceFlowUnsupportedError(ConfigurationError):
    """The provider advertises no device_authorization_endpoint in its discovery document."""


class LoopbackBindError(NbauthError):
    """None of the configured callback ports could be bound on 127.0.0.1."""

    def __init__(self, message: str, ports: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.ports = ports


class ProviderError(NbauthError):
    """The provider could not be reached, or its answer was not a usable OAuth response."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        #: Seconds the provider asked us to wait before trying again (429/503 Retry-After).
        self.retry_after = retry_after


class ProviderUnreachableError(ProviderError):
    """Connection refused, name resolution failed, or the provider did not answer in time."""


class DiscoveryError(ProviderError):
    """The provider's /.well-known/openid-configuration is missing, malformed or inconsistent."""


class OAuthError(ProviderError):
    """The provider answered with an OAuth error code (RFC 6749 §4.1.2.1 and §5.2)."""

    error: str = "unknown_error"

    def __init__(
        self,
        error: str,
        description: str | None = None,
        uri: str | None = None,
        *,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        error = _printable(error, 80)
        description = _printable(description, 300) if description else None
        self.error = error
        self.description = description
        self.uri = _printable(uri, 300) if uri else None
        text = f"The provider refused the request: {error}"
        if description:
            text += f" ({description})"
        if hint:
            text += f". {hint}"
        super().__init__(text, status=status)


def _printable(text: str, limit: int) -> str:
    """Provider text, made safe to print: no control characters (ANSI escapes), bounded."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class AccessDeniedError(OAuthError):
    """The user, or a rule at the provider, denied the authorization request."""

    error = "access_denied"


class InvalidGrantError(OAuthError):
    """The authorization code or refresh token was rejected (expired, used, or revoked)."""

    error = "invalid_grant"


class InvalidClientError(OAuthError):
    """The client id is unknown to the provider or not allowed this grant."""

    error = "invalid_client"


_OAUTH_ERRORS: dict[str, type[OAuthError]] = {
    cls.error: cls for cls in (AccessDeniedError, InvalidGrantError, InvalidClientError)
}

#: An unknown audience: RFC 8707's invalid_target, or Auth0's access_denied "Service not found:
#: <audience>". Approving again cannot help; the audience must name an API the provider knows.
_AUDIENCE_HINT = ("Check --audience: it must equal the API's Identifier at the provider exactly, "
                  "trailing slash included (Auth0: Applications → APIs → the API's Identifier)")

_HINTS: dict[str, str] = {
    "access_denied": "Run the login again and approve the request, or ask the provider's "
    "administrator for access",
    "invalid_grant": "The code or refresh token is no longer valid: run the login again",
    "invalid_client": "Check the client id, and that the application is a Native (public) "
    "application with this grant enabled",
    "unauthorized_client": "Enable this grant type for the application at the provider",
    "invalid_scope": "Check the requested scopes",
    "invalid_request": "Check the login settings (client id, audience, callback URL registered "
    "at the provider)",
    "invalid_target": _AUDIENCE_HINT,
}


def names_unknown_audience(error: str, description: str | None) -> bool:
    """True for RFC 8707's invalid_target, and for Auth0's way of saying the same."""
    return error == "invalid_target" or (error == "access_denied" and (
        description or "").lstrip().lower().startswith("service not found"))


def _hint(error: str, description: str | None) -> str | None:
    """What to do about `error`; Auth0 reports an unknown audience as access_denied."""
    if names_unknown_audience(error, description):
        return _AUDIENCE_HINT
    return _HINTS.get(error)


def oauth_error(
    error: str,
    description: str | None = None,
    uri: str | None = None,
    *,
    status: int | None = None,
) -> OAuthError:
    """Build the most specific OAuthError subclass for an RFC 6749 error code."""
    cls = _OAUTH_ERRORS.get(error, OAuthError)
    return cls(error, description, uri, status=status, hint=_hint(error, description))


class AuthorizationResponseError(NbauthError):
    """The callback to the listener failed a check; no code was exchanged."""


class StateMismatchError(AuthorizationResponseError):
    """The callback's state does not match the pending login's (RFC 6749 §10.12)."""


class IssuerMismatchError(AuthorizationResponseError):
    """The callback's iss parameter is missing or names another issuer (RFC 9207)."""


class IdTokenError(NbauthError):
    """The ID token failed validation; nothing was stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The ID token was rejected: {reason}. Nothing was stored; "
                         "check the domain and client id, then log in again.")
        self.reason = reason


class LoginEndedError(NbauthError):
    """A pending login ended without credentials."""


class LoginTimeoutError(LoginEndedError, TimeoutError):
    """Nobody completed the login before the timeout."""


class DeviceLoginExpiredError(LoginTimeoutError):
    """The device code expired before anyone approved the login (expired_token, or expires_in
    passed); start a new device login."""

    def __init__(self, message: str, *, reported_by_provider: bool) -> None:
        super().__init__(message)
        self.reported_by_provider = reported_by_provider


class LoginCancelledError(LoginEndedError):
    """The login was cancelled, interrupted, or replaced by a newer one."""


class LoginSupersededError(LoginCancelledError):
    """A newer login with the same settings replaced this one."""


class LoginRequiredError(NbauthError):
    """The credentials cannot be renewed any more; the user must log in again."""


class TokenStoreError(NbauthError):
    """The remembered-login store is unsafe (wrong owner or mode) or unusable; not used."""


class NbauthWarning(UserWarning):
    """Something optional was skipped (a corrupt remembered login, a refused store)."""


def scrub(error: E) -> E:
    """Drop an error's traceback and chained exceptions before it reaches user code.

    nbauth's internal frames hold codes, verifiers and tokens in their local variables, and
    tools that print locals (%xmode Verbose, Sentry, pytest --showlocals) would show them.
    """
    error.__traceback__ = None
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error


def hide_internal_frames(function: Callable[P, R]) -> Callable[P, R]:
    """Re-raise nbauth errors from a public entry point without the frames below it."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except NbauthError as exc:
            raise scrub(exc) from None

    return wrapper
