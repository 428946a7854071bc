"""The login widget's states and controls, driven in a real IPython shell against the real provider.

Buttons are clicked with `Button.click()` (what a frontend's comm message triggers); the browser
suite (tests/browser) clicks them in real JupyterLab and Notebook 7.
"""

from __future__ import annotations

import json
import time

import pytest
from IPython.utils.capture import capture_output
from scripted_user import complete_login

pytestmark = pytest.mark.provider


def start(ip, magics, provider, extra=""):
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --audience {provider.audience} --port 0 "
                          f"--no-browser --no-wait {extra}")
    return magics.logins["access_token"]


def wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predicate()


def visible(w):
    return w.layout.display != "none"


def test_pending_state_shows_link_url_and_cancel(ip, magics, provider):
    login = start(ip, magics, provider)
    w = login.widget
    assert "Log in to" in w._title.value
    assert 'target="_blank"' in w._link.value and ">Log in</a>" in w._link.value
    assert 'rel="noopener noreferrer"' in w._link.value
    assert w._url.value == login.pending.start_url
    assert "state=" not in w._url.value + w._link.value
    assert visible(w._cancel) and not visible(w._logout) and not visible(w._retry)
    assert "Waiting for you to log in" in w.status_text


def test_cancel_button_stops_the_login_and_offers_retry(ip, magics, provider):
    login = start(ip, magics, provider)
    pending = login.pending
    login.widget._cancel.click()
    wait_for(pending.done)
    w = login.widget
    assert "cancelled" in w.status_text.lower()
    assert w._url.value == "" and w._link.value == ""
    assert visible(w._retry) and not visible(w._cancel)
    # retry starts a fresh attempt with a new URL, which completes
    w._retry.click()
    assert login.pending is not pending and w._url.value
    complete_login(w._url.value)
    wait_for(lambda: "access_token" in ip.user_ns)
    assert "Logged in as" in w.status_text


def test_logged_in_state_shows_who_expiry_scopes_and_logout(ip, magics, provider):
    login = start(ip, magics, provider)
    complete_login(login.widget._url.value)
    wait_for(lambda: "Logged in as" in login.widget.status_text)
    w = login.widget
    assert "Demo User" in w.status_text and "demo@example.com" in w.status_text
    assert "expires in" in w.status_text and "offline_access" in w.status_text
    assert visible(w._logout) and not visible(w._cancel) and not visible(w._url)
    w._logout.click()
    assert "access_token" not in ip.user_ns and "auth0_session" not in ip.user_ns
    assert "Logged out" in w.status_text and visible(w._retry)


def test_denied_login_is_shown_in_words_with_retry(ip, magics, provider):
    login = start(ip, magics, provider)
    complete_login(login.widget._url.value, decision="deny")
    wait_for(login.pending.done)
    assert "access_denied" in login.widget.status_text
    assert "approve" in login.widget.status_text
    assert visible(login.widget._retry)


def test_rerunning_the_cell_supersedes_the_pending_login(ip, magics, provider):
    first = start(ip, magics, provider)
    first_pending = first.pending
    second = start(ip, magics, provider)
    wait_for(first_pending.done)
    assert "newer login" in first.widget.status_text
    assert first.widget._url.value == ""
    complete_login(second.widget._url.value)
    wait_for(lambda: "Logged in as" in second.widget.status_text)


def test_widget_state_holds_no_secret(ip, magics, provider):
    from ipywidgets import Widget
    from ipywidgets.embed import embed_data

    login = start(ip, magics, provider)
    request = login.pending._request
    pending_state = json.dumps(Widget.get_manager_state())
    for secret in (request.state, request.nonce, request.pkce.challenge):
        assert secret not in pending_state  # not even while the login waits
    complete_login(login.widget._url.value)
    wait_for(lambda: "access_token" in ip.user_ns)
    token = str(ip.user_ns["access_token"])
    refresh = login.credentials._refresh_token
    state = json.dumps(Widget.get_manager_state()) + json.dumps(embed_data(views=[login.widget]))
    for secret in (token, refresh, request.state, request.nonce, request.pkce.challenge):
        assert secret not in state
    assert "Logged in as" in state


def test_expiry_text_is_kept_up_to_date(ip, magics, provider):

    login = start(ip, magics, provider)
    complete_login(login.widget._url.value)
    wait_for(lambda: "Logged in as" in login.widget.status_text)
    creds = login.credentials
    creds._access.expires_at = time.time() + 125  # as if two minutes were left
    login.widget._tick()
    assert "expires in 2m" in login.widget.status_text


def test_a_newer_login_for_the_same_variable_retires_the_older_one(ip, magics, provider):
    first = start(ip, magics, provider)
    complete_login(first.widget._url.value)
    wait_for(lambda: first.credentials is not None)
    old_credentials = first.credentials
    old_token = str(ip.user_ns["access_token"])
    second = start(ip, magics, provider)
    assert str(ip.user_ns["access_token"]) == old_token  # still usable while the new one waits
    complete_login(second.widget._url.value)
    wait_for(lambda: second.credentials is not None)
    assert str(ip.user_ns["access_token"]) != old_token
    assert not old_credentials.valid
    assert "Replaced by a newer login" in first.widget.status_text


@pytest.fixture(scope="module")
def quick_device_provider():
    from devprovider import running_provider

    with running_provider(device_interval=1) as info:
        yield info


def test_device_login_shows_the_code_and_completes(ip, magics, quick_device_provider):
    from scripted_user import complete_device_login

    provider = quick_device_provider
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --audience {provider.audience} --device --no-wait")
    login = magics.logins["access_token"]
    device = login.pending
    w = login.widget
    assert device.user_code in w.status_text and device.verification_uri in w.status_text
    assert visible(w._link) and visible(w._cancel)
    assert device._device_code not in json.dumps(
        __import__("ipywidgets").Widget.get_manager_state())
    complete_device_login(device.verification_uri, user_code=device.user_code)
    wait_for(lambda: "access_token" in ip.user_ns, seconds=20)
    assert "Logged in as <b>Demo User" in w.status_text
    assert device.user_code not in w.status_text


def test_device_login_cancel_button(ip, magics, quick_device_provider):
    provider = quick_device_provider
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --device --no-wait")
    login = magics.logins["access_token"]
    login.widget._cancel.click()
    wait_for(lambda: "cancelled" in login.widget.status_text.lower())
    assert login.pending.done()
    assert visible(login.widget._retry)


def test_device_login_shows_a_qr_code_of_the_activation_link(ip, magics,
                                                              quick_device_provider):
    from urllib.parse import unquote

    provider = quick_device_provider
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --device --no-wait")
    login = magics.logins["access_token"]
    qr = login.widget._qr.value
    assert visible(login.widget._qr) and qr.startswith('<img src="data:image/svg+xml')
    assert "<svg" in unquote(qr)
    login.widget._cancel.click()
    wait_for(lambda: "cancelled" in login.widget.status_text.lower())
    assert login.widget._qr.value == "" and not visible(login.widget._qr)


def test_on_a_hub_without_a_public_url_the_login_falls_back_to_the_device_flow(
        ip, magics, quick_device_provider, monkeypatch, tmp_path):
    """A JupyterHub kernel whose hub address is unknown cannot use a callback: nbauth says why
    and shows a device code instead (S-94: the address never comes from request headers)."""
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    provider = quick_device_provider
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --no-wait")
    login = magics.logins["access_token"]
    assert "device code" in login.widget._title.value
    assert login.pending.user_code in login.widget.status_text
    assert "NBAUTH_PUBLIC_URL" in login.widget.status_text
    login.widget._cancel.click()


def test_asking_for_the_jupyter_route_without_the_extension_says_what_to_do(
        ip, magics, provider, monkeypatch, tmp_path):
    from nbauth.errors import ConfigurationError

    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    with capture_output(), pytest.raises(ConfigurationError, match="extension is not running"):
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --no-wait --callback jupyter "
                          "--public-url https://hub.example.org/")
    assert "extension is not running" in magics.logins["access_token"].widget.status_text


def test_when_the_fallback_device_flow_is_refused_the_message_says_why_it_was_tried(
        ip, magics, provider, monkeypatch, tmp_path):
    """A hub without a public address and a client without the device grant: the user is told
    both the reason for the fallback and the two ways out, not only the provider's refusal."""
    from nbauth.errors import ConfigurationError

    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    with capture_output(), pytest.raises(ConfigurationError) as info:
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.exact_client_id} --no-wait")
    message = str(info.value)
    assert "NBAUTH_PUBLIC_URL" in message and "Device Code grant" in message
    assert message in magics.logins["access_token"].widget.status_text.replace("&#x27;", "'")


def test_a_failed_background_renewal_is_shown_until_a_renewal_succeeds(ip, magics, provider):
    import socket

    login = start(ip, magics, provider)
    complete_login(login.widget._url.value)
    wait_for(lambda: "Logged in as" in login.widget.status_text)
    creds, w = login.credentials, login.widget
    endpoint = creds._token_endpoint
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        creds._token_endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}/oauth/token"
        creds.auto_refresh_backoff = 0.05
        creds._access.expires_at = time.time() + 30  # due for renewal now
        creds._schedule_auto_refresh()
        wait_for(lambda: creds.refresh_error is not None and creds._timer is None, 15)
    w._tick()
    assert "Could not renew the token yet" in w.status_text
    assert "Could not connect to the provider" in w.status_text
    assert str(creds.current_token) not in w.status_text
    creds._token_endpoint = endpoint
    creds.token()  # the next use renews it, and the widget says so
    assert creds.refresh_error is None and creds.next_refresh_at is not None
    assert "Could not renew" not in w.status_text and "Logged in as" in w.status_text
