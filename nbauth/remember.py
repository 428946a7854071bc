"""Remembered logins (opt-in): keep the refresh token so the next login needs no browser.

`resume_login()` looks up the stored refresh token for the same issuer, client, audience and
scopes (`tokenstore`), and redeems it at the token endpoint (a refresh grant; any ID token in
the answer is validated like a login's). `keep_remembered()` stores a login's refresh token
and keeps the stored copy current: refresh tokens rotate, and a stored rotated-out token would
be "reuse" at Auth0, which revokes the whole login. Logout, or the provider refusing the token,
removes the entry. On shared hosts (JupyterHub, Binder) remembering is off unless an
administrator allows it.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace

from .credentials import Credentials, Identity
from .discovery import discover, issuer_from_domain
from .errors import InvalidGrantError, NbauthError, NbauthWarning, TokenStoreError
from .http import ProviderClient
from .idtoken import ASYMMETRIC_ALGORITHMS, validate_id_token
from .tokens import Clock, parse_token_response
from .tokenstore import RememberedEntry, StoreKey, TokenStore, default_store

__all__ = ["ALLOW_ON_SHARED_HOSTS_ENV", "keep_remembered", "remember_refusal", "resume_login",
           "shared_host"]

#: Set to 1 (e.g. in JupyterHub's Spawner.environment) to allow --remember on a shared host.
ALLOW_ON_SHARED_HOSTS_ENV = "NBAUTH_ALLOW_REMEMBER_ON_SHARED_HOSTS"

Warn = Callable[[str], None]

_live: dict[str, weakref.ref[Credentials]] = {}
_live_lock = threading.Lock()


def _warn(message: str) -> None:
    warnings.warn(message, NbauthWarning, stacklevel=3)


def shared_host(environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the shared host this kernel runs on (JupyterHub, Binder), or None."""
    environ = os.environ if environ is None else environ
    if environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        return "JupyterHub"
    if environ.get("BINDER_SERVICE_HOST") or environ.get("BINDER_LAUNCH_HOST"):
        return "Binder"
    return None


def remember_refusal(allowed_on_shared_hosts: bool = False,
                     environ: Mapping[str, str] | None = None) -> str | None:
    """Why remembering is off here (a shared host the admin has not opened), or None."""
    environ = os.environ if environ is None else environ
    host = shared_host(environ)
    allowed = allowed_on_shared_hosts or environ.get(ALLOW_ON_SHARED_HOSTS_ENV, "").strip() \
        .lower() in ("1", "true", "yes")
    if host is None or allowed:
        return None
    return (f"--remember is off on this shared host ({host}): a refresh token kept on a server "
            "stays usable by whoever administers it. An administrator can allow it with "
            "c.NbauthConfig.allow_remember_on_shared_hosts = True (or "
            f"{ALLOW_ON_SHARED_HOSTS_ENV}=1 in the server's environment). Logging in without "
            "remembering.")


def _live_elsewhere(key: StoreKey, replacing: Credentials | None) -> bool:
    """True when another live login in this process holds this remembered token's family."""
    with _live_lock:
        ref = _live.get(key.digest)
        live = None if ref is None else ref()
    if live is None or not live.valid:
        return False
    if live is replacing:
        live.clear()  # a re-run for the same variable takes over its login
        return False
    return True


def resume_login(
    domain: str,
    client_id: str,
    *,
    audience: str | None,
    scope: str,
    store: TokenStore | None = None,
    client: ProviderClient | None = None,
    replacing: Credentials | None = None,
    warn: Warn = _warn,
    clock: Clock = time.time,
) -> Credentials | None:
    """Log in with the remembered refresh token, or return None (then log in by browser).

    An unsafe store, a corrupt entry or a token the provider refuses gives None and a warning
    (the refused entry is deleted); an unreachable provider raises, keeping the entry.
    """
    client = client or ProviderClient()
    metadata = discover(issuer_from_domain(domain), client)
    key = StoreKey(metadata.issuer, client_id, audience, scope)
    store = store or default_store()
    if _live_elsewhere(key, replacing):
        warn("This remembered login is in use by another login in this kernel (its refresh "
             "token rotates, so it cannot serve two at once). Logging in in the browser.")
        return None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            entry = store.load(key)
        for item in caught:
            warn(str(item.message))
    except TokenStoreError as exc:
        warn(f"{exc} Logging in in the browser instead.")
        return None
    if entry is None:
        return None
    try:
        body = client.post_form(metadata.token_endpoint, {
            "grant_type": "refresh_token", "client_id": client_id,
            "refresh_token": entry.refresh_token}, what="remembered login")
    except InvalidGrantError:
        store.delete(key)
        warn("The provider no longer accepts the remembered login (it expired, was revoked, or "
             "was used elsewhere), so it was forgotten. Logging in in the browser.")
        return None
    response = parse_token_response(body, now=clock())
    refresh_token = response.refresh_token or entry.refresh_token
    # Rotation: the stored token is spent now; store its successor before anything can fail.
    saved: str | None = refresh_token
    try:
        store.save(key, replace(entry, refresh_token=refresh_token))
    except (OSError, NbauthError) as exc:
        warn(f"The login was resumed but could not be remembered again in {store.where} "
             f"({exc}); the next one will need the browser.")
        saved = None
    identity = Identity(subject=entry.subject, name=entry.name, email=entry.email)
    from .flow import _jwks_for

    jwks = _jwks_for(metadata, client)
    algs = tuple(a for a in metadata.id_token_signing_alg_values_supported
                 if a in ASYMMETRIC_ALGORITHMS) or ("RS256",)
    if response.id_token is not None:
        claims = validate_id_token(response.id_token, issuer=metadata.issuer,
                                   client_id=client_id, nonce=None, jwks=jwks,
                                   allowed_algorithms=algs, clock=clock)
        if entry.subject is not None and claims.get("sub") != entry.subject:
            store.delete(key)
            warn("The remembered login now belongs to another user, so it was forgotten. "
                 "Logging in in the browser.")
            return None
        identity = Identity.from_claims(claims)
    credentials = Credentials(
        replace(response, refresh_token=refresh_token), identity=identity,
        issuer=metadata.issuer, client_id=client_id, token_endpoint=metadata.token_endpoint,
        revocation_endpoint=metadata.revocation_endpoint,
        end_session_endpoint=metadata.end_session_endpoint, audience=audience,
        requested_scope=scope, client=client, jwks=jwks, id_token_algorithms=algs, clock=clock,
    )
    keep_remembered(credentials, scope=scope, store=store, warn=warn, saved=saved)
    return credentials


class _Keeper:
    """Keeps the stored entry equal to the credentials' current refresh token."""

    def __init__(self, key: StoreKey, store: TokenStore, warn: Warn, saved: str | None) -> None:
        self.key, self.store, self.warn, self.saved = key, store, warn, saved
        self.lock = threading.Lock()

    def save(self, credentials: Credentials) -> None:
        token = credentials._refresh_token
        if token is None or token == self.saved:
            return
        identity = credentials.identity
        try:
            self.store.save(self.key, RememberedEntry(token, identity.subject, identity.name,
                                                      identity.email))
        except (OSError, NbauthError) as exc:
            self.warn(f"nbauth could not remember the login in {self.store.where}: {exc}")
            return
        self.saved = token

    def on_change(self, credentials: Credentials) -> None:
        with self.lock:
            if credentials.valid:
                self.save(credentials)
            elif credentials.end_reason in ("logout", "refused") and self.saved is not None:
                self.forget()

    def forget(self) -> None:
        """Delete the entry if it still holds this login's token (not a newer login's)."""
        try:
            stored = self.store.load(self.key)
            if stored is not None and stored.refresh_token == self.saved:
                self.store.delete(self.key)
        except (OSError, NbauthError):
            pass  # an unsafe or unreadable store was never used for this login
        self.saved = None


def keep_remembered(credentials: Credentials, *, scope: str, store: TokenStore | None = None,
                    warn: Warn = _warn, saved: str | None = None) -> None:
    """Store the credentials' refresh token now and after every rotation; forget it at logout."""
    if not credentials.can_refresh:
        warn("Nothing to remember: the provider granted no refresh token (request the "
             "offline_access scope).")
        return
    key = StoreKey(credentials.issuer, credentials.client_id, credentials.audience, scope)
    keeper = _Keeper(key, store or default_store(), warn, saved)
    with keeper.lock:
        keeper.save(credentials)
    credentials.on_change(keeper.on_change)
    with _live_lock:
        _live[key.digest] = weakref.ref(credentials)
