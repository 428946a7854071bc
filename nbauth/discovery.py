"""Provider metadata from OpenID Connect Discovery, and Auth0 domain → issuer.

https://openid.net/specs/openid-connect-discovery-1_0.html — the issuer in the document must be
the one discovery was asked for (§4.3), and is then compared exactly, never normalised (Auth0's
issuer ends in "/", and its ID tokens' iss does too).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .errors import (
    ConfigurationError,
    DiscoveryError,
    InsecureTransportError,
    OAuthError,
    ProviderError,
)

if TYPE_CHECKING:  # the client is passed in: discovery itself needs no HTTP library
    from .http import ProviderClient

log = logging.getLogger(__name__)

__all__ = [
    "ProviderMetadata",
    "clear_metadata_cache",
    "discover",
    "is_loopback_host",
    "issuer_from_domain",
    "redact_url",
    "require_secure_url",
]

WELL_KNOWN = "/.well-known/openid-configuration"


def is_loopback_host(host: str) -> bool:
    """True for localhost and for IP literals in 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """`url` with any user-info part (``user:password@``) replaced by ``***@``, for messages.

    The authority runs from ``scheme://`` (or the start, for a bare host) to the first ``/``,
    ``?`` or ``#`` (RFC 3986 §3.2); its user info ends at the last ``@`` in it.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" not in authority:
        return url
    return f"{scheme}{sep}***@{authority.rpartition('@')[2]}{rest[end:]}"


def require_secure_url(url: str, *, what: str) -> str:
    """Return `url` if it is https, or http on a loopback host; raise otherwise (RFC 9700 §2.6)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return url
    if parts.scheme == "http":
        raise InsecureTransportError(
            f"The {what} {redact_url(url)!r} uses plain http. Use https (plain http is allowed "
            "only for 127.0.0.1, ::1 and localhost)."
        )
    raise ConfigurationError(f"The {what} {redact_url(url)!r} is not an http(s) URL.")


_DOMAIN_HELP = "Pass the tenant domain (example.eu.auth0.com) or the full issuer URL (https://…)."


def issuer_from_domain(domain: str) -> str:
    """Turn what a user typed as the domain into the issuer URL to discover.

    ``example.eu.auth0.com`` (or ``example.eu.auth0.com/``) → ``https://example.eu.auth0.com/``
    (Auth0's issuer form); a full URL keeps its path as written (its trailing slash is settled
    by discovery). Scheme and host are case-insensitive (RFC 3986 §3.1, §3.2.2), so they are
    written in lower case, as providers write their issuer; a pasted discovery URL
    (``…/.well-known/openid-configuration``) stands for its issuer (OIDC Discovery §4).
    Only what the user typed is normalised: the document's issuer is compared exactly.
    """
    if not isinstance(domain, str):
        raise ConfigurationError(f"The domain must be a string, not {type(domain).__name__}.")
    text = domain.strip()
    if any(not ch.isprintable() or ch.isspace() for ch in text):
        raise ConfigurationError(
            f"The domain contains spaces or control characters. {_DOMAIN_HELP}"
        )
    if not text:
        raise ConfigurationError(
            "The domain is empty. Pass --domain (e.g. example.eu.auth0.com) or set AUTH0_DOMAIN."
        )
    if "@" in text:  # user:password@host — never repeated, since it may hold a password
        raise ConfigurationError(
            "The issuer URL must not contain a user name or password (or any '@'); pass only "
            "the tenant domain or https://host/…"
        )
    if "://" not in text:
        if text.endswith(WELL_KNOWN):
            text = text[: -len(WELL_KNOWN)]
        elif text.endswith("/"):
            text = text[:-1]
        if not text or "/" in text or "?" in text or "#" in text:
            raise ConfigurationError(f"The domain {domain.strip()!r} is not a host name. "
                                     f"{_DOMAIN_HELP}")
        text = f"https://{text}/"
    parts = urlsplit(text)
    if parts.query or parts.fragment or not parts.hostname:
        raise ConfigurationError(
            f"The issuer URL {domain.strip()!r} must have a host and no query or fragment."
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ConfigurationError(
            f"The issuer URL {domain.strip()!r} has an invalid port. {_DOMAIN_HELP}"
        ) from None
    path = parts.path
    for suffix in (WELL_KNOWN, WELL_KNOWN + "/"):
        if path.endswith(suffix):
            path = path[: -len(suffix)] or "/"
            break
    text = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))
    return require_secure_url(text, what="provider URL")


def _optional_str(doc: dict[str, Any], key: str) -> str | None:
    """An optional endpoint; null, "" or a value of the wrong type count as not offered
    (providers publish all three for endpoints they do not have)."""
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        if value not in (None, ""):
            log.info("nbauth: ignoring the discovery document's unusable %r", key)
        return None
    return value.strip()


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise DiscoveryError(
            f"The provider's discovery document has no usable {key!r}. Check the domain: "
            "it must be an OpenID Connect provider."
        )
    return value


def _str_list(doc: dict[str, Any], key: str, default: list[str]) -> tuple[str, ...]:
    """A list of names; null counts as absent, and a lone name as a list of one."""
    value = doc.get(key)
    if value is None:
        value = default
    elif isinstance(value, str) and value.strip():
        value = [value.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DiscoveryError(f"The provider's discovery document has a malformed {key!r}.")
    return tuple(value)


@dataclass(frozen=True)
class ProviderMetadata:
    """The endpoints and capabilities nbauth uses, from the discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    revocation_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    end_session_endpoint: str | None = None
    code_challenge_methods_supported: tuple[str, ...] = ()
    id_token_signing_alg_values_supported: tuple[str, ...] = ("RS256",)
    authorization_response_iss_parameter_supported: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_document(cls, doc: dict[str, Any], *, expected_issuer: str) -> ProviderMetadata:
        """Validate a discovery document fetched for `expected_issuer`."""
        issuer = require_secure_url(_str(doc, "issuer"), what="provider's issuer")
        # §4.3: issuer MUST be identical to the URL used for discovery. Only the trailing slash
        # of what the *user typed* is forgiven; the document's issuer is then used exactly.
        if issuer not in (expected_issuer, expected_issuer.rstrip("/") + "/",
                          expected_issuer.rstrip("/")):
            raise DiscoveryError(
                f"The discovery document at {redact_url(expected_issuer.rstrip('/'))}"
                f"{WELL_KNOWN} names another issuer ({redact_url(issuer)!r}). Use that issuer "
                "as the domain if you trust it."
            )
        endpoints = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            endpoints[key] = require_secure_url(_str(doc, key), what=f"provider's {key}")
        optional = {}
        for key in ("userinfo_endpoint", "revocation_endpoint",
                    "device_authorization_endpoint", "end_session_endpoint"):
            url = _optional_str(doc, key)
            optional[key] = require_secure_url(url, what=f"provider's {key}") if url else None
        algs = _str_list(doc, "id_token_signing_alg_values_supported", ["RS256"])
        return cls(
            issuer=issuer,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            code_challenge_methods_supported=_str_list(doc, "code_challenge_methods_supported", []),
            id_token_signing_alg_values_supported=algs,
            authorization_response_iss_parameter_supported=(
                doc.get("authorization_response_iss_parameter_supported") is True
            ),
            raw=dict(doc),
            **optional,
        )


_cache: dict[str, ProviderMetadata] = {}
_cache_lock = threading.Lock()


def discover(issuer: str, client: ProviderClient) -> ProviderMetadata:
    """Fetch (once per process) and validate the provider metadata for `issuer`."""
    with _cache_lock:
        cached = _cache.get(issuer)
    if cached is not None:
        return cached
    url = issuer.rstrip("/") + WELL_KNOWN
    try:
        doc = client.get_json(url, what="discovery")
    except OAuthError as exc:  # an OAuth error code means nothing for a metadata document
        raise DiscoveryError(
            f"There is no OpenID Connect discovery document at {redact_url(url)} (HTTP "
            f"{exc.status or '?'}, {exc.error}). Check the domain: {_DOMAIN_HELP}"
            f"{_endpoint_hint(issuer)}",
            status=exc.status,
        ) from None
    except DiscoveryError:
        raise
    except ProviderError as exc:
        if exc.status not in (400, 401, 403, 404, 405, 410):
            raise
        raise DiscoveryError(
            f"There is no OpenID Connect discovery document at {redact_url(url)} (HTTP "
            f"{exc.status}). Check the domain: {_DOMAIN_HELP}{_endpoint_hint(issuer)}",
            status=exc.status,
        ) from None
    metadata = ProviderMetadata.from_document(doc, expected_issuer=issuer)
    with _cache_lock:
        _cache[issuer] = metadata
    return metadata


#: Paths of a provider's endpoints and pages, pasted as the domain instead of the issuer.
_ENDPOINT_PATHS = sorted((
    "/authorize", "/oauth/token", "/oauth/revoke", "/oauth/device/code", "/userinfo",
    "/u/login", "/login", "/activate", "/.well-known/jwks.json", "/token", "/auth",
    "/protocol/openid-connect/auth", "/protocol/openid-connect/token", "/v1/authorize",
    "/v1/token",
), key=len, reverse=True)  # the longest first: ".../protocol/openid-connect/auth" is not "/auth"


def _endpoint_hint(issuer: str) -> str:
    """When the domain's path is one of the provider's endpoints: the issuer to try."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    for endpoint in _ENDPOINT_PATHS:
        if path.lower().endswith(endpoint):
            base = urlunsplit((parts.scheme, parts.netloc, path[: -len(endpoint)] + "/", "", ""))
            return (f" {redact_url(issuer)} looks like one of the provider's endpoints, not its "
                    f"issuer: try {redact_url(base)}")
    return ""


def clear_metadata_cache() -> None:
    """Forget every discovered provider (the next login fetches discovery again)."""
    with _cache_lock:
        _cache.clear()
