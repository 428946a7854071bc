"""Machine-to-machine logins: the client credentials grant (RFC 6749 §4.4) for confidential clients.

The client secret comes from the caller (Python), the environment (AUTH0_CLIENT_SECRET),
traitlets config, or a getpass prompt — never from a magic line, which IPython saves in its
history and the notebook keeps (S-65). Auth0 meters machine-to-machine tokens, so tokens are
cached in this process until they are STALE (S-66): asking again for the same provider, client,
audience and scopes returns the cached `MachineCredentials` without a request, and those renew
themselves by asking for a new token when the old one is about to expire.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

from .credentials import Credentials, Identity
from .discovery import ProviderMetadata, discover, issuer_from_domain
from .errors import (
    ConfigurationError,
    InvalidClientError,
    LoginRequiredError,
    hide_internal_frames,
)
from .http import ProviderClient
from .tokens import AccessToken, Clock, Secret, TokenResponse, parse_token_response

__all__ = ["SECRET_ENVIRONMENT", "MachineCredentials", "client_credentials", "resolve_secret"]

#: The environment variable that holds a confidential client's secret.
SECRET_ENVIRONMENT = "AUTH0_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret

_HOW_TO_SET_SECRET = (f"set {SECRET_ENVIRONMENT} in the kernel's environment, or "
                      "c.NbauthConfig.client_secret in a config file only you can read")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _in_kernel() -> bool:
    """ipykernel answers getpass through the notebook's own input box."""
    return type(getattr(getpass.getpass, "__self__", None)).__module__.startswith("ipykernel")


def _prompt(client_id: str) -> str:
    stdin = sys.stdin
    if not _in_kernel() and (stdin is None or not stdin.isatty()):
        raise ConfigurationError(
            f"No client secret for {client_id} and no terminal to ask for one: "
            f"{_HOW_TO_SET_SECRET}.")
    try:
        secret = getpass.getpass(f"Client secret for {client_id}: ")
    except Exception as exc:  # ipykernel: StdinNotImplementedError when the frontend has no stdin
        if isinstance(exc, (EOFError, OSError)) or type(exc).__name__ == \
                "StdinNotImplementedError":
            raise ConfigurationError(
                f"No client secret for {client_id}, and this frontend cannot ask for one: "
                f"{_HOW_TO_SET_SECRET}.") from None
        raise
    if not secret:
        raise ConfigurationError(f"No client secret was entered for {client_id}.")
    return secret


def resolve_secret(client_id: str, explicit: str | None = None, configured: str | None = None,
                   *, prompt: bool = True) -> str:
    """The secret from the caller, else AUTH0_CLIENT_SECRET, else config, else a prompt."""
    for secret in (explicit, os.environ.get(SECRET_ENVIRONMENT, "").strip(), configured):
        if secret:
            return secret
    if not prompt:
        raise ConfigurationError(f"No client secret for {client_id}: {_HOW_TO_SET_SECRET}.")
    return _prompt(client_id)


class MachineCredentials(Credentials):
    """Credentials of a confidential client: renewed by asking for a new token, no refresh token."""

    def __init__(self, response: TokenResponse, *, secret: str, scope: str | None,
                 post_secret: bool = False, **kwargs: Any) -> None:
        super().__init__(response, **kwargs)
        self._secret = Secret(secret)  # vars() shows "<secret>"
        self._request_scope = scope
        self._post_secret = post_secret

    def _renewable(self) -> bool:
        return True

    def _refresh_locked(self) -> None:
        if not self._valid:
            raise LoginRequiredError("These credentials were cleared. Log in again "
                                     "(re-run %auth0_login --client-credentials).")
        response = _request_token(self._client, self._token_endpoint, self.client_id,
                                  self._secret, self.audience, self._request_scope, self._clock,
                                  post_secret=self._post_secret)
        if response.scope:
            self._scope = response.scope
        self._access = AccessToken(response.access_token, response.expires_at, self._clock)
        self._lifetime = self._lifetime_of(response)
        self.refresh_count += 1
        self._notify()

    def logout(self) -> str:
        """Forget the token and the secret here (client credentials have nothing to revoke)."""
        with self._lock:
            self.clear(reason="logout")
            self._secret = Secret("")
        with _cache_lock:
            for key, (cached, _) in list(_cache.items()):
                if cached is self:
                    del _cache[key]
        return ("The machine-to-machine token was forgotten here. An access token already issued "
                "stays valid at the API until it expires.")

    def end_session_url(self) -> str | None:
        return None  # no browser session to end

    def _describe_refresh(self) -> str:
        return (f"automatic (a new token is requested near expiry; {self.refresh_count} so far)"
                if self.valid else "none")


def secret_in_body(metadata: ProviderMetadata) -> bool:
    """Whether to send the secret as client_secret_post: only when the provider lists that
    method and not client_secret_basic (the default when nothing is listed, RFC 8414 §2)."""
    methods = metadata.raw.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, str):  # a lone name, as discovery reads its other lists
        methods = [methods]
    return (isinstance(methods, list) and "client_secret_basic" not in methods
            and "client_secret_post" in methods)


def _request_token(client: ProviderClient, endpoint: str, client_id: str, secret: str,
                   audience: str | None, scope: str | None, clock: Clock, *,
                   post_secret: bool = False) -> TokenResponse:
    data = {"grant_type": "client_credentials"}
    if audience:
        data["audience"] = audience  # Auth0's name for the API
    if scope:
        data["scope"] = scope
    auth = None
    if post_secret:
        data.update(client_id=client_id, client_secret=secret)
    else:
        # client_secret_basic; RFC 6749 §2.3.1 form-encodes id and secret before base64 (S-35).
        auth = (quote(client_id, safe=""), quote(secret, safe=""))
    try:
        body = client.post_form(endpoint, data, what="client credentials token", auth=auth)
    except InvalidClientError as exc:  # the generic hint is about public (browser) clients
        raise InvalidClientError(
            exc.error, exc.description, exc.uri, status=exc.status,
            hint=f"Check the client id and its secret ({SECRET_ENVIRONMENT}): the application "
            "must be a confidential (Auth0: Machine to Machine) application authorized for "
            "this API") from None
    return parse_token_response(body, now=clock())


_cache: dict[tuple[str, str, str, str], tuple[MachineCredentials, bytes]] = {}
_cache_lock = threading.Lock()


@hide_internal_frames
def client_credentials(
    domain: str,
    client_id: str,
    *,
    audience: str | None = None,
    scope: str | None = None,
    client_secret: str | None = None,
    configured_secret: str | None = None,
    prompt: bool = True,
    client: ProviderClient | None = None,
    clock: Clock = time.time,
) -> MachineCredentials:
    """Get a token for a confidential client (machine to machine), cached until near expiry.

    The secret is `client_secret`, else $AUTH0_CLIENT_SECRET, else `configured_secret`, else
    (when `prompt` and a terminal or notebook can ask) a getpass prompt.
    """
    from .flow import checked_client

    client_id, audience = checked_client(domain, client_id, audience, scope)
    issuer = issuer_from_domain(domain)
    key = (issuer, client_id, audience or "", scope or "")
    explicit = client_secret or os.environ.get(SECRET_ENVIRONMENT, "").strip() or configured_secret
    with _cache_lock:
        found = _cache.get(key)
    if found is not None:
        cached, digest = found
        same_secret = explicit is None or hmac.compare_digest(digest, _digest(explicit))
        if same_secret and cached.valid:
            cached.token()  # renews it first when it is about to expire
            return cached
    secret = resolve_secret(client_id, explicit, None, prompt=prompt)
    client = client or ProviderClient()
    metadata = discover(issuer, client)
    post_secret = secret_in_body(metadata)
    response = _request_token(client, metadata.token_endpoint, client_id, secret, audience,
                              scope, clock, post_secret=post_secret)
    credentials = MachineCredentials(
        response, secret=secret, scope=scope, post_secret=post_secret,
        identity=Identity(subject=client_id, name=f"{client_id} (client credentials)"),
        issuer=metadata.issuer, client_id=client_id, token_endpoint=metadata.token_endpoint,
        audience=audience, requested_scope=scope, client=client, clock=clock,
    )
    with _cache_lock:
        _cache[key] = (credentials, _digest(secret))
    return credentials
