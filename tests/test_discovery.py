"""Domain → issuer, https enforcement, discovery document checks (S-43, S-94)."""

from __future__ import annotations

import pytest

from nbauth.discovery import (
    ProviderMetadata,
    is_loopback_host,
    issuer_from_domain,
    redact_url,
    require_secure_url,
)
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


@pytest.mark.parametrize("domain,issuer", [
    ("EXAMPLE.Auth0.com", "https://example.auth0.com/"),
    ("HTTPS://Example.auth0.com/", "https://example.auth0.com/"),
    ("http://LOCALHOST:3000/", "http://localhost:3000/"),
    ("HTTP://127.0.0.1:3000/", "http://127.0.0.1:3000/"),
    ("https://Login.Example.COM/realms/MyRealm", "https://login.example.com/realms/MyRealm"),
])
def test_uppercase_scheme_and_host_are_accepted_path_case_is_kept(domain, issuer):
    assert issuer_from_domain(domain) == issuer


def test_uppercase_domain_matches_the_lowercase_issuer_of_the_document():
    expected = issuer_from_domain("T.Auth0.COM")
    assert ProviderMetadata.from_document(doc(), expected_issuer=expected).issuer == (
        "https://t.auth0.com/")


def test_the_documents_issuer_is_still_compared_exactly():
    """Only what the user typed is normalised; a document naming another spelling is refused."""
    with pytest.raises(DiscoveryError, match="another issuer"):
        ProviderMetadata.from_document(doc(issuer="https://T.auth0.com/"),
                                       expected_issuer=issuer_from_domain("t.auth0.com"))


def test_one_trailing_slash_on_a_bare_domain_is_accepted():
    assert issuer_from_domain("example.auth0.com/") == "https://example.auth0.com/"
    with pytest.raises(ConfigurationError, match="not a host name"):
        issuer_from_domain("example.auth0.com//")


@pytest.mark.parametrize("domain,issuer", [
    ("https://tenant.auth0.com/.well-known/openid-configuration", "https://tenant.auth0.com/"),
    ("https://tenant.auth0.com/.well-known/openid-configuration/", "https://tenant.auth0.com/"),
    ("tenant.auth0.com/.well-known/openid-configuration", "https://tenant.auth0.com/"),
    ("HTTPS://Tenant.auth0.com/.well-known/openid-configuration", "https://tenant.auth0.com/"),
    ("https://login.example.com/realms/x/.well-known/openid-configuration",
     "https://login.example.com/realms/x"),
    ("http://127.0.0.1:3000/.well-known/openid-configuration", "http://127.0.0.1:3000/"),
])
def test_a_pasted_discovery_url_stands_for_its_issuer(domain, issuer):
    assert issuer_from_domain(domain) == issuer


def test_a_pasted_discovery_url_matches_the_documents_issuer():
    expected = issuer_from_domain("https://t.auth0.com/.well-known/openid-configuration")
    assert ProviderMetadata.from_document(doc(), expected_issuer=expected).issuer == (
        "https://t.auth0.com/")


@pytest.mark.parametrize("domain", [
    "alice:s3cret@idp.example", "alice:s3cret@idp.example/", "https://alice:s3cret@idp.example/",
    "HTTPS://alice:s3cret@IDP.example/", "https://alice:s3/cret@idp.example/",
    "http://alice:s3cret@10.0.0.1/", "https://alice:s3cret@idp.example/?x=1",
])
def test_user_info_is_refused_and_never_repeated(domain):
    with pytest.raises(ConfigurationError, match="user name or password") as info:
        issuer_from_domain(domain)
    assert "s3cret" not in str(info.value) and "alice" not in str(info.value)


@pytest.mark.parametrize("domain", ["https://example.com/#frag",
                                    "https://example.com/.well-known/openid-configuration?x=1",
                                    "HTTPS://Example.com/?x=1"])
def test_queries_and_fragments_are_still_refused(domain):
    with pytest.raises(ConfigurationError, match="no query or fragment"):
        issuer_from_domain(domain)


def test_an_invalid_port_is_named():
    with pytest.raises(ConfigurationError, match="invalid port"):
        issuer_from_domain("https://example.com:44x3/")


@pytest.mark.parametrize("domain", ["http://example.auth0.com", "http://10.0.0.1/",
                                    "http://localhost.evil.example/", "http://127.0.0.1.nip.io/",
                                    "HTTP://Example.auth0.com/",
                                    "http://example.auth0.com/.well-known/openid-configuration"])
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


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, 7])
def test_malformed_lists_are_refused(value):
    with pytest.raises(DiscoveryError):
        ProviderMetadata.from_document(doc(code_challenge_methods_supported=value),
                                       expected_issuer="https://t.auth0.com/")


@pytest.mark.parametrize("url,shown", [
    ("https://alice:hunter2@hub.example.org/", "https://***@hub.example.org/"),
    ("https://alice@hub.example.org:8443/x?y=@", "https://***@hub.example.org:8443/x?y=@"),
    ("https://a@b:c@hub.example.org/", "https://***@hub.example.org/"),
    ("alice:hunter2@hub.example.org/x", "***@hub.example.org/x"),
    ("https://hub.example.org/user/a@b/", "https://hub.example.org/user/a@b/"),
    ("not a url", "not a url"),
])
def test_user_info_is_redacted_in_messages(url, shown):
    assert redact_url(url) == shown


def test_a_document_url_with_user_info_is_not_repeated():
    with pytest.raises(InsecureTransportError) as info:
        require_secure_url("http://bob:hunter2@evil.example/token", what="provider's token")
    assert "hunter2" not in str(info.value) and "***@evil.example" in str(info.value)
    with pytest.raises(DiscoveryError) as info:
        ProviderMetadata.from_document(doc(issuer="https://bob:hunter2@evil.example/"),
                                       expected_issuer="https://t.auth0.com/")
    assert "hunter2" not in str(info.value)


def test_a_domain_that_is_not_a_provider_gives_a_discovery_error_naming_the_url(provider):
    """The demo API answers JSON errors (404 not_found): that is no OAuth refusal."""
    from urllib.parse import urlsplit

    import nbauth

    parts = urlsplit(provider.api_url)
    wrong = f"{parts.scheme}://{parts.netloc}/"
    with pytest.raises(DiscoveryError) as caught:
        nbauth.start_login(wrong, provider.client_id, port=0)
    message = str(caught.value)
    assert f"no OpenID Connect discovery document at {wrong}.well-known" in message
    assert "Check the domain" in message and "refused" not in message


@pytest.mark.parametrize("field,value,read", [
    # providers publish null or "" for what they do not have (Abblix/Oidc.Server #48,
    # GluuFederation/oxAuth #1823), or one name where a list belongs (node-solid-server #1599)
    ("code_challenge_methods_supported", None, ()),
    ("code_challenge_methods_supported", "S256", ("S256",)),
    ("id_token_signing_alg_values_supported", None, ("RS256",)),
    ("id_token_signing_alg_values_supported", "RS256", ("RS256",)),
    ("revocation_endpoint", "", None),
    ("revocation_endpoint", None, None),
    ("userinfo_endpoint", {"url": "https://t.auth0.com/userinfo"}, None),
    ("end_session_endpoint", "  ", None),
])
def test_null_empty_and_lone_values_in_discovery_are_read_as_providers_mean_them(
        field, value, read):
    metadata = ProviderMetadata.from_document(doc(**{field: value}),
                                              expected_issuer="https://t.auth0.com/")
    assert getattr(metadata, field) == read


def test_an_optional_endpoint_over_plain_http_is_still_refused():
    with pytest.raises(InsecureTransportError):
        ProviderMetadata.from_document(doc(revocation_endpoint="http://t.auth0.com/oauth/revoke"),
                                       expected_issuer="https://t.auth0.com/")


@pytest.mark.parametrize("path", ["authorize", "oauth/token", "u/login", "auth"])
def test_an_endpoint_pasted_as_the_domain_is_named_with_the_issuer_to_try(provider, path):
    import nbauth

    with pytest.raises(DiscoveryError) as caught:
        nbauth.start_login(provider.issuer + path, provider.client_id, port=0)
    message = str(caught.value)
    assert f"no OpenID Connect discovery document at {provider.issuer}{path}/.well-known" \
        in message
    assert f"try {provider.issuer}" in message and "endpoints, not its issuer" in message
