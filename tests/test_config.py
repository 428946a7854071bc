"""Settings precedence: traitlets config < environment < magic options."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from nbauth.config import LoginSettings, NbauthConfig, parse_ports
from nbauth.errors import ConfigurationError


def config(**values):
    c = Config()
    for key, value in values.items():
        setattr(c.NbauthConfig, key, value)
    return NbauthConfig(config=c)


def test_config_then_environment_then_options():
    cfg = config(domain="from-config.auth0.com", client_id="cfg-id", audience="cfg-aud")
    env = {"AUTH0_DOMAIN": "from-env.auth0.com", "AUTH0_CLIENT_ID": "env-id"}
    settings = LoginSettings.resolve(cfg, {"client_id": "opt-id"}, environ=env)
    assert settings.domain == "from-env.auth0.com"
    assert settings.client_id == "opt-id"
    assert settings.audience == "cfg-aud"


def test_defaults():
    settings = LoginSettings.resolve(config(domain="d.auth0.com", client_id="x"), {}, environ={})
    assert settings.scope == "openid profile email offline_access"
    assert settings.ports == (8765, 8766, 8767)
    assert settings.var == "access_token" and settings.session_var == "auth0_session"
    assert settings.timeout == 300 and settings.wait and settings.open_browser
    assert settings.audience is None


def test_ports_from_environment_and_options():
    cfg = config(domain="d.auth0.com", client_id="x")
    assert LoginSettings.resolve(cfg, {}, environ={"NBAUTH_PORTS": "9001, 9002"}).ports == (
        9001, 9002)
    assert LoginSettings.resolve(cfg, {"ports": (7000,)}, environ={"NBAUTH_PORTS": "9001"}
                                 ).ports == (7000,)


@pytest.mark.parametrize("missing,needle", [("domain", "AUTH0_DOMAIN"),
                                            ("client_id", "AUTH0_CLIENT_ID")])
def test_missing_setting_says_which_and_how(missing, needle):
    values = {"domain": "d.auth0.com", "client_id": "x"}
    del values[missing]
    with pytest.raises(ConfigurationError, match=needle) as info:
        LoginSettings.resolve(config(**values), {}, environ={})
    assert "--" + missing.replace("_", "-") in str(info.value)


@pytest.mark.parametrize("text,ports", [("8765", (8765,)), ("8765,8766", (8765, 8766)),
                                        (" 1, 2 ,", (1, 2))])
def test_parse_ports(text, ports):
    assert parse_ports(text) == ports


@pytest.mark.parametrize("text", ["abc", "70000", "", ",", "-1"])
def test_bad_ports_are_explained(text):
    with pytest.raises(ConfigurationError):
        parse_ports(text)


@pytest.mark.parametrize("name", ["var", "session_var"])
def test_variable_names_must_be_identifiers(name):
    with pytest.raises(ConfigurationError, match="not a valid Python name"):
        LoginSettings.resolve(config(domain="d", client_id="x"), {name: "my-token"}, environ={})


@pytest.mark.parametrize("overrides,needle", [
    ({"var": "class"}, "not a valid Python name"),
    ({"var": "1x"}, "not a valid Python name"),
    ({"var": "__builtins__"}, "IPython itself uses"),
    ({"session_var": "Out"}, "IPython itself uses"),
    ({"var": "x", "session_var": "x"}, "different names"),
])
def test_namespace_names_that_would_break_the_notebook_are_refused(overrides, needle):
    with pytest.raises(ConfigurationError, match=needle):
        LoginSettings.resolve(config(domain="d", client_id="x"), overrides, environ={})


def test_junk_ports_in_the_environment_name_the_variable():
    with pytest.raises(ConfigurationError, match="NBAUTH_PORTS"):
        LoginSettings.resolve(config(domain="d", client_id="x"), {},
                              environ={"NBAUTH_PORTS": "87a"})


@pytest.mark.parametrize("timeout", [0, -5, 86401])
def test_a_timeout_out_of_range_says_the_range_in_plain_words(timeout):
    with pytest.raises(ConfigurationError) as info:
        LoginSettings.resolve(config(domain="d.auth0.com", client_id="x"),
                              {"timeout": float(timeout)}, environ={})
    assert f"more than 0 and at most 86400 seconds, not {timeout}." in str(info.value)
