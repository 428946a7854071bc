"""Remembered logins (opt-in): keep the refresh token so the next login needs no browser.

`resume_login()` looks up the stored refresh token for the same issuer, client, audience and
scopes (`tokenstore`), and redeems it at the token endpoint (a refresh grant; any ID token in
the answer is validated like a login's). `keep_remembered()` stores a login's refresh token
and keeps the stored copy current: refresh tokens rotate, and a stored rotated-out token would
be "reuse" at Auth0, which revokes the whole login. Kernels that resumed the same remembered
login share one token family: each refresh holds the login's cross-process lock and first
adopts a newer token another kernel stored, so no kernel sends a spent token. Logout, or the
provider refusing the token, removes the entry (and a logout ends the shared login for all).
On shared hosts (JupyterHub, Binder) remembering is off unless an administrator allows it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from .authorize import normalize_scope
from .credentials import Credentials, Identity, revoke_refresh_token
from .discovery import ProviderMetadata, discover, issuer_from_domain
from .errors import (
    InvalidGrantError,
    NbauthError,
    NbauthWarning,
    ProviderError,
    TokenStoreError,
)
from .flow import _jwks_for
from .http import ProviderClient
from .idtoken import ASYMMETRIC_ALGORITHMS, validate_id_token
from .tokens import Clock, TokenResponse, parse_token_response
from .tokenstore import RememberedEntry, StoreKey, TokenStore, default_store

__all__ = ["ALLOW_ON_SHARED_HOSTS_ENV", "forget_remembered", "forget_remembered_login",
           "keep_remembered", "remember_refusal", "resume_login", "shared_host"]

#: Set to 1 (e.g. in JupyterHub's Spawner.environment) to allow --remember on a shared host.
ALLOW_ON_SHARED_HOSTS_ENV = "NBAUTH_ALLOW_REMEMBER_ON_SHARED_HOSTS"

Warn = Callable[[str], None]


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


def _store_key(issuer: str, client_id: str, audience: str | None, scope: str) -> StoreKey:
    """The key of a login, with the scope as it was sent ("profile" is "openid profile")."""
    return StoreKey(issuer, client_id, audience, normalize_scope(scope))


def _redeem(store: TokenStore, key: StoreKey, token_endpoint: str, client: ProviderClient,
            warn: Warn, clock: Clock) -> tuple[RememberedEntry, TokenResponse, str | None] | None:
    """Load the entry and spend its refresh token; store the successor at once."""
    try:
        entry = _load(store, key, warn)
    except TokenStoreError as exc:
        warn(f"{exc} Logging in in the browser instead.")
        return None
    if entry is None:
        return None
    try:
        body = client.post_form(token_endpoint, {
            "grant_type": "refresh_token", "client_id": key.client_id,
            "refresh_token": entry.refresh_token}, what="remembered login")
        # Rotation: the stored token is spent now; store its successor before any check of the
        # rest of the answer can fail (as Credentials' own refresh does).
        successor = body.get("refresh_token")
        saved = _save_successor(store, key, entry, successor, warn) \
            if isinstance(successor, str) and successor else entry.refresh_token
        response = parse_token_response(body, now=clock())
    except InvalidGrantError:
        store.delete(key)
        warn("The provider no longer accepts the remembered login (it expired, was revoked, or "
             "was used elsewhere), so it was forgotten. Logging in in the browser.")
        return None
    return entry, response, saved


def _save_successor(store: TokenStore, key: StoreKey, entry: RememberedEntry, successor: str,
                    warn: Warn) -> str | None:
    """Store a rotated refresh token; None (and a warning) when the store cannot keep it."""
    try:
        store.save(key, replace(entry, refresh_token=successor))
    except (OSError, NbauthError) as exc:
        warn(f"The login was resumed but could not be remembered again in {store.where} "
             f"({exc}); the next one will need the browser.")
        return None
    return successor


def _load(store: TokenStore, key: StoreKey, warn: Warn) -> RememberedEntry | None:
    """store.load, with its warnings (a corrupt entry) passed to `warn`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry = store.load(key)
    for item in caught:
        warn(str(item.message))
    return entry


def resume_login(
    domain: str,
    client_id: str,
    *,
    audience: str | None,
    scope: str,
    store: TokenStore | None = None,
    client: ProviderClient | None = None,
    warn: Warn = _warn,
    clock: Clock = time.time,
) -> Credentials | None:
    """Log in with the remembered refresh token, or return None (then log in by browser).

    An unsafe store, a corrupt entry or a token the provider refuses gives None and a warning
    (the refused entry is deleted); an unreachable provider raises, keeping the entry.
    """
    client = client or ProviderClient()
    metadata = discover(issuer_from_domain(domain), client)
    key = _store_key(metadata.issuer, client_id, audience, scope)
    store = store or default_store()
    with store.lock(key):  # no other kernel spends the same token meanwhile
        redeemed = _redeem(store, key, metadata.token_endpoint, client, warn, clock)
    if redeemed is None:
        return None
    entry, response, saved = redeemed
    refresh_token = response.refresh_token or entry.refresh_token
    identity = Identity(subject=entry.subject, name=entry.name, email=entry.email)
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
        self.lock = threading.RLock()

    @contextlib.contextmanager
    def guard(self, credentials: Credentials) -> Iterator[None]:
        """Around each refresh: hold the login's cross-process lock, and adopt the stored
        refresh token if another kernel sharing this login has rotated it meanwhile; store
        the successor even when the rest of the provider's answer was refused."""
        with self.lock, self.store.lock(self.key):
            self.adopt(credentials)
            try:
                yield
            finally:
                if credentials.valid:
                    self.save(credentials)

    def adopt(self, credentials: Credentials) -> None:
        try:
            stored = _load(self.store, self.key, lambda message: None)
        except (OSError, NbauthError):
            return
        if stored is None or self.saved is None or not credentials.valid:
            return  # forgotten (a logout elsewhere), or never stored: keep our own token
        if stored.refresh_token in (self.saved, credentials._refresh_token):
            return
        if stored.subject != credentials.identity.subject:
            return  # another user's login replaced the entry: not ours to use
        # Ours was spent by the kernel that stored this one; sending ours again would be reuse.
        credentials._refresh_token = stored.refresh_token
        self.saved = stored.refresh_token

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
    key = _store_key(credentials.issuer, credentials.client_id, credentials.audience, scope)
    keeper = _Keeper(key, store or default_store(), warn, saved)
    with keeper.lock:
        keeper.save(credentials)
    credentials.on_change(keeper.on_change)
    credentials.guard_refresh(keeper.guard)


def forget_remembered(credentials: Credentials, *, scope: str,
                      store: TokenStore | None = None) -> str | None:
    """After a logout: revoke and delete a login remembered for the same settings, if any.

    (A login remembered in an earlier kernel is another token family than this one.)
    Returns what happened, in words, or None when nothing was remembered.
    """
    key = _store_key(credentials.issuer, credentials.client_id, credentials.audience, scope)
    token = _take(store or default_store(), key)
    if token is None:
        return None
    return f"A remembered login was forgotten too. {credentials.revoke_refresh_token(token)}"


def forget_remembered_login(domain: str, client_id: str, *, audience: str | None, scope: str,
                            any_scope: bool = False, store: TokenStore | None = None,
                            client: ProviderClient | None = None) -> str | None:
    """Revoke and delete the login remembered for these settings (a kernel that never logged
    in, e.g. after a restart); None when nothing was remembered. With `any_scope` (no scope
    was given), logins remembered for these settings with other scopes are forgotten too."""
    client = client or ProviderClient()
    store = store or default_store()
    issuer = issuer_from_domain(domain)
    try:
        metadata: ProviderMetadata | None = discover(issuer, client)
    except ProviderError as exc:  # forget it here all the same; say it was not revoked
        metadata, unreachable = None, exc
    key = _store_key(metadata.issuer if metadata else issuer, client_id, audience, scope)
    keys = [key]
    if any_scope:
        keys += [k for k in remembered_keys(store) if k != key and
                 (k.issuer, k.client_id, k.audience) == (key.issuer, key.client_id, key.audience)]
    tokens = [token for token in (_take(store, k) for k in keys) if token is not None]
    if not tokens:
        return None
    what = ("The remembered login was" if len(tokens) == 1
            else f"{len(tokens)} remembered logins (for different scopes) were")
    if metadata is None:
        return f"{what} forgotten here, but not revoked at the provider ({unreachable})."
    outcomes = [revoke_refresh_token(client, metadata.revocation_endpoint, client_id, token)
                for token in tokens]
    return f"{what} forgotten. " + " ".join(dict.fromkeys(outcomes))


def remembered_keys(store: TokenStore | None = None) -> list[StoreKey]:
    """What the logins remembered in `store` are for (a keyring cannot list them: [])."""
    return (store or default_store()).keys()


def _take(store: TokenStore, key: StoreKey) -> str | None:
    """Delete the entry for `key` and return its refresh token (None if there was none, or
    the store is unsafe: an unsafe store was never used, so nothing of ours is in it)."""
    try:
        with store.lock(key):
            entry = _load(store, key, lambda message: None)
            if entry is None:
                return None
            store.delete(key)
    except (OSError, NbauthError):
        return None
    return entry.refresh_token
