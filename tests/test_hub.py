"""nbauth on a real JupyterHub: one hub-wide callback URL, two users logging in at the same time.

The hub runs on loopback with configurable-http-proxy, DummyAuthenticator and
SimpleLocalProcessSpawner; each user's server loads nbauth's extension from the installed
drop-in; the kernels are started through the users' own servers. "Browsers" are requests
sessions logged in to the hub; the real provider knows exactly one redirect URI for the hub:
`{hub}/hub/user-redirect/nbauth/callback`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from devprovider import ProviderInfo, running_provider
from hubs import Hub, KernelSession, running_hub
from scripted_user import complete_login

pytestmark = [
    pytest.mark.hub,
    pytest.mark.provider,
]

USERS = {"alice": "alice@example.com", "bob": "bob@example.com"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub"),
                     environment={"NBAUTH_PUBLIC_URL": "{hub_url}", "BROWSER": "true"}) as hub:
        for user in USERS:
            hub.start_server(user)
        hub.share("alice", with_user="bob")  # JupyterHub sharing: Bob may use Alice's server
        yield hub


@pytest.fixture(scope="module")
def provider(hub: Hub) -> Iterator[ProviderInfo]:
    with running_provider(redirect_uris=[f"{hub.url}hub/user-redirect/nbauth/callback"]) as info:
        yield info


def start_login_cell(kernel: KernelSession, provider: ProviderInfo) -> dict[str, str]:
    """What a user runs: %load_ext nbauth, then %auth0_login (not waiting, so the test can
    read the link the widget shows, as a person reads it on screen)."""
    output = kernel.run(
        "%load_ext nbauth\n"
        f"%auth0_login --no-wait --domain {provider.issuer} "
        f"--client-id {provider.exact_client_id} --audience {provider.audience}\n"
        "import json as _j\n"
        "_login = get_ipython().magics_manager.registry['AuthMagics'].logins['access_token']\n"
        "print(_j.dumps({'start': _login.pending.start_url,\n"
        "                'redirect_uri': _login.pending.redirect_uri,\n"
        "                'status': _login.widget.status_text}))\n"
    )
    return dict(json.loads(output.strip().splitlines()[-1]))


def api_call_cell(kernel: KernelSession, provider: ProviderInfo) -> dict[str, object]:
    output = kernel.run(
        "import time as _t, json as _j\n"
        "for _ in range(300):\n"
        "    if 'access_token' in globals(): break\n"
        "    _t.sleep(0.1)\n"
        f"_r = auth0_session.get({provider.api_url!r}, timeout=10)\n"
        "print(_j.dumps({'status': _r.status_code, 'sub': _r.json().get('sub')}))\n",
        timeout=90,
    )
    return dict(json.loads(output.strip().splitlines()[-1]))


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
        pages: dict[str, str] = {}
        errors: list[BaseException] = []

        def sign_in(user: str) -> None:
            try:
                pages[user] = complete_login(shown[user]["start"], username=USERS[user],
                                             session=browsers[user], timeout=60)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sign_in, args=(user,)) for user in USERS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert not errors, errors
        for user in USERS:
            assert "Logged in" in pages[user], pages[user]
            assert f"href=\"/user/{user}/\"" in pages[user]  # back to their own server
        for user in USERS:
            result = api_call_cell(kernels[user], provider)
            assert result == {"status": 200, "sub": f"auth0|{user}"}


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
