"""Logins for two APIs (audiences) side by side in one shell: own variables, widget, refresh
and logout each, against the real provider's two resource servers."""

from __future__ import annotations

import time

import pytest
import requests
from IPython.utils.capture import capture_output
from scripted_user import complete_login

pytestmark = pytest.mark.provider


def login(ip, magics, provider, audience, scope, var, session_var):
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --audience {audience} --port 0 --no-browser "
                          f"--no-wait --var {var} --session-var {session_var} "
                          f"--scope 'openid email offline_access {scope}'")
    complete_login(magics.logins[var].widget._url.value)
    magics.logins[var].pending.wait(timeout=30)
    deadline = time.monotonic() + 10
    while var not in ip.user_ns and time.monotonic() < deadline:
        time.sleep(0.05)
    return magics.logins[var]


def bearer(url, token):
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_two_audiences_coexist_with_their_own_widget_refresh_and_logout(ip, magics, provider):
    messages = login(ip, magics, provider, provider.audience, "read:messages", "messages_token",
                     "messages")
    reports = login(ip, magics, provider, provider.second_audience, "read:reports",
                    "reports_token", "reports")
    ns = ip.user_ns
    assert messages.widget is not reports.widget
    assert messages.credentials is not reports.credentials
    # each token is for its own API only
    assert bearer(provider.api_url, ns["messages_token"]).json()["scope"] == "read:messages"
    assert bearer(provider.reports_url, ns["reports_token"]).json()["scope"] == "read:reports"
    assert bearer(provider.reports_url, ns["messages_token"]).status_code == 401
    assert bearer(provider.api_url, ns["reports_token"]).status_code == 401
    assert ns["reports"].get(provider.reports_url, timeout=10).status_code == 200
    with capture_output() as out:
        ip.run_line_magic("auth0_token", "--var reports_token")
    assert provider.second_audience in out.stdout and provider.audience not in out.stdout

    # refreshing one rebinds only its variable
    old_messages, old_reports = str(ns["messages_token"]), str(ns["reports_token"])
    reports.credentials.refresh()
    assert str(ns["reports_token"]) != old_reports and str(ns["messages_token"]) == old_messages
    assert bearer(provider.reports_url, ns["reports_token"]).status_code == 200

    # logging out of one leaves the other working
    kept_refresh = reports.credentials._refresh_token
    with capture_output():
        ip.run_line_magic("auth0_logout", "--var messages_token")
    assert "messages_token" not in ns and "messages" not in ns
    assert "Logged out" in messages.widget.status_text
    assert "Logged in as" in reports.widget.status_text
    assert ns["reports"].get(provider.reports_url, timeout=10).status_code == 200
    assert reports.credentials.valid and reports.credentials._refresh_token == kept_refresh


def login_default_session(ip, magics, provider, var):
    """A login under `var` that keeps the default session variable (auth0_session)."""
    with capture_output() as out:
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --audience {provider.audience} --port 0 "
                          f"--no-browser --no-wait --var {var}")
    complete_login(magics.logins[var].widget._url.value)
    magics.logins[var].pending.wait(timeout=30)
    deadline = time.monotonic() + 10
    while magics.logins[var].credentials is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert magics.logins[var].credentials is not None
    return magics.logins[var], out.stderr


def test_logging_out_of_one_login_keeps_the_session_variable_another_login_took_over(
        ip, magics, provider):
    a, note_a = login_default_session(ip, magics, provider, "a_token")
    assert note_a == ""
    b, note_b = login_default_session(ip, magics, provider, "b_token")
    # b is about to take auth0_session from a: one line says so, and how to keep both
    assert "auth0_session" in note_b and "a_token" in note_b and "--session-var" in note_b
    assert len(note_b.strip().splitlines()) == 1
    ns = ip.user_ns
    assert ns["auth0_session"].credentials is b.credentials

    with capture_output() as out:
        ip.run_line_magic("auth0_logout", "--var a_token")
    assert "a_token" not in ns
    assert ns["auth0_session"].credentials is b.credentials  # b's session is still there
    assert ns["auth0_session"].get(provider.api_url, timeout=10).status_code == 200
    assert "`auth0_session` now holds something else" in out.stdout
    assert bearer(provider.api_url, ns["b_token"]).status_code == 200

    with capture_output():
        ip.run_line_magic("auth0_logout", "--var b_token")
    assert "b_token" not in ns and "auth0_session" not in ns


def test_logout_leaves_a_token_variable_the_user_reassigned(ip, magics, provider):
    login, _ = login_default_session(ip, magics, provider, "c_token")
    ip.run_cell("c_token = 'my own value'")
    login.credentials.refresh()  # a refresh does not overwrite it either
    assert ip.user_ns["c_token"] == "my own value"
    with capture_output():
        ip.run_line_magic("auth0_logout", "--var c_token")
    assert ip.user_ns.pop("c_token") == "my own value"
    assert "auth0_session" not in ip.user_ns  # that one was still this login's: removed


def test_no_note_when_a_newer_login_replaces_its_own_variable(ip, magics, provider):
    login_default_session(ip, magics, provider, "d_token")
    _, note = login_default_session(ip, magics, provider, "d_token")
    assert note == ""
