"""nbauth on a real JupyterHub: one hub-wide callback URL, two users logging in at the same time.

The hub runs on loopback with configurable-http-proxy, DummyAuthenticator and
SimpleLocalProcessSpawner, configured as README tells admins to (nbauth's user_redirect_hook);
each user's server loads nbauth's extension from the installed drop-in; the kernels are started
through the users' own servers. "Browsers" are requests sessions logged in to the hub; the real
provider knows exactly the redirect URIs an admin registers: the hub-wide
`{hub}/hub/user-redirect/nbauth/callback` for default servers, and a named server's own
`{hub}/user/NAME/SERVER/nbauth/callback`.

Hubs started here: the main one (hook, NBAUTH_PUBLIC_URL, named servers allowed), one under
`base_url = '/jhub/'` that only sets `c.JupyterHub.public_url`, and one without the hook (what
happens to codes then).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from devprovider import ProviderInfo, running_provider
from hubs import (
    NBAUTH_HUB_CONFIG,
    Hub,
    api_call_cell,
    login_secrets,
    running_hub,
    start_login_cell,
)
from scripted_user import complete_login

pytestmark = [
    pytest.mark.hub,
    pytest.mark.provider,
]

USERS = {"alice": "alice@example.com", "bob": "bob@example.com"}
NAMED = "gpu"  # Alice's named server
ENVIRONMENT = {"NBAUTH_PUBLIC_URL": "{hub_url}", "BROWSER": "true"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub"), environment=ENVIRONMENT,
                     extra_config=NBAUTH_HUB_CONFIG
                     + "c.JupyterHub.allow_named_servers = True\n") as hub:
        for user in USERS:
            hub.start_server(user)
        hub.share("alice", with_user="bob")  # JupyterHub sharing: Bob may use Alice's server
        yield hub


@pytest.fixture(scope="module")
def provider(hub: Hub) -> Iterator[ProviderInfo]:
    with running_provider(redirect_uris=[f"{hub.url}hub/user-redirect/nbauth/callback",
                                         f"{hub.url}user/alice/{NAMED}/nbauth/callback"]) as info:
        yield info


def sign_in_together(logins: dict[str, tuple[str, requests.Session]]
                         ) -> tuple[dict[str, str], dict[str, str]]:
    """Each user (user → (start link, their browser)) signs in at the provider at the same
    time; the authorization response is captured, then delivered by that user's browser.
    Returns the callback URLs and the pages the browsers landed on."""
    callbacks: dict[str, str] = {}
    pages: dict[str, str] = {}
    errors: list[BaseException] = []

    def sign_in(user: str) -> None:
        start, browser = logins[user]
        try:
            callbacks[user] = complete_login(start, username=USERS[user], session=browser,
                                             follow_callback=False, timeout=60)
            page = browser.get(callbacks[user], timeout=60)
            pages[user] = f"{page.status_code} {page.url}\n{page.text}"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign_in, args=(user,)) for user in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    assert set(pages) == set(logins), "a login did not finish within 90 s"
    return callbacks, pages


def test_two_users_log_in_at_once_through_the_one_hub_callback(hub: Hub,
                                                              provider: ProviderInfo) -> None:
    browsers = {user: hub.browser(user) for user in USERS}
    with hub.kernel("alice") as alice, hub.kernel("bob") as bob:
        kernels = {"alice": alice, "bob": bob}
        shown = {user: start_login_cell(kernels[user], provider) for user in USERS}
        for user, info in shown.items():
            assert info["redirect_uri"] == f"{hub.url}hub/user-redirect/nbauth/callback"
            assert info["start"].startswith(f"{hub.url}user/{user}/nbauth/start?key=")
            assert "hub-wide callback" in info["status"]
        callbacks, pages = sign_in_together(
            {user: (shown[user]["start"], browsers[user]) for user in USERS})
        for user in USERS:
            assert callbacks[user].startswith(f"{hub.url}hub/user-redirect/nbauth/callback?")
            # The hub's hook sent the browser straight to the user's own server.
            assert pages[user].startswith(f"200 {hub.url}user/{user}/nbauth/callback?"), \
                pages[user][:300]
            assert "Logged in" in pages[user], pages[user]
            assert f"href=\"/user/{user}/\"" in pages[user]  # back to their own server
        for user in USERS:
            result = api_call_cell(kernels[user], provider)
            assert result == {"status": 200, "sub": f"auth0|{user}"}
    # hub.log holds the hub's, the proxy's and both servers' output: each server's access log
    # shows the callback it served (scrubbed), and no code, state or start key is anywhere.
    for user in USERS:
        hub.wait_for_log(f"GET /user/{user}/nbauth/start?key=[secret]")
        hub.wait_for_log(f"302 GET /hub/user-redirect/nbauth/callback?code=[secret]&state="
                         f"[secret]&iss={quote(provider.issuer, safe='')} -> /user/{user}/"
                         "nbauth/callback?code=[secret]&state=[secret]")
        hub.wait_for_log(f"200 GET /user/{user}/nbauth/callback?code=[secret]&state=[secret]")
    hub.assert_not_logged({
        name: value for user in USERS
        for name, value in login_secrets(user, shown[user]["start"], callbacks[user]).items()
    })


def test_another_user_cannot_complete_or_steal_a_login(hub: Hub, provider: ProviderInfo) -> None:
    """Alice shared her server with Bob (JupyterHub sharing), yet Bob can neither use, complete
    nor hijack her login (S-92)."""
    alice_browser, bob_browser = hub.browser("alice"), hub.browser("bob", opened=["alice"])
    with hub.kernel("alice") as alice:
        shown = start_login_cell(alice, provider)
        # Bob got hold of Alice's start link: her server refuses him.
        stolen = bob_browser.get(shown["start"], allow_redirects=False, timeout=15)
        assert stolen.status_code == 403, (stolen.status_code, stolen.headers.get("Location"))
        # Alice's real authorization response, captured before delivery …
        callback = complete_login(shown["start"], username=USERS["alice"],
                                  session=alice_browser, follow_callback=False, timeout=60)
        query = urlsplit(callback).query
        state = parse_qs(query)["state"][0]
        # … delivered by Bob: through the hub-wide URL it reaches Bob's own server, which has
        # no such login; straight to Alice's server, her server refuses him.
        via_hub = bob_browser.get(callback, timeout=30)
        assert via_hub.status_code == 400 and "Login not found" in via_hub.text
        direct = bob_browser.get(f"{hub.url}user/alice/nbauth/callback?{query}", timeout=30)
        assert direct.status_code == 403 and "Not your login" in direct.text
        forged = bob_browser.get(f"{hub.url}user/alice/nbauth/callback?"
                                 f"{urlencode({'code': 'forged', 'state': state})}", timeout=30)
        assert forged.status_code == 403
        # Nobody logged in to the hub gets nowhere either.
        anonymous = requests.get(f"{hub.url}user/alice/nbauth/callback?{query}", timeout=30,
                                 allow_redirects=False)
        assert anonymous.status_code in (302, 403)
        # Alice's login is untouched and completes.
        page = alice_browser.get(callback, timeout=60)
        assert page.status_code == 200 and "Logged in" in page.text
        assert api_call_cell(alice, provider) == {"status": 200, "sub": "auth0|alice"}
    hub.assert_not_logged(login_secrets("alice", shown["start"], callback))


def test_a_named_server_logs_in_through_its_own_callback(hub: Hub,
                                                         provider: ProviderInfo) -> None:
    """`user-redirect` leads to default servers only, so a named server's kernel registers and
    uses the server's own callback URL; the login completes there."""
    hub.start_server("alice", NAMED)
    browser = hub.browser("alice", opened=[f"alice/{NAMED}"])
    with hub.kernel("alice", NAMED) as kernel:
        shown = start_login_cell(kernel, provider)
        assert shown["redirect_uri"] == f"{hub.url}user/alice/{NAMED}/nbauth/callback"
        assert shown["start"].startswith(f"{hub.url}user/alice/{NAMED}/nbauth/start?key=")
        assert "named server" in shown["status"]
        callbacks, pages = sign_in_together({"alice": (shown["start"], browser)})
        assert callbacks["alice"].startswith(shown["redirect_uri"] + "?")
        assert "Logged in" in pages["alice"], pages["alice"]
        assert f"href=\"/user/alice/{NAMED}/\"" in pages["alice"]
        assert api_call_cell(kernel, provider) == {"status": 200, "sub": "auth0|alice"}
    hub.wait_for_log(f"200 GET /user/alice/{NAMED}/nbauth/callback?code=[secret]")
    hub.assert_not_logged(login_secrets("alice", shown["start"], callbacks["alice"]))


def test_a_hub_under_a_base_url_with_its_own_public_url(tmp_path: Path) -> None:
    """`c.JupyterHub.base_url = '/jhub/'` and `c.JupyterHub.public_url` on the hub, nothing
    for nbauth in the servers' environment: the address comes from JupyterHub's own variables."""
    with running_hub(tmp_path / "jhub", base_url="/jhub/", environment={"BROWSER": "true"},
                     extra_config=NBAUTH_HUB_CONFIG
                     + 'c.JupyterHub.public_url = "{hub_url}"\n') as hub:
        assert urlsplit(hub.url).path == "/jhub/"
        hub.start_server("alice")
        callback_uri = f"{hub.url}hub/user-redirect/nbauth/callback"
        with running_provider(redirect_uris=[callback_uri]) as info, \
                hub.kernel("alice") as kernel:
            environ = kernel.run("import os\nprint(os.environ.get('NBAUTH_PUBLIC_URL'), "
                                 "os.environ.get('JUPYTERHUB_PUBLIC_HUB_URL'))")
            assert environ.split() == ["None", f"{hub.url}hub/"]
            shown = start_login_cell(kernel, info)
            assert shown["redirect_uri"] == callback_uri
            assert shown["start"].startswith(f"{hub.url}user/alice/nbauth/start?key=")
            callbacks, pages = sign_in_together({"alice": (shown["start"],
                                                               hub.browser("alice"))})
            assert pages["alice"].startswith(f"200 {hub.url}user/alice/nbauth/callback?")
            assert "Logged in" in pages["alice"], pages["alice"]
            assert 'href="/jhub/user/alice/"' in pages["alice"]
            assert api_call_cell(kernel, info) == {"status": 200, "sub": "auth0|alice"}
        hub.wait_for_log("200 GET /jhub/user/alice/nbauth/callback?code=[secret]")
        hub.assert_not_logged(login_secrets("alice", shown["start"], callbacks["alice"]))


def test_without_the_hook_the_hub_logs_the_code_and_state(tmp_path: Path) -> None:
    """Why README tells admins to add nbauth's user_redirect_hook (and proof that the log
    checks above can fail): without it JupyterHub sends the hub-wide callback through its
    spawn page with the whole URL in `next`, which its access log does not scrub. The login
    still completes, and the start key (which never passes through the hub) stays out."""
    with running_hub(tmp_path / "nohook", environment=ENVIRONMENT) as hub:
        hub.start_server("alice")
        with running_provider(redirect_uris=[f"{hub.url}hub/user-redirect/nbauth/callback"]
                              ) as info, hub.kernel("alice") as kernel:
            shown = start_login_cell(kernel, info)
            callbacks, pages = sign_in_together({"alice": (shown["start"],
                                                               hub.browser("alice"))})
            assert "Logged in" in pages["alice"], pages["alice"]
            assert api_call_cell(kernel, info) == {"status": 200, "sub": "auth0|alice"}
        secrets = login_secrets("alice", shown["start"], callbacks["alice"])
        log = hub.wait_for_log("/hub/spawn/alice?next=%2Fuser%2Falice%2Fnbauth%2Fcallback")
        assert secrets["alice's code"] in log and secrets["alice's state"] in log
        hub.assert_not_logged({"alice's start key": secrets["alice's start key"]})
