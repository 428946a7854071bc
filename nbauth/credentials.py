"""The object users hold after a login: the current access token, refresh, and request adapters.

`Credentials.token()` always returns a usable access token: when the token is STALE (within a
minute of expiry) and a refresh token exists, it refreshes first — once, however many threads
ask at the same time (Auth0 revokes the whole token family when a rotated-out refresh token is
used again).

`start_auto_refresh()` (which notebook logins turn on) also refreshes in the background, so
code holding only the token string gets a fresh one too: one daemon timer per credentials,
firing when the token turns STALE and going through the same single-flight refresh.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests

from .errors import (
    ConfigurationError,
    InvalidGrantError,
    LoginRequiredError,
    NbauthError,
    OAuthError,
    ProviderError,
    ProviderUnreachableError,
    hide_internal_frames,
)
from .http import ProviderClient
from .idtoken import JwksCache, validate_id_token
from .tokens import (
    REFRESH_THRESHOLD,
    AccessToken,
    BearerHeader,
    Clock,
    Secret,
    TokenResponse,
    TokenState,
    describe_remaining,
    parse_token_response,
    token_state,
)

if TYPE_CHECKING:
    from .httpxauth import HttpxBearerAuth

__all__ = ["AUTO_REFRESH_ATTEMPTS", "AUTO_REFRESH_BACKOFF", "BearerAuth", "BearerSession",
           "Credentials", "Identity", "revoke_refresh_token"]

log = logging.getLogger(__name__)

#: Background refresh: how many attempts one due refresh gets when the provider fails
#: transiently (unreachable, 5xx, 429, temporarily_unavailable), and the first pause between
#: them (doubled after each failure, and kept before the token's expiry). Then it waits for
#: the next `token()` to try again.
AUTO_REFRESH_ATTEMPTS = 5
AUTO_REFRESH_BACKOFF = 2.0
_MIN_RETRY_PAUSE = 0.25
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def _auth0_logout_endpoint(issuer: str) -> str | None:
    """Auth0's /v2/logout for an Auth0 tenant's issuer (https://TENANT[.REGION].auth0.com/).

    Auth0 lists end_session_endpoint in discovery only when the tenant turns on RP-initiated
    logout; every tenant has /v2/logout. Only the auth0.com host tells a tenant apart from
    another provider reliably (GitLab, for one, also serves /oauth/token and /oauth/revoke);
    a tenant on a custom domain that does not advertise the endpoint gets no logout URL.
    """
    parts = urlsplit(issuer)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host.endswith(".auth0.com"):
        return None
    return f"https://{parts.netloc}/v2/logout"


def _is_transient(error: ProviderError) -> bool:
    """Worth retrying later: the provider was unreachable or overloaded, not refusing."""
    if isinstance(error, OAuthError):
        return error.error in _TRANSIENT_OAUTH_ERRORS
    if isinstance(error, ProviderUnreachableError):
        return True
    # A 200 whose body was unusable (no access_token, not Bearer …) would be the same again.
    return error.status is not None and (error.status >= 500 or error.status == 429)


def _on_auto_refresh_timer(reference: weakref.ref[Credentials]) -> None:
    # The timer holds the credentials weakly: credentials nobody holds any more stop refreshing.
    credentials = reference()
    if credentials is not None:
        credentials._auto_refresh_due()


@dataclass(frozen=True)
class Identity:
    """Who logged in, from the validated ID token (no token values)."""

    subject: str | None = None
    name: str | None = None
    email: str | None = None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Identity:
        def text(key: str) -> str | None:
            value = claims.get(key)
            return value if isinstance(value, str) and value else None

        return cls(subject=text("sub"), name=text("name"), email=text("email"))

    @property
    def label(self) -> str:
        """What to call the user: name, else email, else subject."""
        if self.name and self.email and self.name != self.email:
            return f"{self.name} <{self.email}>"
        return self.name or self.email or self.subject or "unknown user"



#: The longest 503 Retry-After (seconds) a logout waits out before revoking again.
REVOKE_RETRY_LIMIT = 5


def revoke_refresh_token(client: ProviderClient, endpoint: str | None, client_id: str,
                         refresh_token: str, *, sleep: Callable[[float], None] = time.sleep
                         ) -> str:
    """Revoke a public client's refresh token (RFC 7009 §2.1); say what happened, in words.

    Never raises: local state is cleared whatever the provider answers.
    """
    if endpoint is None:
        return ("The provider advertises no revocation endpoint: the refresh token was "
                "forgotten here but not revoked.")
    form = {"token": refresh_token, "token_type_hint": "refresh_token", "client_id": client_id}
    try:
        try:
            client.post_form(endpoint, form, what="revocation", expect_json=False)
        except ProviderError as exc:
            # RFC 7009 §2.2.1: a 503 may say when to retry. Wait once, if the wait is short
            # enough for a logout to bear; a longer one is reported.
            if exc.status != 503 or exc.retry_after is None or \
                    exc.retry_after > REVOKE_RETRY_LIMIT:
                raise
            sleep(exc.retry_after)
            client.post_form(endpoint, form, what="revocation", expect_json=False)
    except NbauthError as exc:
        later = (f" The provider asked to retry in {exc.retry_after} s."
                 if isinstance(exc, ProviderError) and exc.retry_after else "")
        reason = str(exc).replace(" It may be down or overloaded: try again in a moment.", "")
        return (f"Warning: the refresh token could not be revoked at the provider ({reason})."
                f"{later} It was forgotten here, so it stays valid at the provider until it "
                "expires.")
    return "The refresh token was revoked at the provider."

class Credentials:
    """Tokens from one login, renewing themselves with the refresh token when one was granted."""

    def __init__(
        self,
        response: TokenResponse,
        *,
        identity: Identity,
        issuer: str,
        client_id: str,
        token_endpoint: str,
        revocation_endpoint: str | None = None,
        end_session_endpoint: str | None = None,
        audience: str | None = None,
        requested_scope: str | None = None,
        client: ProviderClient | None = None,
        jwks: JwksCache | None = None,
        id_token_algorithms: tuple[str, ...] = ("RS256",),
        clock: Clock = time.time,
        refresh_threshold: float = REFRESH_THRESHOLD,
    ) -> None:
        self.identity = identity
        self.issuer = issuer
        self.client_id = client_id
        self.audience = audience
        self._token_endpoint = token_endpoint
        self._revocation_endpoint = revocation_endpoint
        self._end_session_endpoint = end_session_endpoint
        self._client = client or ProviderClient()
        self._jwks = jwks
        self._algorithms = id_token_algorithms
        self._clock = clock
        self._threshold = refresh_threshold
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Credentials], None]] = []
        self._refresh_guard: Callable[[Credentials], AbstractContextManager[object]] | None = None
        self._scope = response.scope or requested_scope
        self._requested_scope = requested_scope
        self._refresh_token = response.refresh_token
        self._access = AccessToken(response.access_token, response.expires_at, clock)
        self._lifetime = self._lifetime_of(response)
        self._valid = True
        #: Why the credentials ended: None while valid, then "logout", "refused" (the provider
        #: refused a refresh) or "cleared" (dropped locally, e.g. replaced by a newer login).
        self.end_reason: str | None = None
        self.refresh_count = 0
        #: Why the last background refresh failed (no secret in it), until one succeeds.
        self.refresh_error: str | None = None
        # Background refresh (start_auto_refresh): at most one pending timer. _timer_lock only
        # guards these fields and is never held while waiting for _lock.
        self._timer_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._auto_refresh = False
        self._retries_left = AUTO_REFRESH_ATTEMPTS
        self._next_refresh_at: float | None = None
        self.auto_refresh_backoff = AUTO_REFRESH_BACKOFF

    # The refresh token is kept as a Secret, so that printing vars() shows no token.
    @property
    def _refresh_token(self) -> str | None:
        return self._refresh_secret

    @_refresh_token.setter
    def _refresh_token(self, value: str | None) -> None:
        self._refresh_secret = None if value is None else Secret(value)

    # -- what users read -------------------------------------------------------------------
    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple((self._scope or "").split())

    @property
    def expires_at(self) -> float | None:
        return self._access.expires_at

    @property
    def state(self) -> TokenState:
        """FRESH, STALE or EXPIRED, by the injected clock."""
        if not self._valid:
            return TokenState.EXPIRED
        return token_state(self.expires_at, self._clock(), self._threshold_now())

    @property
    def can_refresh(self) -> bool:
        return self._valid and self._renewable()

    def _renewable(self) -> bool:
        """Whether a new access token can be had without the user (here: a refresh token)."""
        return self._refresh_token is not None

    @property
    def valid(self) -> bool:
        """False once cleared (logout, or a refresh the provider refused)."""
        return self._valid

    @property
    def current_token(self) -> AccessToken:
        """The access token held now, without refreshing (see `token()`)."""
        return self._access

    @property
    def access_token(self) -> AccessToken:
        """The current access token, refreshed first if it is about to expire."""
        return self.token()

    @hide_internal_frames
    def token(self) -> AccessToken:
        """Return a usable access token, refreshing it (once, for all threads) when stale."""
        if not self._valid:
            raise LoginRequiredError("These credentials were cleared. Log in again "
                                     "(re-run %auth0_login).")
        if not self._needs_refresh():
            return self._access
        if not self._renewable():
            if self.state is TokenState.EXPIRED:
                raise LoginRequiredError(
                    "The access token has expired and no refresh token was granted. Log in "
                    "again (re-run %auth0_login; the offline_access scope keeps you logged in).")
            return self._access
        return self._refresh_if_needed()

    def _refresh_if_needed(self) -> AccessToken:
        """The single-flight refresh that token() and the background timer share."""
        with self._lock:
            # Threads that waited for the lock find the token already refreshed.
            if self._needs_refresh():
                self._guarded_refresh()
            return self._access

    def _needs_refresh(self) -> bool:
        return self.state is not TokenState.FRESH

    def _threshold_now(self) -> float:
        # A token that lives less than twice the threshold is STALE only in its second half,
        # so short-lived tokens are not refreshed on every use.
        if self._lifetime is not None:
            return min(self._threshold, self._lifetime / 2)
        return self._threshold

    @hide_internal_frames
    def refresh(self) -> None:
        """Refresh now, whatever the expiry (raises LoginRequiredError without a refresh token)."""
        with self._lock:
            self._guarded_refresh()

    def on_change(self, callback: Callable[[Credentials], None]) -> None:
        """Call `callback(credentials)` after every refresh and when the credentials are cleared."""
        self._listeners.append(callback)

    @property
    def remembered(self) -> bool:
        """Whether the login is kept across kernels (--remember), its refresh token shared."""
        return self._refresh_guard is not None

    def guard_refresh(self, guard: Callable[[Credentials], AbstractContextManager[object]]) -> None:
        """Run every refresh inside `guard(credentials)` (remembered logins use it to share
        one refresh token family safely with other kernels)."""
        self._refresh_guard = guard

    # -- background refresh ------------------------------------------------------------------
    def start_auto_refresh(self) -> None:
        """Refresh in the background before expiry, until logout, clear() or stop_auto_refresh().

        One daemon timer fires when the token turns STALE (expiry minus the refresh threshold),
        refreshes through the same single-flight path as token() (so concurrent callers still
        cause one refresh, and rotation is honoured), and schedules itself for the new token.
        A transient provider error is retried with backoff before expiry (AUTO_REFRESH_ATTEMPTS
        attempts in all); a refused refresh token ends the credentials (on_change listeners
        are told). Nothing is scheduled without a way to renew or a known expiry. Calling it
        again keeps one timer. Notebook logins turn it on; scripts opt in.
        """
        with self._timer_lock:
            self._auto_refresh = True
            self._retries_left = AUTO_REFRESH_ATTEMPTS
        self._schedule_auto_refresh()

    def stop_auto_refresh(self) -> None:
        """Cancel the background refresh (token() still refreshes on demand)."""
        with self._timer_lock:
            self._auto_refresh = False
            self._cancel_timer()

    @property
    def next_refresh_at(self) -> float | None:
        """When the background refresh is due (by the injected clock), or None."""
        return self._next_refresh_at

    def _cancel_timer(self) -> None:  # with _timer_lock held
        if self._timer is not None:
            self._timer.cancel()  # its thread wakes and ends at once
            self._timer = None
        self._next_refresh_at = None

    def _schedule_auto_refresh(self, delay: float | None = None, *,
                               after_refresh: bool = False) -> None:
        """(Re)arm the one timer: after `delay` seconds, else when the token turns STALE."""
        with self._timer_lock:
            self._cancel_timer()
            if not self._auto_refresh or not self.can_refresh:
                return
            if delay is None:
                expires_at = self.expires_at
                if expires_at is None:
                    return  # no expiry known: the token counts as fresh, nothing to schedule
                delay = expires_at - self._threshold_now() - self._clock()
                if after_refresh and delay < _MIN_RETRY_PAUSE:
                    # A token (nearly) stale when issued would be refreshed again at once,
                    # forever: a loop against the provider.
                    log.warning("nbauth: the provider's new access token is already due for "
                                "renewal; it is no longer renewed in the background.")
                    return
            delay = max(delay, 0.0)
            timer = threading.Timer(delay, _on_auto_refresh_timer, args=(weakref.ref(self),))
            timer.daemon = True  # never keeps the process alive
            timer.name = "nbauth-auto-refresh"
            self._timer = timer
            self._next_refresh_at = self._clock() + delay
            timer.start()

    def _auto_refresh_due(self) -> None:
        """The timer fired: refresh if the token is (still) due, then arm the next timer."""
        with self._timer_lock:
            if self._timer is not threading.current_thread():
                return  # cancelled or re-armed meanwhile
            self._timer = None
            self._next_refresh_at = None
        if not self.can_refresh:
            return
        refreshes = self.refresh_count
        try:
            self._refresh_if_needed()  # a refresh decides about the next timer itself
        except LoginRequiredError:
            return  # final: refused (cleared, listeners told) or cleared meanwhile; no retry
        except ProviderError as exc:
            if _is_transient(exc):
                self._retry_later(exc)
            else:
                self._give_up(exc)
            return
        except NbauthError as exc:  # e.g. the renewed ID token failed validation
            self._give_up(exc)
            return
        except Exception as exc:  # a timer thread must not die with a traceback
            self._give_up(exc)
            return
        with self._timer_lock:
            armed = self._timer is not None
        # Still fresh and nothing refreshed here (another caller did, or the timer woke
        # early): arm for this token. After a refresh here, an unarmed timer was declined
        # (a token issued already due), and arming again would refresh in a tight loop.
        if not armed and self.refresh_count == refreshes:
            self._schedule_auto_refresh()

    def _retry_later(self, error: ProviderError) -> None:
        """A transient failure: try again after a pause, a bounded number of times."""
        self.refresh_error = str(error)
        with self._timer_lock:
            self._retries_left -= 1
            attempt = AUTO_REFRESH_ATTEMPTS - self._retries_left
            exhausted = self._retries_left <= 0
        if exhausted:
            self._give_up(error)
            return
        pause = self.auto_refresh_backoff * 2 ** (attempt - 1)
        expires_at = self.expires_at
        if expires_at is not None and expires_at - self._clock() > 0:
            pause = min(pause, (expires_at - self._clock()) / 2)  # the next try before expiry
        log.info("nbauth: background token refresh failed (%s); retrying in %.1f s",
                 type(error).__name__, pause)
        self._schedule_auto_refresh(max(pause, _MIN_RETRY_PAUSE))

    def _give_up(self, error: BaseException) -> None:
        """Stop retrying in the background; the next token() tries again (and re-arms)."""
        if isinstance(error, NbauthError):
            self.refresh_error = str(error)
        else:
            self.refresh_error = f"unexpected {type(error).__name__}"
        log.warning("nbauth: the access token could not be renewed in the background: %s",
                    self.refresh_error)

    # -- refresh (RFC 6749 §6) --------------------------------------------------------------
    def _guarded_refresh(self) -> None:
        if self._refresh_guard is None:
            self._refresh_locked()
        else:
            with self._refresh_guard(self):
                self._refresh_locked()
        with self._timer_lock:
            self._retries_left = AUTO_REFRESH_ATTEMPTS
        self._schedule_auto_refresh(after_refresh=True)

    def _refresh_locked(self) -> None:
        if not self._valid or self._refresh_token is None:
            raise LoginRequiredError(
                "The access token has expired and no refresh token was granted. Log in again "
                "(re-run %auth0_login; include the offline_access scope to stay logged in)."
            )
        data = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "refresh_token": self._refresh_token,
        }
        try:
            body = self._client.post_form(self._token_endpoint, data, what="token refresh")
            # Rotation: the refresh token just sent is spent. Keep its successor first, even if
            # the rest of the answer fails a check below, or the next refresh would reuse a
            # rotated-out token (and Auth0 would revoke the whole family).
            successor = body.get("refresh_token")
            if isinstance(successor, str) and successor:
                self._refresh_token = successor
            response = parse_token_response(body, now=self._clock())
        except InvalidGrantError:
            self.clear(reason="refused")
            raise LoginRequiredError(
                "The provider no longer accepts the refresh token (it expired, was revoked, or "
                "was used twice). Log in again: re-run %auth0_login."
            ) from None
        if response.id_token is not None and self._jwks is not None:
            claims = validate_id_token(
                response.id_token, issuer=self.issuer, client_id=self.client_id, nonce=None,
                jwks=self._jwks, allowed_algorithms=self._algorithms, clock=self._clock,
            )
            subject = self.identity.subject
            if subject is not None and claims.get("sub") != subject:  # OIDC Core §12.2
                self.clear(reason="refused")
                raise LoginRequiredError(
                    "The provider renewed the login for another user. Log in again "
                    "(re-run %auth0_login)."
                )
        if response.scope:
            self._scope = response.scope
        self._access = AccessToken(response.access_token, response.expires_at, self._clock)
        self._lifetime = self._lifetime_of(response)
        self.refresh_count += 1
        self._notify()

    def _lifetime_of(self, response: TokenResponse) -> float | None:
        return None if response.expires_at is None else response.expires_at - self._clock()

    def logout(self) -> str:
        """Revoke the refresh token at the provider (RFC 7009), then forget every token.

        Local state is cleared even if the provider cannot be reached. Returns what happened,
        in words for the user: an issued JWT access token stays valid until it expires.
        """
        with self._lock:
            outcome = "No refresh token was held, so there was nothing to revoke at the provider."
            if self._refresh_token is not None:
                outcome = self.revoke_refresh_token(self._refresh_token)
            self.clear(reason="logout")
        return (f"{outcome} An access token already issued stays valid at the API until it "
                "expires.")

    def end_replaced(self) -> None:
        """A newer login took over: forget every token now, and revoke the refresh token at
        the provider on a background thread (nobody waits for that answer) — unless the login
        is remembered, when other kernels may share that token."""
        with self._lock:
            token, endpoint = self._refresh_token, self._revocation_endpoint
            self.clear(reason="replaced")
        if token is not None and endpoint is not None and not self.remembered:
            def revoke() -> None:
                # The login's own client (its CA bundle, proxies); requests reconnects after
                # the close() in clear(), and the connection is dropped again afterwards.
                revoke_refresh_token(self._client, endpoint, self.client_id, str(token))
                self._client.close()

            threading.Thread(target=revoke, name="nbauth-revoke-replaced", daemon=True).start()

    def revoke_refresh_token(self, refresh_token: str) -> str:
        """Revoke a refresh token of this client at the provider (RFC 7009); say what happened."""
        return revoke_refresh_token(self._client, self._revocation_endpoint, self.client_id,
                                    refresh_token)

    def end_session_url(self) -> str | None:
        """Where to end the browser session at the provider (RP-initiated logout), if known:
        discovery's end_session_endpoint, else Auth0's /v2/logout for an auth0.com tenant."""
        endpoint = self._end_session_endpoint or _auth0_logout_endpoint(self.issuer)
        if endpoint:
            query = urlencode({"client_id": self.client_id})
            sep = "&" if "?" in endpoint else "?"
            return f"{endpoint}{sep}{query}"
        return None

    def clear(self, reason: str = "cleared") -> None:
        """Forget every token held here (local only; the provider is not contacted)."""
        self.stop_auto_refresh()
        if self._valid:
            self.end_reason = reason
        self._valid = False
        self._refresh_token = None
        self._access = AccessToken("", 0.0, self._clock)
        # Drop the idle keep-alive connection to the provider: a cleared login holds no socket
        # (a widget that stays displayed may keep this object alive for the kernel's lifetime).
        self._client.close()
        self._notify()

    def _notify(self) -> None:
        if self._valid:  # a refresh succeeded: what failed before is over (listeners show it)
            self.refresh_error = None
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception as exc:  # a display hook must never break the login
                log.warning("nbauth: a status callback failed with %s", type(exc).__name__)

    # -- adapters ---------------------------------------------------------------------------
    @property
    def auth(self) -> BearerAuth:
        """A requests auth object that sends the current token (for your own session)."""
        return BearerAuth(self)

    def session(self) -> BearerSession:
        """A requests.Session that sends `Authorization: Bearer <current token>`."""
        return BearerSession(self)

    def httpx_auth(self) -> HttpxBearerAuth:
        """An `httpx.Auth` sending the current token (needs httpx: `pip install httpx`)."""
        try:
            from .httpxauth import HttpxBearerAuth
        except ImportError:
            raise ConfigurationError("httpx_auth() needs the optional httpx package: "
                                     "pip install httpx (or use .auth / .session() with "
                                     "requests).") from None
        return HttpxBearerAuth(self)

    # -- display and pickling ---------------------------------------------------------------
    def summary(self) -> str:
        """One line: who, for which API, which scopes, when it expires — never a token."""
        if not self._valid:
            return "logged out"
        remaining = None if self.expires_at is None else self.expires_at - self._clock()
        parts = [f"logged in as {self.identity.label}"]
        if self.audience:
            parts.append(f"audience {self.audience}")
        if self.scopes:
            parts.append(f"scopes {' '.join(self.scopes)}")
        parts.append(describe_remaining(remaining))
        parts.append("auto-refresh on" if self.can_refresh else "no refresh token")
        return ", ".join(parts)

    def scope_shortfall(self) -> str | None:
        """In words, what was asked for and not granted (RFC 6749 §3.3: the provider may grant
        less and says so in the token response's scope), or None."""
        requested = (self._requested_scope or "").split()
        missing = [scope for scope in requested if scope not in self.scopes]
        notes = []
        if "offline_access" in requested and not self._renewable():
            notes.append("No refresh token was granted (offline_access), so this login ends "
                         "when its access token expires. At Auth0, enable Allow Offline Access "
                         "in the API's settings.")
            missing = [scope for scope in missing if scope != "offline_access"]
        if missing:
            notes.append(f"The provider did not grant {', '.join(missing)}.")
        return " ".join(notes) or None

    def describe(self) -> dict[str, str]:
        """What %auth0_token shows: facts about the login, never a token value."""
        remaining = None if self.expires_at is None else self.expires_at - self._clock()
        return {
            "user": self.identity.label,
            "subject": self.identity.subject or "(no ID token)",
            "issuer": self.issuer,
            "client id": self.client_id,
            "audience": self.audience or "(none: opaque token for /userinfo)",
            "scopes": " ".join(self.scopes) or "(none reported)",
            "expiry": describe_remaining(remaining),
            "state": self.state.value,
            "refresh": self._describe_refresh(),
        }

    def _describe_refresh(self) -> str:
        if self.can_refresh:
            return (f"automatic (refresh token held; {self.refresh_count} refreshes so far"
                    f"{self._describe_background()})")
        return "none: log in again when it expires"

    def _describe_background(self) -> str:
        """'; next in the background in 59m', and why the last background refresh failed."""
        text = ""
        due = self._next_refresh_at
        if due is not None:
            left = due - self._clock()
            when = describe_remaining(left).removeprefix("expires ") if left > 0 else "now"
            text += f"; next in the background {when}"
        if self.refresh_error:
            text += f"; the last background refresh failed: {self.refresh_error}"
        return text

    def __repr__(self) -> str:
        return f"<nbauth.Credentials: {self.summary()}>"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<code>{escape(repr(self))}</code>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("nbauth credentials are not picklable: tokens must not be written to disk")


class BearerAuth(requests.auth.AuthBase):
    """requests auth: sets `Authorization: Bearer …` from the credentials on every request."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = BearerHeader(f"Bearer {self._credentials.token()}")
        return request

    def __repr__(self) -> str:
        return "<nbauth.BearerAuth>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("nbauth auth objects are not picklable")


class BearerSession(requests.Session):
    """A requests.Session that sends the current bearer token, refreshing it when needed.

    The token is added per request (never stored in `session.headers`), so printing the session
    or its headers shows no token; requests drops the header on a redirect to another host.
    """

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self.credentials = credentials
        self.auth = BearerAuth(credentials)

    def __repr__(self) -> str:
        return f"<nbauth.BearerSession: {self.credentials.summary()}>"

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        """Session.request; a failure is raised without the frames of requests, urllib3 and
        http.client, whose locals hold the Authorization header (`%xmode Verbose` prints
        locals into the cell's output, and so into the saved notebook)."""
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            error = exc
        error.__context__ = error.__cause__ = None
        raise error.with_traceback(None) from None

    def _repr_html_(self) -> str:
        from html import escape

        return f"<code>{escape(repr(self))}</code>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("nbauth sessions are not picklable: tokens must not be written to disk")

    def __getstate__(self) -> Any:
        raise TypeError("nbauth sessions are not picklable: tokens must not be written to disk")
