"""`nbauth.login` end to end against the real local provider (node oidc-provider on loopback).

A scripted person signs in through the provider's own HTML pages and the "browser" delivers the
redirect to nbauth's listener, exactly as a real browser would; nothing inside nbauth is mocked.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import nbauth
from nbauth.errors import (
    AccessDeniedError,
    LoginSupersededError,
    LoginTimeoutError,
    LoopbackBindError,
)

pytestmark = pytest.mark.provider


def call_api(info, token):
    return requests.get(info.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def listener_threads():
    return [t for t in threading.enumerate() if t.name.startswith("nbauth-loopback-")
            and t.name != "nbauth-loopback-close"]


def wait_until(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_login_then_call_the_api(provider, browser):
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                         audience=provider.audience, port=0, timeout=60, open_browser=person)
    person.join()
    assert not person.errors
    assert "Logged in" in person.pages[0] and "demo@example.com" in person.pages[0]
    response = call_api(provider, creds.access_token)
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "auth0|demo"
    assert creds.identity.email == "demo@example.com"
    assert creds.identity.name == "Demo User"
    assert creds.can_refresh  # offline_access is in the default scope
    assert "offline_access" in creds.scopes
    # the session sends the token too, and shows none of it
    session = creds.session()
    assert session.get(provider.api_url, timeout=10).status_code == 200
    assert creds.access_token not in repr(session) + repr(creds)
    assert wait_until(lambda: not listener_threads())


@pytest.mark.parametrize("form", ["uppercase scheme", "discovery URL", "uppercase discovery URL"])
def test_uppercase_and_pasted_discovery_url_domains_log_in(provider, browser, form):
    """What users type is normalised; the provider's issuer is still compared exactly."""
    well_known = provider.issuer + ".well-known/openid-configuration"
    domain = {"uppercase scheme": provider.issuer.upper(), "discovery URL": well_known,
              "uppercase discovery URL": well_known.replace("http://", "HTTP://")}[form]
    person = browser()
    creds = nbauth.login(domain=domain, client_id=provider.client_id,
                         audience=provider.audience, port=0, timeout=60, open_browser=person)
    person.join()
    assert not person.errors
    assert creds.issuer == provider.issuer
    assert call_api(provider, creds.access_token).status_code == 200


def test_the_link_shown_carries_no_state_and_redirects_to_the_authorize_url(provider):
    import requests as plain

    pending = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=30)
    try:
        assert pending.start_url.startswith(f"http://127.0.0.1:{pending.port}/start/")
        assert "state" not in pending.start_url
        hop = plain.get(pending.start_url, allow_redirects=False, timeout=10)
        assert hop.status_code == 303 and hop.headers["Location"] == pending.url
        assert hop.headers["Cache-Control"] == "no-store"
        assert hop.headers["Referrer-Policy"] == "no-referrer"
        wrong = pending.start_url[:-3] + "xyz"
        assert plain.get(wrong, allow_redirects=False, timeout=10).status_code == 404
    finally:
        pending.cancel()
    # once the login has ended the link leads nowhere
    with pytest.raises(plain.ConnectionError):
        plain.get(pending.start_url, allow_redirects=False, timeout=5)


def test_authorize_url_as_sent(provider, browser):
    person = browser()
    nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                 audience=provider.audience, port=0, open_browser=person, timeout=60)
    person.join()
    q = {k: v[0] for k, v in parse_qs(urlsplit(person.urls[0]).query).items()}
    assert urlsplit(person.urls[0]).path == "/authorize"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["redirect_uri"].startswith("http://127.0.0.1:")
    assert q["redirect_uri"].endswith("/callback")
    assert q["audience"] == provider.audience
    assert q["scope"] == "openid profile email offline_access"


@pytest.mark.parametrize("scope", [" openid  profile email ", "profile email"])
def test_scope_is_normalised_and_openid_always_requested(provider, browser, scope):
    """Stray spaces and a missing openid used to end in invalid_scope / an ID-token-less login."""
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id, scope=scope,
                         port=0, open_browser=person, timeout=60)
    person.join()
    assert not person.errors
    sent = {k: v[0] for k, v in parse_qs(urlsplit(person.urls[0]).query).items()}["scope"]
    assert sent == "openid profile email"
    assert creds.identity.email == "demo@example.com"  # the ID token was received and checked


def test_without_audience_the_token_is_opaque_and_the_api_refuses_it(provider, browser):
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id, port=0,
                         open_browser=person, timeout=60)
    person.join()
    assert call_api(provider, creds.access_token).status_code == 401


def test_wrong_and_missing_state_are_ignored_then_the_right_one_completes(provider, browser):
    person = browser()
    forged = []

    def open_browser(url):
        port = urlsplit(url).port  # the listener's own /start link
        for path in ("/callback?code=x", "/callback?code=x&state=wrong",
                     "/callback?error=access_denied", "/callback?error=access_denied&state=bad",
                     "/favicon.ico", "/callback"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            forged.append(conn.getresponse().status)
            conn.close()
        person(url)

    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                         audience=provider.audience, port=0, timeout=60, open_browser=open_browser)
    person.join()
    assert all(400 <= s < 500 for s in forged), forged
    assert call_api(provider, creds.access_token).status_code == 200


def test_access_denied_ends_the_login_with_a_clear_error(provider, browser):
    person = browser(decision="deny")
    with pytest.raises(AccessDeniedError, match="access_denied") as info:
        nbauth.login(domain=provider.issuer, client_id=provider.client_id, port=0, timeout=60,
                     open_browser=person)
    person.join()
    assert "approve" in str(info.value)
    assert "Login failed" in person.pages[0]
    assert wait_until(lambda: not listener_threads())


def test_an_unknown_audience_says_to_check_the_identifier_not_to_approve(provider, browser):
    person = browser()
    with pytest.raises(nbauth.OAuthError, match="invalid_target") as info:
        nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                     audience=provider.audience.rstrip("/"), port=0, timeout=60,
                     open_browser=person)
    person.join()
    assert "--audience" in str(info.value) and "trailing slash" in str(info.value)
    assert "approve" not in str(info.value)


def test_timeout_frees_the_port(provider):
    started = time.monotonic()
    with pytest.raises(LoginTimeoutError, match="--timeout"):
        nbauth.login(domain=provider.issuer, client_id=provider.client_id, port=0, timeout=1,
                     open_browser=False)
    assert time.monotonic() - started < 5
    assert wait_until(lambda: not listener_threads())


def test_port_in_use_fails_fast_and_no_browser_is_opened(provider):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    opened = []
    try:
        started = time.monotonic()
        with pytest.raises(LoopbackBindError) as info:
            nbauth.login(domain=provider.issuer, client_id=provider.client_id, port=port,
                         timeout=30, open_browser=opened.append)
        assert time.monotonic() - started < 2
    finally:
        blocker.close()
    assert opened == []
    assert f"http://127.0.0.1:{port}/callback" in str(info.value)


def test_a_second_login_supersedes_the_first_and_reuses_its_port(provider, browser):
    first = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    port = first.port
    second = nbauth.start_login(provider.issuer, provider.client_id, port=port, timeout=60)
    assert second.port == port
    with pytest.raises(LoginSupersededError):
        first.wait(timeout=5)
    person = browser()
    person(second.url)
    creds = second.wait(timeout=60)
    person.join()
    assert creds.identity.email == "demo@example.com"
    # the first login's URL no longer completes anything
    assert first.result() is None


def test_same_fixed_port_works_for_login_after_login(provider, browser):
    first = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    port = first.port
    for _ in range(3):
        pending = nbauth.start_login(provider.issuer, provider.client_id, port=port, timeout=60)
        person = browser()
        person(pending.url)
        assert pending.wait(timeout=60).identity.email == "demo@example.com"
        person.join()
    first.cancel()


def test_exact_port_client_with_a_registered_port(provider, browser):
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.exact_client_id,
                         port=list(provider.exact_ports), open_browser=person, timeout=60)
    person.join()
    assert creds.identity.subject == "auth0|demo"


def test_cancel_ends_wait_and_frees_the_port(provider):
    pending = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    port = pending.port
    threading.Timer(0.3, pending.cancel).start()
    with pytest.raises(nbauth.LoginCancelledError):
        pending.wait(timeout=10)
    socket.create_server(("127.0.0.1", port)).close()


def test_unreachable_provider_is_explained():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(nbauth.ProviderError, match="Could not connect"):
        nbauth.login(domain=f"http://127.0.0.1:{port}/", client_id="x", port=0,
                     open_browser=False, timeout=5)


def test_a_pasted_client_id_with_spaces_logs_in(provider, browser):
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=f" {provider.client_id}\n",
                         audience=f"{provider.audience} ", port=0, timeout=60,
                         open_browser=person)
    person.join()
    assert creds.client_id == provider.client_id and creds.audience == provider.audience
    creds.logout()


@pytest.mark.parametrize("kwargs,needle", [
    ({"domain": None}, "domain is empty"),
    ({"domain": b"x.auth0.com"}, "string"),
    ({"client_id": ""}, "client_id"),
    ({"client_id": "  \n"}, "client_id is empty"),
    ({"port": b"87"}, "port"),
    ({"port": [True]}, "port"),
    ({"port": 8765.0}, "port"),
    ({"port": [70000]}, "port"),
    ({"timeout": "5"}, "timeout"),
    ({"timeout": float("inf")}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"timeout": 0}, "timeout"),
    ({"scope": "openid " + "x" * 100_000}, "characters"),
    ({"domain": "https://alice:s3cret@idp.example/"}, "user name or password"),
])
def test_bad_inputs_are_named_and_nothing_listens(provider, kwargs, needle):
    args = {"domain": provider.issuer, "client_id": provider.client_id, "port": 0,
            "open_browser": False, "timeout": 5}
    args.update(kwargs)
    with pytest.raises(nbauth.ConfigurationError, match=needle) as info:
        nbauth.login(**args)
    assert "s3cret" not in str(info.value)
    assert not listener_threads()


def test_two_logins_started_at_once_leave_exactly_one_waiting(provider):
    for _ in range(5):
        results = []
        barrier = threading.Barrier(2)

        def begin(barrier=barrier, results=results):
            barrier.wait(timeout=10)
            results.append(nbauth.start_login(provider.issuer, provider.client_id, port=0,
                                              timeout=30))

        threads = [threading.Thread(target=begin) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert len(results) == 2
        assert wait_until(lambda results=results: sum(not p.done() for p in results) == 1)
        for p in results:
            p.cancel()
    assert wait_until(lambda: not listener_threads())


def test_logout_revokes_the_refresh_token_at_the_provider(provider, browser):
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                         audience=provider.audience, port=0, open_browser=person, timeout=60)
    person.join()
    refresh_token = creds._refresh_token
    outcome = creds.logout()
    assert "revoked at the provider" in outcome and "stays valid" in outcome
    assert not creds.valid
    answer = requests.post(provider.issuer + "oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": provider.client_id}, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert refresh_token not in outcome


def test_logout_clears_locally_when_the_provider_is_unreachable(provider, browser):
    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id, port=0,
                         open_browser=person, timeout=60)
    person.join()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/oauth/revoke"
    creds._revocation_endpoint = dead
    outcome = creds.logout()
    assert outcome.startswith("Warning") and "could not be revoked" in outcome
    assert not creds.valid and creds._refresh_token is None


def test_a_script_that_exits_right_after_login_still_sends_the_whole_page(provider):
    """login() returns once the login has its result; the browser's page must not be cut off
    when the script ends at once (the listener's request threads are daemons)."""
    import subprocess
    import sys

    from scripted_user import complete_login

    script = (
        "import sys, nbauth\n"
        f"nbauth.login(domain={provider.issuer!r}, client_id={provider.client_id!r}, port=0,\n"
        "             timeout=60, open_browser=lambda url: print(url, flush=True))\n"
        "sys.exit(0)\n"
    )
    for _ in range(5):  # the old race cut the page off in about one login in ten
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        try:
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            page = complete_login(url, timeout=30)
            assert "Logged in" in page and page.rstrip().endswith("</html>")
            assert process.wait(timeout=30) == 0
        finally:
            process.kill()
            process.wait(timeout=10)


def test_ctrl_c_in_a_script_frees_the_port_and_shows_no_threading_frames(provider):
    import signal
    import subprocess
    import sys

    script = (  # the port must be free while the script still runs: it binds it itself
        "import nbauth, socket, urllib.parse\n"
        "url = []\n"
        "try:\n"
        f"    nbauth.login(domain={provider.issuer!r}, client_id={provider.client_id!r},\n"
        "                 port=0, timeout=60,\n"
        "                 open_browser=lambda u: (url.append(u), print(u, flush=True)))\n"
        "except KeyboardInterrupt:\n"
        "    port = urllib.parse.urlsplit(url[0]).port\n"
        "    socket.create_server(('127.0.0.1', port)).close()\n"
        "    print('FREED', flush=True)\n"
        "    raise\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert stdout.strip() == "FREED", stderr  # bound again by the script after the Ctrl-C
    assert process.returncode != 0 and stderr.rstrip().endswith("KeyboardInterrupt")
    assert "threading.py" not in stderr and "During handling" not in stderr
