"""The magics in a real IPython shell, against the real provider.

The scripted person copies the URL from the widget (as a person would with --no-browser).
"""

from __future__ import annotations

import pickle
import time

import pytest
import requests
from IPython.utils.capture import capture_output
from provider_log import refresh_refused, revocations, settled
from scripted_user import complete_login
from waiting import wait_for

pytestmark = pytest.mark.provider


def login_in_shell(ip, magics, provider, line="", var="access_token"):
    with capture_output() as captured:
        ip.run_line_magic(
            "auth0_login",
            f"--domain {provider.issuer} --client-id {provider.client_id} "
            f"--audience {provider.audience} --port 0 --no-browser --no-wait {line}")
    url = magics.logins[var].widget._url.value
    assert url.startswith("http://127.0.0.1:") and "/start/" in url  # no state in the widget
    page = complete_login(url)
    pending = magics.logins[var].pending
    if pending is not None:
        pending.wait(timeout=30)
    # (a re-run finds the variable already there: wait for this login's own)
    assert wait_for(lambda: magics.logins[var]._owns(var), 10)
    return page, captured


def test_help_lists_every_option(ip):
    doc = ip.find_line_magic("auth0_login").__doc__
    for option in ("--domain", "--client-id", "--audience", "--scope", "--port", "--var",
                   "--session-var", "--timeout", "--no-browser", "--no-wait"):
        assert option in doc


def test_login_puts_a_working_token_and_session_in_the_namespace(ip, magics, provider):
    import requests

    page, captured = login_in_shell(ip, magics, provider)
    assert "Logged in" in page
    token = ip.user_ns["access_token"]
    session = ip.user_ns["auth0_session"]
    assert requests.get(provider.api_url, headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 200
    assert session.get(provider.api_url, timeout=10).status_code == 200
    widget = magics.logins["access_token"].widget
    assert "Logged in as" in widget.status_text and "demo@example.com" in widget.status_text
    assert widget._url.value == "" and widget._link.value == ""
    # nothing that displays them shows the token
    with capture_output() as shown:
        ip.run_cell("access_token")
        ip.run_cell("auth0_session")
        ip.run_line_magic("whos", "")
        ip.run_line_magic("who", "")
    assert str(token) not in shown.stdout + captured.stdout + captured.stderr
    assert all(str(token) not in repr(v) for v in ip.user_ns["Out"].values())
    with pytest.raises(TypeError):
        pickle.dumps(token)
    with pytest.raises(TypeError):
        pickle.dumps(session)


def test_custom_variable_names(ip, magics, provider):
    login_in_shell(ip, magics, provider, "--var api_token --session-var api", var="api_token")
    assert ip.user_ns["api"].get(provider.api_url, timeout=10).status_code == 200
    assert "access_token" not in ip.user_ns


def test_logout_removes_the_variables_and_updates_the_widget(ip, magics, provider):
    login_in_shell(ip, magics, provider)
    widget = magics.logins["access_token"].widget
    session = ip.user_ns["auth0_session"]
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", "")
    assert "access_token" not in ip.user_ns and "auth0_session" not in ip.user_ns
    assert "Logged out" in widget.status_text
    assert "stays valid" in out.stdout
    from nbauth.errors import LoginRequiredError

    with pytest.raises(LoginRequiredError):
        session.get(provider.api_url, timeout=10)


def test_client_secret_on_the_magic_line_is_refused_without_echoing_it(ip):
    with capture_output() as out:
        result = ip.run_cell("%auth0_login --client-secret s3cr3t-value")
    assert result.error_in_exec is not None
    assert "AUTH0_CLIENT_SECRET" in str(result.error_in_exec)
    assert "s3cr3t-value" not in str(result.error_in_exec) + out.stdout + out.stderr


def test_missing_domain_names_the_setting(ip):
    result = ip.run_cell("%auth0_login --client-id abc")
    assert "AUTH0_DOMAIN" in str(result.error_in_exec)


def test_environment_beats_config_and_options_beat_environment(ip, magics, provider, monkeypatch):
    magics.config_defaults.domain = "https://config-domain.invalid/"
    magics.config_defaults.client_id = "wrong-client"
    try:
        monkeypatch.setenv("AUTH0_DOMAIN", provider.issuer)
        monkeypatch.setenv("AUTH0_CLIENT_ID", "also-wrong")
        with capture_output():
            ip.run_line_magic("auth0_login", f"--client-id {provider.client_id} --port 0 "
                              "--no-browser --no-wait")
        pending = magics.logins["access_token"].pending
        assert pending.issuer == provider.issuer and pending.client_id == provider.client_id
        pending.cancel()
    finally:
        magics.config_defaults.domain = ""
        magics.config_defaults.client_id = ""


def test_nbauth_errors_show_one_line(ip):
    with capture_output() as out:
        ip.run_cell("from nbauth.errors import LoginRequiredError\n"
                    "def f():\n    secret_local = 'TOPSECRET'\n    raise LoginRequiredError('log in again')\n"
                    "f()")
    assert "LoginRequiredError" in out.stdout + out.stderr
    assert "TOPSECRET" not in out.stdout + out.stderr


def test_quoted_options_work_as_in_a_shell(ip, magics, provider):
    login_in_shell(ip, magics, provider, "--scope 'openid email offline_access read:messages'")
    creds = magics.logins["access_token"].credentials
    assert set(creds.scopes) >= {"openid", "email", "read:messages"}
    assert "profile" not in creds.scopes


def test_unbalanced_quotes_are_a_usage_error(ip):
    result = ip.run_cell("%auth0_login --scope 'openid")
    assert "quotes" in str(result.error_in_exec)


def test_config_magic_reaches_the_settings_after_loading(ip, magics):
    ip.run_line_magic("config", "NbauthConfig.timeout = 42.0")
    try:
        assert magics.config_defaults.timeout == 42.0
    finally:
        ip.run_line_magic("config", "NbauthConfig.timeout = 300.0")


def test_token_magic_describes_the_login_without_the_token(ip, magics, provider):
    login_in_shell(ip, magics, provider)
    token = str(ip.user_ns["access_token"])
    refresh = magics.logins["access_token"].credentials._refresh_token
    with capture_output() as out:
        ip.run_line_magic("auth0_token", "")
    text = out.stdout
    for expected in ("Demo User", "auth0|demo", provider.audience, "offline_access",
                     "expires in", "automatic"):
        assert expected in text
    assert token not in text and refresh not in text
    with capture_output() as out:
        ip.run_line_magic("auth0_token", "--var nothing_here")
    assert "No login is held under `nothing_here`" in out.stdout


def test_unquoted_scopes_work_like_quoted_ones(ip, magics, provider):
    login_in_shell(ip, magics, provider, "--scope openid email offline_access read:messages")
    creds = magics.logins["access_token"].credentials
    assert set(creds.scopes) >= {"openid", "email", "read:messages"}
    assert "profile" not in creds.scopes


@pytest.mark.parametrize("ports", ["8765,8766", "8765, 8766", "8765 8766", "'8765, 8766'"])
def test_port_lists_are_read_as_people_type_them(magics, ports):
    from nbauth.magics import parse_line

    args = parse_line(magics.auth0_login, f"--domain example.auth0.com --client-id abc "
                                          f"--port {ports}")
    assert magics._settings(args).ports == (8765, 8766)


def test_a_trailing_comment_is_ignored(ip, magics, provider):
    login_in_shell(ip, magics, provider, "# log in to the demo API")
    assert magics.logins["access_token"].credentials.valid


@pytest.mark.parametrize("line,kept", [
    ("--audience https://api.example.com/#v2 # note", "--audience https://api.example.com/#v2 "),
    ("--login-hint 'a #1 user' # note", "--login-hint 'a #1 user' "),
    ('--prompt "login"#x', '--prompt "login"#x'),
    ("# all comment", ""),
])
def test_only_a_hash_that_starts_a_word_outside_quotes_starts_a_comment(line, kept):
    from nbauth.magics import strip_comment

    assert strip_comment(line) == kept


@pytest.mark.parametrize("line", [
    "%auth0_login --client-credentials --client-id m2m s3cr3t-value",
    "%auth0_login --client-credentials --client-id m2m --audience x s3cr3t-value --bogus",
    "%auth0_login --param client_secret=s3cr3t-value",
    "%auth0_login --client-id m2m --param client_assertion=s3cr3t-value",
])
def test_a_secret_typed_on_the_line_is_never_repeated(ip, line):
    with capture_output() as out:
        result = ip.run_cell(line)
    error = str(result.error_in_exec)
    assert result.error_in_exec is not None
    assert "AUTH0_CLIENT_SECRET" in error
    assert "s3cr3t-value" not in error + out.stdout + out.stderr


def test_waiting_widget_says_what_to_check_when_the_provider_shows_an_error_page(
        ip, magics, provider):
    """A wrong client id never comes back to the listener (the provider may not redirect to an
    unverified callback), so the waiting line itself names what to check."""
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id nbauth-dmeo "
                          "--port 0 --no-browser --no-wait")
    login = magics.logins["access_token"]
    page = requests.get(login.widget._url.value, timeout=10)
    assert "client" in page.text.lower() and "invalid" in page.text.lower()  # the provider's own
    status = login.widget.status_text
    assert "Waiting for you to log in" in status
    assert "check the client id" in status and login.pending.redirect_uri in status
    login.cancel()


def test_a_failed_rerun_keeps_the_earlier_login_and_logout_ends_it(ip, magics, provider):
    login_in_shell(ip, magics, provider)
    earlier = magics.logins["access_token"].credentials
    refresh_token = earlier._refresh_token
    with capture_output():
        ip.run_line_magic(
            "auth0_login", f"--domain {provider.issuer} --client-id {provider.client_id} "
            f"--audience {provider.audience} --port 0 --no-browser --no-wait")
    rerun = magics.logins["access_token"]
    complete_login(rerun.widget._url.value, decision="deny")
    deadline = time.monotonic() + 10
    while "denied" not in rerun.widget.status_text.lower() and time.monotonic() < deadline:
        time.sleep(0.05)
    status = rerun.widget.status_text
    assert "earlier login as Demo User" in status and "still holds access_token" in status
    assert rerun.widget._logout.layout.display != "none"  # Log out is offered
    assert requests.get(provider.api_url, timeout=10, headers={
        "Authorization": f"Bearer {ip.user_ns['access_token']}"}).status_code == 200
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", "")
    assert "revoked at the provider" in out.stdout
    assert "access_token" not in ip.user_ns and "auth0_session" not in ip.user_ns
    answer = requests.post(provider.issuer + "oauth/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": provider.client_id})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def _failed_rerun(ip, provider):
    """Re-run the login cell with nobody signing in (it times out after 1 s)."""
    with capture_output():
        result = ip.run_cell(
            f"%auth0_login --domain {provider.issuer} --client-id {provider.client_id} "
            f"--audience {provider.audience} --port 0 --no-browser --timeout 1")
    assert type(result.error_in_exec).__name__ == "LoginTimeoutError"


def test_after_several_failed_reruns_the_earlier_login_is_still_described_and_logged_out(
        ip, magics, provider):
    login_in_shell(ip, magics, provider)
    creds = magics.logins["access_token"].credentials
    refresh_token = creds._refresh_token
    for _ in range(2):
        _failed_rerun(ip, provider)
    with capture_output() as out:
        ip.run_line_magic("auth0_token", "")
    assert "Demo User" in out.stdout  # not "No login is held"
    assert ip.user_ns["auth0_session"].get(provider.api_url, timeout=10).status_code == 200
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", "")
    assert "revoked at the provider" in out.stdout
    assert "access_token" not in ip.user_ns and "auth0_session" not in ip.user_ns
    assert refresh_refused(provider, refresh_token)
    assert not creds.valid and creds.next_refresh_at is None  # its background timer is gone


def test_a_login_replaced_after_a_failed_rerun_is_ended_and_revoked(ip, magics, provider):
    login_in_shell(ip, magics, provider)
    first = magics.logins["access_token"].credentials
    refresh_token = first._refresh_token
    _failed_rerun(ip, provider)
    before = settled(lambda: revocations(provider))
    login_in_shell(ip, magics, provider)  # the third run succeeds and takes the variables
    assert wait_for(lambda: not first.valid, 10)  # no longer refreshing in the background
    # revoked in the background: seen at the provider, then probed once (a probe of a live
    # token would spend it, and a second probe would then pass without any revocation)
    assert wait_for(lambda: revocations(provider) > before, 10)
    assert refresh_refused(provider, refresh_token)
    assert requests.get(provider.api_url, timeout=10, headers={
        "Authorization": f"Bearer {ip.user_ns['access_token']}"}).status_code == 200


def test_a_failed_device_rerun_says_the_earlier_login_still_holds_the_variable(
        ip, magics, provider):
    login_in_shell(ip, magics, provider)
    with capture_output():
        result = ip.run_cell(f"%auth0_login --device --timeout 2 --domain {provider.issuer} "
                             f"--client-id {provider.client_id}")
    assert type(result.error_in_exec).__name__ == "LoginTimeoutError"
    status = magics.logins["access_token"].widget.status_text
    assert "within 2 s" in status and "earlier login as Demo User" in status
    assert "still holds access_token" in status


def test_in_a_terminal_the_outcome_is_printed_once(ip, magics, provider):
    """A terminal prints every display update as a new line: only what to do is published
    (the link, the device code); the magic prints the outcome itself."""
    def published(captured):
        return " ".join(str(o.data.get("text/plain", "")) for o in captured.outputs)

    _, login = login_in_shell(ip, magics, provider)
    assert "open http://127.0.0.1:" in published(login)  # what to do: published
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", "")
    assert out.stdout.count("Logged out.") == 1 and "Logged out" not in published(out)


def test_auth0_token_says_when_the_provider_ended_the_login(ip, magics, provider):
    """Another kernel sharing a remembered login logged out: the refresh token is revoked."""
    from nbauth.errors import LoginRequiredError

    login_in_shell(ip, magics, provider)
    creds = magics.logins["access_token"].credentials
    requests.post(provider.issuer + "oauth/revoke", timeout=10, data={
        "token": str(creds._refresh_token), "client_id": provider.client_id})
    with pytest.raises(LoginRequiredError):
        creds.refresh()
    with capture_output() as out:
        ip.run_line_magic("auth0_token", "")
    assert "has ended: the provider no longer accepts its refresh token" in out.stdout
    assert "%auth0_login" in out.stdout


def test_a_scope_the_provider_did_not_grant_is_named_after_the_login(ip, magics, provider):
    def report(scope):
        login_in_shell(ip, magics, provider, f"--scope {scope}")
        login = magics.logins["access_token"]
        with capture_output() as out:
            magics._report(login, login.credentials)
        return out.stdout

    assert "Note:" not in report("openid email offline_access")  # all of it was granted
    assert "Note: The provider did not grant write:everything." in report(
        "openid email offline_access write:everything")
