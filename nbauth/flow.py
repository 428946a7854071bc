"""The interactive login: Authorization Code + PKCE through the loopback listener.

`start_login()` binds the listener, builds the authorization URL and returns a `PendingLogin` at
once; the browser's callback completes it on the listener's thread (code exchange, ID-token
validation), so a notebook can keep working. `login()` is the blocking form for scripts and
for "Run All".
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
import warnings
import webbrowser
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .authorize import (
    DEFAULT_SCOPE,
    AuthorizationRequest,
    build_authorization_request,
    check_authorization_response,
    state_matches,
)
from .credentials import Credentials, Identity
from .defaults import DEFAULT_TIMEOUT, MAX_TIMEOUT
from .discovery import ProviderMetadata, discover, issuer_from_domain
from .errors import (
    AccessDeniedError,
    AuthorizationResponseError,
    ConfigurationError,
    LoginCancelledError,
    LoginSupersededError,
    LoginTimeoutError,
    NbauthError,
    NbauthWarning,
    OAuthError,
    StateMismatchError,
    hide_internal_frames,
    scrub,
)
from .http import ProviderClient
from .idtoken import ASYMMETRIC_ALGORITHMS, JwksCache, validate_id_token
from .loopback import DEFAULT_PORTS, CallbackListener, Reply
from .route import CallbackRoute
from .serverext.registry import MAX_TTL as ROUTED_MAX_WAIT
from .serverext.registry import Registry
from .tokens import Clock, parse_token_response

__all__ = ["DEFAULT_TIMEOUT", "PendingLogin", "Status", "login", "start_login"]

log = logging.getLogger(__name__)


StatusCallback = Callable[["Status"], None]


class Status:
    """A pending login's progress, as words for people (no secrets)."""

    WAITING = "waiting"
    EXCHANGING = "exchanging"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    def __init__(self, phase: str, message: str, error: NbauthError | None = None) -> None:
        self.phase = phase
        self.message = message
        self.error = error

    @property
    def done(self) -> bool:
        return self.phase in (self.SUCCEEDED, self.FAILED)

    def __repr__(self) -> str:
        return f"<Status {self.phase}: {self.message}>"


_jwks_caches: dict[str, JwksCache] = {}
_pending: dict[tuple[str, ...], PendingLogin] = {}
_generations: dict[tuple[str, ...], int] = {}
_registry_lock = threading.Lock()


def _jwks_for(metadata: ProviderMetadata, client: ProviderClient) -> JwksCache:
    with _registry_lock:
        cache = _jwks_caches.get(metadata.jwks_uri)
        if cache is None:
            cache = _jwks_caches[metadata.jwks_uri] = JwksCache(metadata.jwks_uri, client)
        return cache


def checked_client(domain: object, client_id: object, audience: object = None,
                   scope: object = None) -> tuple[str, str | None]:
    """Check the login arguments' types and return (client_id, audience) trimmed, as the
    magics and the environment give them: a pasted value often carries a space or newline."""
    values = {"domain": domain, "client_id": client_id, "audience": audience, "scope": scope}
    for name, value in values.items():
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"{name} must be a string, not {type(value).__name__}."
            )
    for name in ("domain", "client_id"):
        if not str(values[name] or "").strip():
            raise ConfigurationError(f"{name} is empty: pass the {name.replace('_', ' ')}.")
    return str(client_id).strip(), (str(audience).strip() or None) if audience else None


def _normalize_ports(port: int | str | Sequence[int] | None) -> tuple[int, ...]:
    if port is None:
        return DEFAULT_PORTS
    if isinstance(port, str):
        from .config import parse_ports

        return parse_ports(port)
    ports = (port,) if isinstance(port, int) else port
    if isinstance(ports, (bytes, bytearray)) or not isinstance(ports, Sequence):
        raise ConfigurationError(f"port must be a port number or a list of them, not {port!r}.")
    for value in ports:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ConfigurationError(f"The port {value!r} is not a port number (0–65535).")
    return tuple(ports)


class _AlreadyHandled(Exception):
    """A second callback for a login that already has its response."""


class PendingLogin:
    """A login waiting for the browser. `wait()` returns its Credentials or raises its error."""

    def __init__(
        self,
        *,
        request: AuthorizationRequest,
        metadata: ProviderMetadata,
        listener: CallbackListener,
        client: ProviderClient,
        client_id: str,
        audience: str | None,
        timeout: float,
        key: tuple[str, ...],
        route: CallbackRoute | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._request = request
        self.route = route
        self._metadata = metadata
        self._listener = listener
        self._client = client
        self.client_id = client_id
        self.audience = audience
        self.timeout = timeout
        self._key = key
        self._clock = clock
        self._deadline = time.monotonic() + timeout
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._claimed = False
        self._ended = False  # _finish has decided the outcome
        self._result: Credentials | None = None
        self._error: NbauthError | None = None
        self._callbacks: list[StatusCallback] = []
        self.status = Status(Status.WAITING, "Waiting for you to log in in the browser…")
        start_token = listener.set_start(request.url)
        self._registry: Registry | None = None
        if route is not None and route.mode == "jupyter":
            self._start_url = route.start_link(start_token)
            registry = Registry(route.registry_dir)
            try:
                registry.register(
                    state=request.state, start_token=start_token, port=listener.port,
                    relay_key=listener.relay_key or "", server=route.server_base_url or "",
                    ttl=timeout,
                )
            except OSError as exc:
                raise ConfigurationError(
                    f"Could not register the login with the Jupyter server in "
                    f"{registry.directory} ({exc.strerror or exc}). Use --callback device, "
                    "or fix that directory (it must be yours, mode 0700)."
                ) from None
            self._registry = registry
        else:
            self._start_url = listener.start_link(start_token)
        self._timer = threading.Timer(timeout, self._on_timeout)
        self._timer.daemon = True

    # -- public -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The authorization URL (it carries the login's state; prefer `start_url` to show)."""
        return self._request.url

    @property
    def start_url(self) -> str:
        """The link to open or show: the listener redirects it to `url` while the login waits.

        It holds an opaque token instead of the state, so process lists, outputs and saved
        notebooks never see the authorization request itself.
        """
        return self._start_url

    @property
    def redirect_uri(self) -> str:
        return self._request.redirect_uri

    @property
    def issuer(self) -> str:
        return self._metadata.issuer

    @property
    def port(self) -> int:
        return self._listener.port

    def done(self) -> bool:
        return self._done.is_set()

    def on_status(self, callback: StatusCallback) -> None:
        """Call `callback(status)` on every change (from the listener's thread)."""
        self._callbacks.append(callback)
        if self._done.is_set():
            self._fire(self.status)

    @hide_internal_frames
    def wait(self, timeout: float | None = None) -> Credentials:
        """Block until the login ends; Ctrl-C (kernel interrupt) cancels it cleanly."""
        limit = None if timeout is None else time.monotonic() + timeout
        interrupted = False
        try:
            while not self._done.wait(0.1):
                if limit is not None and time.monotonic() >= limit:
                    raise TimeoutError("the login is still pending")
        except KeyboardInterrupt:
            interrupted = True
        if interrupted:
            self.cancel("The login was interrupted.")
            # A fresh one, raised outside the handler: Ctrl-C in a script shows the caller's
            # frames, not threading's (and no __context__ chain).
            raise KeyboardInterrupt
        self._listener.close()
        if self._error is not None:
            raise self._error
        if self._result is None:  # pragma: no cover - _finish always sets one of them
            raise LoginCancelledError("The login ended without a result.")
        return self._result

    def result(self) -> Credentials | None:
        """The credentials if the login succeeded, else None (never raises)."""
        return self._result

    def exception(self) -> NbauthError | None:
        return self._error

    def cancel(self, reason: str = "The login was cancelled.") -> None:
        """Stop waiting, free the port; `wait()` raises LoginCancelledError."""
        self._finish(error=LoginCancelledError(reason))

    # -- internals --------------------------------------------------------------------------
    def _start(self) -> None:
        self._listener.start(self._on_callback)
        self._timer.start()

    def _supersede(self) -> None:
        self._finish(error=LoginSupersededError(
            "A newer login replaced this one."))

    def _on_timeout(self) -> None:
        with self._lock:
            if self._claimed:
                return  # the response arrived: the code exchange decides (it has its own timeouts)
        self._finish(error=LoginTimeoutError(
            f"Nobody completed the login within {self.timeout:g} s. Run the login again "
            "(to allow more time, pass a larger timeout: --timeout in the magic, timeout= in "
            "Python)."))

    def _on_callback(self, params: Mapping[str, str]) -> Reply:
        try:
            code = self._claim(params)
        except StateMismatchError:
            return Reply(400, "Not for this login",
                         "This response does not belong to the login your notebook is waiting "
                         "for, so it was ignored. The login is still waiting.")
        except _AlreadyHandled:
            return Reply(409, "Login already handled",
                         "This login has already received its response.")
        except (AuthorizationResponseError, OAuthError) as exc:
            self._finish(error=exc, close=False)
            return self._final_reply()
        self._set_status(Status(Status.EXCHANGING, "Completing the login…"))
        try:
            credentials = self._exchange(code)
        except NbauthError as exc:
            self._finish(error=exc, close=False)
        else:
            self._finish(result=credentials, close=False)
        return self._final_reply()

    def _final_reply(self) -> Reply:
        """The page for the browser, saying how the login really ended (a cancel in the
        notebook during the code exchange wins, and the page says so)."""
        if self._result is not None:
            return Reply(200, "Logged in",
                         f"You are logged in as {self._result.identity.label}.",
                         ok=True, final=True)
        error = self._error
        status = 403 if isinstance(error, AccessDeniedError) else 400
        if error is not None and not isinstance(error, (AuthorizationResponseError, OAuthError)):
            status = 502 if isinstance(error, NbauthError) else 400
        if isinstance(error, LoginCancelledError):
            status = 409
        return Reply(status, "Login failed", str(error), final=True)

    def _claim(self, params: Mapping[str, str]) -> str:
        """Check the callback; the first one with the right state consumes the login."""
        with self._lock:
            if self._done.is_set() or self._claimed:
                raise _AlreadyHandled
            if not state_matches(self._request, params):
                raise StateMismatchError("the callback's state does not match this login")
            self._claimed = True  # the right state: this response decides, whatever it says
        return check_authorization_response(
            self._request, params,
            iss_required=self._metadata.authorization_response_iss_parameter_supported,
        )

    def _exchange(self, code: str) -> Credentials:
        """Token request (RFC 6749 §4.1.3 + RFC 7636 §4.5), then ID-token validation."""
        request = self._request
        body = self._client.post_form(
            self._metadata.token_endpoint,
            {
                "grant_type": "authorization_code",
                "client_id": self.client_id,
                "code": code,
                "redirect_uri": request.redirect_uri,
                "code_verifier": request.pkce.verifier,
            },
            what="token",
        )
        wants_id_token = "openid" in request.requested_scope.split()
        response = parse_token_response(body, now=self._clock(), require_id_token=wants_id_token)
        jwks = _jwks_for(self._metadata, self._client)
        identity = Identity()
        algs = tuple(a for a in self._metadata.id_token_signing_alg_values_supported
                     if a in ASYMMETRIC_ALGORITHMS) or ("RS256",)
        if response.id_token is not None:
            claims = validate_id_token(
                response.id_token, issuer=self._metadata.issuer, client_id=self.client_id,
                nonce=request.nonce, jwks=jwks, allowed_algorithms=algs, clock=self._clock,
                max_age=request.max_age, organization=request.organization,
            )
            identity = Identity.from_claims(claims)
        return Credentials(
            response,
            identity=identity,
            issuer=self._metadata.issuer,
            client_id=self.client_id,
            token_endpoint=self._metadata.token_endpoint,
            revocation_endpoint=self._metadata.revocation_endpoint,
            end_session_endpoint=self._metadata.end_session_endpoint,
            audience=self.audience,
            requested_scope=request.requested_scope,
            client=self._client,
            jwks=jwks,
            id_token_algorithms=algs,
            clock=self._clock,
        )

    def _finish(self, *, result: Credentials | None = None, error: NbauthError | None = None,
                close: bool = True) -> None:
        with self._lock:
            # (not _done: that is set only after the listener has closed, which may wait for
            # a page in flight, and the first outcome must win meanwhile)
            if self._ended:
                return
            self._ended = True
            self._result, self._error = result, None if error is None else scrub(error)
            self._claimed = True
        self._timer.cancel()
        if self._registry is not None:
            self._registry.unregister(self._request.state)
        if close:
            self._listener.close()
        if result is None:
            self._client.close()  # no credentials will use it: drop its provider connection
        with _registry_lock:
            if _pending.get(self._key) is self:
                del _pending[self._key]
        if result is not None:
            status = Status(Status.SUCCEEDED, f"Logged in as {result.identity.label}")
        else:
            status = Status(Status.FAILED, str(error), error)
        self.status = status
        # Callbacks first: whoever waits (a notebook cell) resumes once they are done, so the
        # variables a notebook login installs exist when the cell reports them ready.
        self._fire(status)
        self._done.set()

    def _set_status(self, status: Status) -> None:
        self.status = status
        self._fire(status)

    def _fire(self, status: Status) -> None:
        for callback in list(self._callbacks):
            try:
                callback(status)
            except Exception as exc:  # a display hook must never break the login
                log.warning("nbauth: a status callback failed with %s", type(exc).__name__)

    def __repr__(self) -> str:
        return f"<nbauth.PendingLogin {self.status.phase} on port {self.port}>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("a pending login is not picklable")


@hide_internal_frames
def start_login(
    domain: str,
    client_id: str,
    *,
    audience: str | None = None,
    scope: str = DEFAULT_SCOPE,
    port: int | str | Sequence[int] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    extra_params: Mapping[str, str] | None = None,
    client: ProviderClient | None = None,
    route: CallbackRoute | None = None,
    clock: Clock = time.time,
) -> PendingLogin:
    """Begin a login and return at once; open `pending.start_url` in a browser to complete it.

    A pending login with the same provider, client and audience is superseded: it ends with
    LoginSupersededError and its port is freed for this one. `route` (from `choose_route`)
    sends the browser back through the Jupyter server instead of straight to 127.0.0.1.
    """
    if route is not None and route.mode == "device":
        raise ConfigurationError("start_login cannot use the device route; call "
                                 "start_device_login instead.")
    client_id, audience = checked_client(domain, client_id, audience, scope)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
        0 < timeout <= MAX_TIMEOUT
    ):
        raise ConfigurationError(
            f"The timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds, "
            f"not {timeout!r}."
        )
    issuer = issuer_from_domain(domain)
    ports = _normalize_ports(port)
    client = client or ProviderClient()
    metadata = discover(issuer, client)
    key = (metadata.issuer, client_id, audience or "")
    # The newest start_login for a key wins, even when two start at the same time.
    with _registry_lock:
        generation = _generations[key] = _generations.get(key, 0) + 1
        previous = _pending.get(key)
    if previous is not None:
        previous._supersede()
    routed = route is not None and route.mode == "jupyter"
    if routed:  # the server relays a callback for ten minutes at most (S-92)
        timeout = min(timeout, ROUTED_MAX_WAIT)
    # Bound before any URL exists (RFC 8252 §8.3). Routed logins listen on any free port: the
    # provider never sees it, and only the server extension (holding the relay key) may call.
    listener = (CallbackListener((0,), relay_key=secrets.token_urlsafe(32)) if routed
                else CallbackListener(ports))
    try:
        redirect_uri = (route.redirect_uri if routed and route is not None
                        and route.redirect_uri else listener.redirect_uri)
        request = build_authorization_request(
            metadata, client_id=client_id, redirect_uri=redirect_uri, scope=scope,
            audience=audience, extra_params=extra_params,
        )
        pending = PendingLogin(
            request=request, metadata=metadata, listener=listener, client=client,
            client_id=client_id, audience=audience, timeout=timeout, key=key,
            route=route if routed else None, clock=clock,
        )
        with _registry_lock:
            newest = _generations[key] == generation
            if newest:
                _pending[key] = pending
        if newest:
            pending._start()
        else:
            pending._supersede()
    except BaseException:
        listener.close()
        raise
    return pending


@hide_internal_frames
def login(
    domain: str,
    client_id: str,
    *,
    audience: str | None = None,
    scope: str = DEFAULT_SCOPE,
    port: int | str | Sequence[int] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    open_browser: bool | Callable[[str], object] = True,
    extra_params: Mapping[str, str] | None = None,
    client: ProviderClient | None = None,
    remember: bool = False,
) -> Credentials:
    """Log in with Authorization Code + PKCE and return the credentials (blocks until done).

    The URL is printed (to stderr) and, unless `open_browser` is False, opened with Python's
    `webbrowser` (which honours $BROWSER); pass a callable to open it yourself. With
    `remember=True` a login remembered earlier is used without a browser when the provider
    still accepts it, and this login is remembered for next time (see nbauth.remember).
    """
    if remember:
        from .remember import keep_remembered, remember_refusal, resume_login

        refusal = remember_refusal()
        if refusal is not None:
            warnings.warn(refusal, NbauthWarning, stacklevel=3)
            remember = False
        else:
            client_id, audience = checked_client(domain, client_id, audience, scope)
            resumed = resume_login(domain, client_id, audience=audience, scope=scope,
                                   client=client)
            if resumed is not None:
                return resumed
    pending = start_login(
        domain, client_id, audience=audience, scope=scope, port=port, timeout=timeout,
        extra_params=extra_params, client=client,
    )
    try:
        print(f"Log in at this address (waiting up to {timeout:g} s):\n{pending.start_url}",
              file=sys.stderr, flush=True)
        if callable(open_browser):
            open_browser(pending.start_url)
        elif open_browser:
            webbrowser.open(pending.start_url, new=2)
    except BaseException:  # Ctrl-C or an opener's error before the wait: free the port too
        pending.cancel("The login was interrupted.")
        raise
    credentials = pending.wait()
    shortfall = credentials.scope_shortfall()
    if shortfall:
        warnings.warn(shortfall, NbauthWarning, stacklevel=3)
    if remember:
        keep_remembered(credentials, scope=scope)
    return credentials
