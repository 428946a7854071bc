"""Logins for two APIs (audiences) side by side in one shell: own variables, widget, refresh
and logout each, against the real provider's two resource servers."""

from __future__ import annotations

import time

import pytest
import requests
from IPython.utils.capture import capture_output
from scripted_user import complete_login

pytestmark = pytest.mark.provider


@pytest.fixture
def magics(ip):
    m = ip.magics_manager.registry["AuthMagics"]
    yield m
    for var in list(m.logins):
        with capture_output():
            ip.run_line_magic("auth0_logout", f"--var {var}")


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
