"""The device authorization grant (RFC 8628): log in on another device's browser.

https://www.rfc-editor.org/rfc/rfc8628 — the client asks for a device code and a short user code
(§3.1–3.2), shows the user code and where to enter it (§3.3), then polls the token endpoint
(§3.4–3.5) until the user has approved, denied, or the code has expired.

The protocol rules are pure and clock-injected (`parse_device_authorization`, `PollSchedule`,
`safe_link`); `DeviceLogin.wait()` is the one loop that sleeps and talks to the provider, through
`ProviderClient`. The device code is a secret (§5.4–5.5): no repr, message or log line holds it.

    start_device_login(...)  →  DeviceLogin  (.user_code, .verification_uri, ...)
                                    .wait()   →  Credentials
                                    .cancel() →  wait() raises LoginCancelledError
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .authorize import DEFAULT_SCOPE, normalize_scope
from .credentials import Credentials, Identity
from .discovery import ProviderMetadata, discover, is_loopback_host, issuer_from_domain
from .errors import (
    DeviceFlowUnsupportedError,
    DeviceLoginExpiredError,
    LoginCancelledError,
    LoginTimeoutError,
    NbauthError,
    OAuthError,
    ProviderError,
    ProviderUnreachableError,
    hide_internal_frames,
    names_unknown_audience,
    scrub,
)
from .flow import _jwks_for, checked_client
from .http import ProviderClient
from .idtoken import ASYMMETRIC_ALGORITHMS, validate_id_token
from .tokens import Clock, describe_remaining, parse_token_response

__all__ = [
    "DEFAULT_INTERVAL",
    "DEVICE_CODE_GRANT_TYPE",
    "MAX_BACKOFF",
    "SLOW_DOWN_STEP",
    "DeviceAuthorization",
    "DeviceFlowUnsupportedError",
    "DeviceLogin",
    "DeviceLoginExpiredError",
    "PollSchedule",
    "Sleeper",
    "parse_device_authorization",
    "safe_link",
    "start_device_login",
]

log = logging.getLogger(__name__)

Sleeper = Callable[[float], object]

#: §3.4: the grant type of the token request.
DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
#: §3.2: "If no value is provided, clients MUST use 5 as the default."
DEFAULT_INTERVAL = 5.0
#: §3.5: on slow_down "the interval MUST be increased by 5 seconds for this and all subsequent
#: requests".
SLOW_DOWN_STEP = 5.0
#: Shortest poll interval honoured, whatever the provider says (no busy loop on interval 0).
MIN_INTERVAL = 1.0
#: Longest wait between polls after connection errors (unless the interval itself is longer).
MAX_BACKOFF = 60.0
#: Longest device code lifetime believed; a longer expires_in is cut to this.
MAX_EXPIRES_IN = 86400.0
#: Longest user code shown (Auth0's are 8–9 characters).
MAX_USER_CODE_LENGTH = 64
MAX_URL_LENGTH = 2000

#: Answers that mean "try again later" rather than "no": a gateway in front of the provider
#: failing or rate limiting is treated like a connection problem (§3.5: lower the poll rate).
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


#: Device-flow wording for the OAuth errors that end the polling (§3.5).
_POLL_HINTS: dict[str, str] = {
    "access_denied": "The login was denied on the provider's page. Start a new device login "
    "and approve it, or ask the provider's administrator for access",
    "invalid_grant": "The device code is no longer valid (already used, or revoked): start a "
    "new device login",
    "invalid_client": "Check the client id, and that the application is a Native (public) "
    "application with the Device Code grant enabled",
    "unauthorized_client": "Enable the Device Code grant for the application at the provider "
    "(Auth0: Application → Settings → Advanced → Grant Types)",
}


def _device_oauth_error(error: OAuthError) -> OAuthError:
    hint = _POLL_HINTS.get(error.error)
    if hint is None or names_unknown_audience(error.error, error.description):
        return error  # (an unknown audience keeps oauth_error's hint to check --audience)
    return type(error)(error.error, error.description, error.uri, status=error.status, hint=hint)


# -- pure protocol steps -----------------------------------------------------------------------
def safe_link(url: str) -> str | None:
    """Return `url` if it may be shown as a clickable link, else None (S-63, RFC 8628 §5.4).

    Only https URLs, and plain http to a loopback address, with a host and without user info
    (``https://accounts.example.com@evil.test/`` hides the real host) or control characters.
    Anything else (``javascript:``, ``data:``, plain http elsewhere) is shown as text only.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not host or "@" in parts.netloc or "\\" in url:
        return None
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    return None


def _number(value: Any) -> float | None:
    """A JSON number (or a numeric string, as some providers send), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # OverflowError: a JSON integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _page_url(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        return None
    if any(not ch.isprintable() or ch.isspace() for ch in value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not host:
        return None
    return value


@dataclass(frozen=True)
class DeviceAuthorization:
    """A checked device authorization response (RFC 8628 §3.2); `device_code` is never shown."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: float

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("a device authorization is not picklable: its device code is a secret")


def parse_device_authorization(body: Mapping[str, Any], *, now: float) -> DeviceAuthorization:
    """Check the device authorization endpoint's JSON object (§3.2); raise ProviderError if
    it is unusable. An unusable verification_uri_complete is dropped, not fatal (optional)."""
    device_code = body.get("device_code")
    if not isinstance(device_code, str) or not device_code:
        raise ProviderError("The provider's device authorization response has no device_code.")
    user_code = body.get("user_code")
    if (not isinstance(user_code, str) or not user_code.strip()
            or len(user_code) > MAX_USER_CODE_LENGTH
            or any(not ch.isprintable() for ch in user_code)):
        # Shown to the user: no control characters (ANSI escapes), bounded.
        raise ProviderError(
            "The provider's device authorization response has no usable user_code."
        )
    # verification_url: the name in Google's and Azure AD v1's answers (drafts of RFC 8628)
    verification_uri = _page_url(body, "verification_uri") or _page_url(body, "verification_url")
    if verification_uri is None:
        raise ProviderError(
            "The provider's device authorization response has no usable verification_uri "
            "(an http(s) address where the code is entered)."
        )
    complete = _page_url(body, "verification_uri_complete")
    if complete is not None and urlsplit(complete).hostname != urlsplit(
        verification_uri
    ).hostname:
        complete = None  # the one-click link must lead to the same site as the typed one
    expires_in = _number(body.get("expires_in"))
    if expires_in is None or expires_in <= 0:
        raise ProviderError(
            "The provider's device authorization response has no usable expires_in."
        )
    interval = _number(body.get("interval"))
    if interval is None or interval <= 0:
        interval = DEFAULT_INTERVAL
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code.strip(),
        verification_uri=verification_uri,
        verification_uri_complete=complete,
        expires_at=now + min(expires_in, MAX_EXPIRES_IN),
        interval=max(interval, MIN_INTERVAL),
    )


class PollSchedule:
    """When to poll next (RFC 8628 §3.5), from what the last poll said. Pure: times are given.

    - wait `interval` before every poll (5 s when the provider gave none);
    - authorization_pending keeps the interval;
    - slow_down adds 5 s for this and every later poll (cumulative);
    - a connection error or timeout doubles the wait (from the interval, up to MAX_BACKOFF,
      or the interval if that is longer); the next real answer returns to the interval.
    """

    def __init__(self, interval: float, *, start: float, max_backoff: float = MAX_BACKOFF
                 ) -> None:
        self.interval = interval
        self.max_backoff = max_backoff
        self.backoff: float | None = None
        self.next_poll_at = start + interval

    def pending(self, now: float) -> None:
        self.backoff = None
        self.next_poll_at = now + self.interval

    def slow_down(self, now: float) -> None:
        self.interval += SLOW_DOWN_STEP
        self.backoff = None
        self.next_poll_at = now + self.interval

    def unreachable(self, now: float) -> None:
        previous = self.backoff if self.backoff is not None else self.interval
        self.backoff = min(previous * 2, max(self.max_backoff, self.interval))
        self.next_poll_at = now + self.backoff


def _is_transient(error: ProviderError) -> bool:
    if isinstance(error, ProviderUnreachableError):
        return True
    return not isinstance(error, OAuthError) and error.status in _TRANSIENT_STATUSES


def _contains(error: BaseException, secret: str) -> bool:
    texts = [str(error), *(v for v in vars(error).values() if isinstance(v, str))]
    return any(secret in text for text in texts)


# -- the login object (the I/O layer) ----------------------------------------------------------
class DeviceLogin:
    """A device login waiting for approval: show `user_code` and `verification_uri`, then `wait()`.

    `wait()` polls the token endpoint (in the calling thread) and returns Credentials, or raises
    DeviceLoginExpiredError, AccessDeniedError, another OAuthError, ProviderError or
    LoginCancelledError. `cancel()` may be called from any thread.
    """

    def __init__(
        self,
        authorization: DeviceAuthorization,
        *,
        metadata: ProviderMetadata,
        client: ProviderClient,
        client_id: str,
        audience: str | None,
        scope: str,
        clock: Clock = time.time,
        sleep: Sleeper | None = None,
        timeout: float | None = None,
    ) -> None:
        self._device_code = authorization.device_code
        self.user_code = authorization.user_code
        self.verification_uri = authorization.verification_uri
        self.verification_uri_complete = authorization.verification_uri_complete
        self.expires_at = authorization.expires_at
        self.client_id = client_id
        self.audience = audience
        self.scope = scope
        self._metadata = metadata
        self._client = client
        self._clock = clock
        self._cancelled = threading.Event()
        self._sleep: Sleeper = sleep if sleep is not None else self._cancelled.wait
        self._lifetime = authorization.expires_at - clock()
        #: Seconds the login waits for approval at most (the code may live longer), or None.
        self.timeout = timeout
        self._deadline = None if timeout is None else clock() + timeout
        self._schedule = PollSchedule(authorization.interval, start=clock())
        self._lock = threading.Lock()  # guards the result
        self._polling = threading.Lock()  # one wait() polls at a time
        self._result: Credentials | None = None
        self._error: NbauthError | None = None
        self._done = threading.Event()
        self.polls = 0

    # -- what users read ---------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self._metadata.issuer

    @property
    def interval(self) -> float:
        """Seconds between polls now (grows by 5 s with every slow_down)."""
        return self._schedule.interval

    @property
    def link(self) -> str | None:
        """The address to show as a clickable link (the complete one when offered), or None
        when neither is https / loopback http (then show `verification_uri` as text)."""
        for url in (self.verification_uri_complete, self.verification_uri):
            if url is not None and safe_link(url) is not None:
                return url
        return None

    def expires_in(self) -> float:
        """Seconds left to approve: until the code expires, or the login's timeout if sooner."""
        end = self.expires_at if self._deadline is None else min(self.expires_at, self._deadline)
        return max(0.0, end - self._clock())

    @property
    def instructions(self) -> str:
        """One line for people: where to go and which code to enter (no secret)."""
        return (f"To log in, open {self.verification_uri} and enter the code {self.user_code} "
                f"({describe_remaining(self.expires_in())}).")

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> Credentials | None:
        """The credentials if the login succeeded, else None (never raises)."""
        return self._result

    def exception(self) -> NbauthError | None:
        return self._error

    # -- waiting -----------------------------------------------------------------------------
    @hide_internal_frames
    def wait(self, timeout: float | None = None) -> Credentials:
        """Poll until the login ends and return its Credentials (RFC 8628 §3.4–3.5).

        With `timeout`, raise TimeoutError after that many seconds if the login is still
        pending; it keeps its place and a later `wait()` continues. Ctrl-C (kernel interrupt)
        cancels the login.
        """
        limit = None if timeout is None else self._clock() + timeout
        try:
            return self._wait(limit)
        except KeyboardInterrupt:
            pass
        self.cancel("The device login was interrupted.")
        # A fresh exception, raised outside the handler so that it has no __context__: the
        # frames of the first one held the device code in their locals.
        raise KeyboardInterrupt

    def _wait(self, limit: float | None) -> Credentials:
        while not self._polling.acquire(timeout=0.1):  # another thread is polling
            if self._done.is_set():
                return self._outcome()
            if limit is not None and self._clock() >= limit:
                raise TimeoutError("the device login is still pending")
        try:
            self._poll_until(limit)
        finally:
            self._polling.release()
        return self._outcome()

    def cancel(self, reason: str = "The device login was cancelled.") -> None:
        """Stop polling; `wait()` raises LoginCancelledError (no effect once the login ended)."""
        self._finish(error=LoginCancelledError(reason))
        self._cancelled.set()

    def _outcome(self) -> Credentials:
        if self._error is not None:
            raise self._error
        if self._result is None:  # pragma: no cover - _finish always sets one of them
            raise LoginCancelledError("The device login ended without a result.")
        return self._result

    def _poll_until(self, limit: float | None) -> None:
        schedule = self._schedule
        while not self._done.is_set():
            now = self._clock()
            if now >= self.expires_at:
                self._finish(error=DeviceLoginExpiredError(
                    f"Nobody approved the device login within {self._lifetime:.0f} s, so its "
                    "code has expired. Start a new device login and enter the new code.",
                    reported_by_provider=False))
                return
            if self._deadline is not None and now >= self._deadline:
                self._finish(error=LoginTimeoutError(
                    f"Nobody approved the device login within {self.timeout:g} s. Run the login "
                    "again (to allow more time, pass a larger timeout: --timeout in the magic, "
                    "timeout= in Python)."))
                return
            if now >= schedule.next_poll_at:
                self._poll_once()
                continue
            if limit is not None and now >= limit:
                raise TimeoutError("the device login is still pending")
            target = min(schedule.next_poll_at, self.expires_at,
                         limit if limit is not None else math.inf,
                         self._deadline if self._deadline is not None else math.inf)
            self._sleep(target - now)  # the default sleeper wakes on cancel()

    def _poll_once(self) -> None:
        """One token request (§3.4), and what its answer means for the polling (§3.5)."""
        self.polls += 1
        try:
            body = self._client.post_form(
                self._metadata.token_endpoint,
                {
                    "grant_type": DEVICE_CODE_GRANT_TYPE,
                    "device_code": self._device_code,
                    "client_id": self.client_id,
                },
                what="device token",
            )
        except OAuthError as exc:
            now = self._clock()
            if exc.error == "authorization_pending":
                log.debug("device login: authorization pending")
                self._schedule.pending(now)
            elif exc.error == "slow_down":
                self._schedule.slow_down(now)
                log.debug("device login: slow_down, polling every %g s", self._schedule.interval)
            elif exc.error == "expired_token":
                self._finish(error=DeviceLoginExpiredError(
                    "The provider says the device login's code has expired before it was "
                    "approved. Start a new device login and enter the new code.",
                    reported_by_provider=True))
            else:
                self._finish(error=self._without_secret(_device_oauth_error(exc)))
            return
        except ProviderError as exc:
            if _is_transient(exc):
                self._schedule.unreachable(self._clock())
                log.debug("device login: provider unreachable, next poll in %g s",
                          self._schedule.backoff)
            else:
                self._finish(error=self._without_secret(exc))
            return
        # The device code is spent now: whatever fails below ends the login (no retry).
        try:
            credentials = self._credentials(body)
        except NbauthError as exc:
            self._finish(error=self._without_secret(exc))
        else:
            self._finish(result=credentials)

    def _without_secret(self, error: NbauthError) -> NbauthError:
        """The error, unless the provider echoed the device code into its text (S-63)."""
        if not _contains(error, self._device_code):
            return error
        status = error.status if isinstance(error, ProviderError) else None
        return ProviderError(
            "The provider refused the device login (its message was withheld because it "
            "contained the device code). Start a new device login.", status=status)

    def _credentials(self, body: dict[str, Any]) -> Credentials:
        """Build Credentials as the code flow does: the ID token is validated first (OIDC Core
        §3.1.3.7; there is no nonce in the device flow)."""
        metadata = self._metadata
        wants_id_token = "openid" in self.scope.split()
        response = parse_token_response(body, now=self._clock(), require_id_token=wants_id_token)
        jwks = _jwks_for(metadata, self._client)
        algs = tuple(a for a in metadata.id_token_signing_alg_values_supported
                     if a in ASYMMETRIC_ALGORITHMS) or ("RS256",)
        identity = Identity()
        if response.id_token is not None:
            claims = validate_id_token(
                response.id_token, issuer=metadata.issuer, client_id=self.client_id, nonce=None,
                jwks=jwks, allowed_algorithms=algs, clock=self._clock,
            )
            identity = Identity.from_claims(claims)
        return Credentials(
            response,
            identity=identity,
            issuer=metadata.issuer,
            client_id=self.client_id,
            token_endpoint=metadata.token_endpoint,
            revocation_endpoint=metadata.revocation_endpoint,
            end_session_endpoint=metadata.end_session_endpoint,
            audience=self.audience,
            requested_scope=self.scope,
            client=self._client,
            jwks=jwks,
            id_token_algorithms=algs,
            clock=self._clock,
        )

    def _finish(self, *, result: Credentials | None = None,
                error: NbauthError | None = None) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._result = result
            self._error = None if error is None else scrub(error)
            self._done.set()
        if result is not None:
            log.debug("device login: succeeded")
        else:
            log.debug("device login: ended with %s", type(error).__name__)

    # -- display and pickling ----------------------------------------------------------------
    def _phase(self) -> str:
        if self._result is not None:
            return "succeeded"
        if self._error is not None:
            return "failed"
        return "waiting"

    def __repr__(self) -> str:
        if self._done.is_set():
            return f"<nbauth.DeviceLogin {self._phase()}>"
        return (f"<nbauth.DeviceLogin waiting: open {self.verification_uri} and enter "
                f"{self.user_code}, {describe_remaining(self.expires_in())}>")

    def _repr_html_(self) -> str:
        from html import escape

        if self._done.is_set():
            return f"<code>{escape(repr(self))}</code>"
        link = self.link
        where = (f'<a href="{escape(link)}" target="_blank" rel="noopener noreferrer">'
                 f"{escape(self.verification_uri)}</a>" if link is not None
                 else f"<code>{escape(self.verification_uri)}</code>")
        return (f"To log in, open {where} and enter the code "
                f"<strong><code>{escape(self.user_code)}</code></strong> "
                f"({escape(describe_remaining(self.expires_in()))}).")

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("a device login is not picklable: its device code is a secret")


@hide_internal_frames
def start_device_login(
    domain: str,
    client_id: str,
    *,
    audience: str | None = None,
    scope: str = DEFAULT_SCOPE,
    client: ProviderClient | None = None,
    clock: Clock = time.time,
    sleep: Sleeper | None = None,
    timeout: float | None = None,
) -> DeviceLogin:
    """Ask the provider for a device code (RFC 8628 §3.1) and return the waiting DeviceLogin.

    Show `login.user_code` and `login.verification_uri` (a link only if `safe_link` allows it),
    then call `login.wait()`. With `timeout`, the login ends with LoginTimeoutError after that
    many seconds without approval (else when the code expires). `sleep(seconds)` is
    injectable for tests; by default the waits end early when `cancel()` is called.
    """
    client_id, audience = checked_client(domain, client_id, audience, scope)
    issuer = issuer_from_domain(domain)
    client = client or ProviderClient()
    metadata = discover(issuer, client)
    endpoint = metadata.device_authorization_endpoint
    if endpoint is None:
        raise DeviceFlowUnsupportedError(
            f"The provider at {metadata.issuer} does not offer the device login (its discovery "
            "document has no device_authorization_endpoint). Use the browser login instead "
            "(%auth0_login, or nbauth.login())."
        )
    scope = normalize_scope(scope)
    data = {"client_id": client_id, "scope": scope}
    if audience:
        data["audience"] = audience
    try:
        body = client.post_form(endpoint, data, what="device authorization")
    except OAuthError as exc:
        raise _device_oauth_error(exc) from None
    authorization = parse_device_authorization(body, now=clock())
    log.debug("device login: started, expires in %g s, interval %g s",
              authorization.expires_at - clock(), authorization.interval)
    return DeviceLogin(
        authorization, metadata=metadata, client=client, client_id=client_id,
        audience=audience, scope=scope, clock=clock, sleep=sleep, timeout=timeout,
    )
