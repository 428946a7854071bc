"""Token responses (RFC 6749 §5.1), expiry state, and the redacting token types.

`AccessToken` is a real `str` so it works wherever a string does (headers, f-strings), but what a
notebook *displays* for it — repr, `_repr_html_`, `%whos` — never shows the value (an explicit
`print()` or `str()` does, because the user asked for it).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ProviderError, oauth_error

__all__ = [
    "REFRESH_THRESHOLD",
    "AccessToken",
    "BearerHeader",
    "Clock",
    "Secret",
    "TokenResponse",
    "TokenState",
    "describe_remaining",
    "parse_token_response",
]

Clock = Callable[[], float]

#: Seconds before expiry at which a token counts as STALE and is refreshed before use.
REFRESH_THRESHOLD = 60.0

#: Ten years: an expiry further away than this is nonsense, and treated as unknown.
_MAX_LIFETIME = 10 * 365 * 86400


class TokenState(enum.Enum):
    """Where a token is in its life (the google-auth vocabulary)."""

    FRESH = "fresh"
    STALE = "stale"
    EXPIRED = "expired"


def describe_remaining(seconds: float | None) -> str:
    """'expires in 59m', 'expired', or 'no expiry given' — for displays."""
    if seconds is None:
        return "no expiry given"
    if seconds <= 0:
        return "expired"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"expires in {hours}h{minutes:02d}m"
    if minutes:
        return f"expires in {minutes}m"
    return f"expires in {secs}s"


class AccessToken(str):
    """An access token string that redacts itself when displayed."""

    expires_at: float | None
    _clock: Clock

    def __new__(cls, value: str, expires_at: float | None = None,
                clock: Clock = time.time) -> AccessToken:
        token = super().__new__(cls, value)
        token.expires_at = expires_at
        token._clock = clock
        return token

    def _summary(self) -> str:
        remaining = None if self.expires_at is None else self.expires_at - self._clock()
        return f"<access token, {describe_remaining(remaining)}>"

    def __repr__(self) -> str:
        return self._summary()

    def _repr_html_(self) -> str:
        return f"<code>{self._summary().replace('<', '&lt;').replace('>', '&gt;')}</code>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self._summary())

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("access tokens are not picklable: they must not be written to disk")

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle protocol 2+
        raise TypeError("access tokens are not picklable: they must not be written to disk")

    # Strings are immutable: copies (e.g. of a headers dict) can share the token, as str does.
    def __copy__(self) -> AccessToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AccessToken:
        return self


class Secret(str):
    """A secret string (a refresh token, a client secret): its value wherever it is used, a
    placeholder wherever it is shown (repr, and so `vars()` of the object holding it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<secret>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("<secret>")

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("secrets are not picklable: they must not be written to disk")

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle protocol 2+
        raise TypeError("secrets are not picklable: they must not be written to disk")

    # Immutable, as str: copies (of a headers dict, say) share the value instead of pickling.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


class BearerHeader(Secret):
    """An ``Authorization: Bearer …`` value that shows itself redacted (``r.request.headers``
    as a cell's last line would otherwise put the token in the output)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'Bearer <access token>'"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True)
class TokenResponse:
    """A successful token endpoint response, checked (RFC 6749 §5.1)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: float | None
    scope: str | None
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("token responses are not picklable: they must not be written to disk")


def _expires_in(value: Any) -> float | None:
    # §5.1 says a number; some providers send a string. Anything else is ignored, not fatal.
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif isinstance(value, str):
            seconds = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):  # OverflowError: a JSON integer beyond any float
        return None
    # 0 is how some servers (Authlib's, among them) say "does not expire"; as a lifetime it
    # would mean expired on arrival and a renewal on every use. Either way: unknown.
    if seconds != seconds or seconds <= 0 or seconds > _MAX_LIFETIME:  # NaN or absurd
        return None
    return seconds


def _seconds(value: Any) -> float | None:
    """A JSON number as finite float seconds, or None (bools, strings, NaN, beyond any float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if seconds == seconds and abs(seconds) != float("inf") else None


def _expires_in_from_jwt(access_token: str, now: float) -> float | None:
    """Seconds left by the access token's own `exp` claim, when the token is a JWT.

    For scheduling a refresh only: the claims are read without verifying the signature (the
    API verifies the token; nbauth only needs to know when to renew it). A token that is not a
    JWT (Auth0's opaque /userinfo tokens), or garbage, gives None: the expiry stays unknown.
    When the token also carries `iat`, the lifetime by the provider's own clock (exp - iat)
    bounds the result, so a local clock that runs behind or ahead of the provider's cannot
    push the refresh past the real expiry or make a new token look expired.
    """
    import jwt  # PyJWT; imported here so loading the extension stays light

    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError):
        return None
    exp, iat = _seconds(claims.get("exp")), _seconds(claims.get("iat"))
    if exp is None:
        return None
    remaining = exp - now
    if iat is not None and iat < exp and (remaining > exp - iat or remaining <= 0):
        remaining = exp - iat  # the clocks disagree: trust the provider's stated lifetime
    if remaining <= 0 or remaining > _MAX_LIFETIME:
        return None
    return remaining


def _scope_text(value: Any) -> str | None:
    """The granted scope as RFC 6749's space-separated string; a list, or commas (GitHub
    and others), read as the same scopes; anything else as not said."""
    if isinstance(value, list):
        value = " ".join(item for item in value if isinstance(item, str))
    if not isinstance(value, str):
        return None
    words = value.replace(",", " ").split()
    return " ".join(words) or None


def parse_token_response(
    body: Mapping[str, Any],
    *,
    now: float,
    require_id_token: bool = False,
) -> TokenResponse:
    """Check a token endpoint's JSON object and return it typed; raise ProviderError if unusable."""
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        error = body.get("error")
        if isinstance(error, str) and error:  # an RFC 6749 §5.2 error sent with HTTP 200
            description, uri = body.get("error_description"), body.get("error_uri")
            raise oauth_error(error, description if isinstance(description, str) else None,
                              uri if isinstance(uri, str) else None)
        raise ProviderError("The provider's token response has no access_token.")
    token_type = body.get("token_type")
    # REQUIRED (RFC 6749 §5.1) and refused unless Bearer (§7.1), a missing one included: a
    # token of another kind sent as Bearer would be refused by the API, or worse, misused.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        shown = token_type if isinstance(token_type, str) and len(token_type) < 40 else "(missing)"
        tokens = (access_token, body.get("refresh_token"), body.get("id_token"))
        if any(isinstance(token, str) and token and token in shown for token in tokens):
            shown = "(withheld: it repeats a token from the same answer)"  # never echo a token
        raise ProviderError(
            f"The provider's token response has token_type {shown!r}; nbauth only uses Bearer "
            "tokens (RFC 6750)."
        )
    refresh_token = body.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise ProviderError("The provider's token response has a malformed refresh_token.")
    id_token = body.get("id_token")
    if id_token is not None and (not isinstance(id_token, str) or not id_token):
        raise ProviderError("The provider's token response has a malformed id_token.")
    if require_id_token and id_token is None:
        raise ProviderError(
            "The provider's token response has no id_token although 'openid' was requested."
        )
    scope = body.get("scope")
    expires_in = _expires_in(body.get("expires_in"))
    if expires_in is None:
        # Without expires_in (RECOMMENDED only, RFC 6749 §5.1) a token would count as fresh
        # forever and never be renewed: a JWT access token says when it expires itself.
        expires_in = _expires_in_from_jwt(access_token, now)
    return TokenResponse(
        access_token=access_token,
        token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
        expires_at=None if expires_in is None else now + expires_in,
        scope=_scope_text(scope),
        refresh_token=refresh_token,
        id_token=id_token,
    )


def token_state(expires_at: float | None, now: float,
                threshold: float = REFRESH_THRESHOLD) -> TokenState:
    """FRESH, STALE (within `threshold` of expiry) or EXPIRED; no expiry counts as FRESH."""
    if expires_at is None:
        return TokenState.FRESH
    remaining = expires_at - now
    if remaining <= 0:
        return TokenState.EXPIRED
    if remaining <= threshold:
        return TokenState.STALE
    return TokenState.FRESH
