"""Domain → issuer, https enforcement, discovery document checks (S-43, S-94)."""

from __future__ import annotations

import pytest

from nbauth.discovery import ProviderMetadata, is_loopback_host, issuer_from_domain
from nbauth.errors import ConfigurationError, DiscoveryError, InsecureTransportError


@pytest.mark.parametrize("domain,issuer", [
    ("example.eu.auth0.com", "https://example.eu.auth0.com/"),
    ("  example.auth0.com ", "https://example.auth0.com/"),
    ("https://login.example.com/realms/x", "https://login.example.com/realms/x"),
    ("https://example.auth0.com/", "https://example.auth0.com/"),
    ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://[::1]:3000/", "http://[::1]:3000/"),
    ("http://127.8.9.10/", "http://127.8.9.10/"),
])
def test_domain_to_issuer(domain, issuer):
    assert issuer_from_domain(domain) == issuer


@pytest.mark.parametrize("domain", ["http://example.auth0.com", "http://10.0.0.1/",
                                    "http://localhost.evil.example/", "http://127.0.0.1.nip.io/"])
def test_plain_http_is_refused_off_loopback(domain):
    with pytest.raises(InsecureTransportError, match="https"):
        issuer_from_domain(domain)


@pytest.mark.parametrize("domain", ["", "   ", "example.com/path", "ftp://example.com/",
                                    "https://example.com/?x=1", "exa mple.com"])
def test_unusable_domains_are_explained(domain):
    with pytest.raises(ConfigurationError):
        issuer_from_domain(domain)


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("::1", True), ("[::1]", True),
                                       ("localhost", True), ("127.1.2.3", True),
                                       ("10.0.0.1", False), ("example.com", False)])
def test_loopback_hosts(host, loop):
    assert is_loopback_host(host) is loop


def doc(**overrides):
    issuer = "https://t.auth0.com/"
    base = {"issuer": issuer, "authorization_endpoint": issuer + "authorize",
            "token_endpoint": issuer + "oauth/token", "jwks_uri": issuer + ".well-known/jwks.json"}
    base.update(overrides)
    return base


def test_issuer_trailing_slash_typed_by_the_user_is_forgiven_then_kept_exactly():
    meta = ProviderMetadata.from_document(doc(), expected_issuer="https://t.auth0.com")
    assert meta.issuer == "https://t.auth0.com/"


def test_another_issuer_is_refused():
    with pytest.raises(DiscoveryError, match="another issuer"):
        ProviderMetadata.from_document(doc(issuer="https://evil.example/"),
                                       expected_issuer="https://t.auth0.com/")


@pytest.mark.parametrize("key", ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_missing_required_field_is_named(key):
    bad = doc()
    del bad[key]
    with pytest.raises(DiscoveryError, match=key):
        ProviderMetadata.from_document(bad, expected_issuer="https://t.auth0.com/")


def test_insecure_endpoint_in_metadata_is_refused():
    with pytest.raises(InsecureTransportError):
        ProviderMetadata.from_document(doc(token_endpoint="http://t.auth0.com/oauth/token"),
                                       expected_issuer="https://t.auth0.com/")


@pytest.mark.parametrize("value", ["S256", [1, 2], {"a": 1}])
def test_malformed_lists_are_refused(value):
    with pytest.raises(DiscoveryError):
        ProviderMetadata.from_document(doc(code_challenge_methods_supported=value),
                                       expected_issuer="https://t.auth0.com/")
