"""Token responses and the redacting token types (S-32, S-52, S-82)."""

from __future__ import annotations

import pickle

import pytest

from nbauth.errors import ProviderError
from nbauth.tokens import AccessToken, TokenState, parse_token_response, token_state

SECRET = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-secret-value"


def good(**overrides):
    body = {"access_token": SECRET, "token_type": "Bearer", "expires_in": 3600,
            "scope": "openid email", "refresh_token": "rt-secret", "id_token": "a.b.c"}
    body.update(overrides)
    return body


def test_good_response_is_parsed():
    response = parse_token_response(good(), now=1000.0)
    assert response.access_token == SECRET
    assert response.expires_at == 4600.0
    assert response.refresh_token == "rt-secret"
    assert SECRET not in repr(response) and "rt-secret" not in repr(response)


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer"])
def test_token_type_is_case_insensitive(token_type):
    assert parse_token_response(good(token_type=token_type), now=0).token_type == "Bearer"


@pytest.mark.parametrize("body,needle", [
    ({"token_type": "Bearer"}, "access_token"),
    (good(access_token=""), "access_token"),
    (good(access_token=12), "access_token"),
    (good(token_type="mac"), "Bearer"),
    (good(token_type=None), "Bearer"),
    (good(refresh_token=5), "refresh_token"),
    (good(id_token=[]), "id_token"),
])
def test_unusable_responses_raise_provider_error(body, needle):
    with pytest.raises(ProviderError, match=needle) as info:
        parse_token_response(body, now=0)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("raw,expected", [("3600", 3600.0), (" 60 ", 60.0), (None, None),
                                          ("soon", None), (True, None), (-5, None), ([1], None),
                                          (0, None), ("0", None)])
def test_expires_in_may_be_a_string_or_absent(raw, expected):
    response = parse_token_response(good(expires_in=raw), now=0)
    assert response.expires_at == expected


@pytest.mark.parametrize("raw,expected", [
    ("openid email", "openid email"),
    ("openid,profile,email", "openid profile email"),   # GitHub-style (oauthenticator #820)
    ("openid, email ", "openid email"),
    (["openid", "email"], "openid email"),
    ("", None), (None, None), (7, None),
])
def test_the_granted_scope_is_read_as_space_separated_scopes(raw, expected):
    assert parse_token_response(good(scope=raw), now=0).scope == expected


def test_an_error_answered_with_http_200_keeps_the_providers_words():
    from nbauth.errors import OAuthError

    body = {"error": "access_denied", "error_description": "Blocked by a rule"}
    with pytest.raises(OAuthError, match="Blocked by a rule") as info:
        parse_token_response(body, now=0)
    assert info.value.error == "access_denied"


def test_missing_id_token_when_required():
    body = good()
    del body["id_token"]
    with pytest.raises(ProviderError, match="id_token"):
        parse_token_response(body, now=0, require_id_token=True)


def test_token_state_walks_fresh_stale_expired():
    assert token_state(1000.0, now=0.0) is TokenState.FRESH
    assert token_state(1000.0, now=940.0) is TokenState.STALE
    assert token_state(1000.0, now=1000.0) is TokenState.EXPIRED
    assert token_state(None, now=1e12) is TokenState.FRESH


class TestAccessToken:
    def token(self):
        return AccessToken(SECRET, expires_at=3600.0, clock=lambda: 0.0)

    def test_usable_wherever_a_string_is(self):
        token = self.token()
        assert isinstance(token, str)
        assert f"Bearer {token}" == "Bearer " + SECRET
        assert "Bearer %s" % token == "Bearer " + SECRET
        assert str(token) == SECRET
        assert token == SECRET

    def test_display_paths_redact(self):
        token = self.token()
        for shown in (repr(token), token._repr_html_(), repr([token]), repr({"t": token})):
            assert SECRET not in shown
            assert "c2lnbmF0dXJl" not in shown
        assert "expires in 1h00m" in repr(token)

    def test_ipython_pretty_printer_redacts(self):
        from IPython.lib.pretty import pretty

        assert SECRET not in pretty(self.token())

    def test_pickling_is_refused_but_copies_work_like_str(self):
        import copy

        token = self.token()
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            with pytest.raises(TypeError):
                pickle.dumps(token, protocol=protocol)
        assert copy.copy(token) is token
        assert copy.deepcopy({"Authorization": token})["Authorization"] is token
