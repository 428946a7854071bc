"""A person on JupyterHub: log in to the hub, open a notebook, click the widget's Log in link,
sign in at the provider in a new tab, and come back through the one hub-wide callback URL —
while another user of the same hub logs in through the same URL at the same time.

The hub (tests/hubs.py) runs on loopback with configurable-http-proxy and nbauth's
user_redirect_hook; the person's browser is Debian's chromium, the other user's is the scripted
requests browser (provider/scripted_user.py); nothing reaches the kernels' 127.0.0.1 but the
server extension's relay.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from notebook_ui import (
    SCREENSHOTS,
    UI_TIMEOUT,
    consent,
    expect_callback_page,
    expect_widget_text,
    open_notebook,
    run_cell,
    sign_in,
    wait_for_output,
    widget,
    write_notebook,
)
from playwright.sync_api import Browser, BrowserContext, expect
from scripted_user import complete_login

pytestmark = [
    pytest.mark.hub,
]

USER = "carol"  # in chromium; signs in at the provider as the demo user
OTHER, OTHER_ACCOUNT = "alice", "alice@example.com"  # at the same time, scripted
HUB_PASSWORD = "nbauth-hub-test"  # DummyAuthenticator's test password


@dataclass
class HubServer:
    """A user's single-user server, shaped like tests/jupyter_servers.JupyterServer for the
    notebook helpers (they write notebooks to `root` and ask `api` about kernel sessions)."""

    hub: Hub
    user: str
    token: str
    flavour: str = "lab"

    @property
    def root(self) -> Path:
        return self.hub.home(self.user)

    def notebook_url(self, name: str) -> str:
        return f"{self.hub.url}user/{self.user}/lab/tree/{name}?reset"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.hub.url}user/{self.user}/api/{path}",
                                headers=headers, timeout=15, **kwargs)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("browser-hub"), extra_config=NBAUTH_HUB_CONFIG,
                     environment={"NBAUTH_PUBLIC_URL": "{hub_url}", "BROWSER": "true"}) as hub:
        hub.start_server(USER)
        hub.start_server(OTHER)
        yield hub


@pytest.fixture(scope="module")
def hub_provider(hub: Hub) -> Iterator[ProviderInfo]:
    with running_provider(redirect_uris=[f"{hub.url}hub/user-redirect/nbauth/callback"]) as info:
        yield info


class OtherUser(threading.Thread):
    """The other user's browser: signs in at the provider (scripted), and delivers the
    authorization response with its own hub session."""

    def __init__(self, start: str, browser: requests.Session) -> None:
        super().__init__(daemon=True)
        self.start_url, self.browser = start, browser
        self.callback = self.page = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.callback = complete_login(self.start_url, username=OTHER_ACCOUNT,
                                           session=self.browser, follow_callback=False,
                                           timeout=60)
            page = self.browser.get(self.callback, timeout=60)
            self.page = f"{page.status_code} {page.url}\n{page.text}"
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_two_people_log_in_at_once_through_the_hub_wide_callback_one_in_chromium(
        hub: Hub, hub_provider: ProviderInfo, chromium: Browser) -> None:
    server = HubServer(hub, USER, hub.user_token(USER))
    provider = hub_provider
    write_notebook(server, "hub.ipynb", [  # type: ignore[arg-type]
        "%load_ext nbauth",
        f"%auth0_login --domain {provider.issuer} --client-id {provider.exact_client_id} "
        f"--audience {provider.audience}",
        f"print(auth0_session.get({provider.api_url!r}, timeout=10).json()['sub'])",
    ])
    other_browser = hub.browser(OTHER)
    with hub.kernel(OTHER) as other_kernel:
        other = start_login_cell(other_kernel, provider)  # Alice's login is pending …
        assert other["redirect_uri"] == f"{hub.url}hub/user-redirect/nbauth/callback"
        other_user = OtherUser(other["start"], other_browser)
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        try:
            carol_start, carol_callback = _carol_logs_in(hub, server, provider, context,
                                                         other_user)
        finally:
            context.close()
            with contextlib.suppress(requests.RequestException, ValueError):
                for session in server.api("GET", "sessions").json():  # a quicker hub stop
                    server.api("DELETE", f"sessions/{session['id']}")
            if other_user.ident is not None:  # started
                other_user.join(90)
        assert not other_user.is_alive(), "the other user's login did not finish within 90 s"
        assert other_user.error is None, other_user.error
        assert other_user.page.startswith(f"200 {hub.url}user/{OTHER}/nbauth/callback?"), \
            other_user.page[:300]
        assert "Logged in" in other_user.page
        assert f'href="/user/{OTHER}/"' in other_user.page
        # Each kernel holds its own user's token.
        assert api_call_cell(other_kernel, provider) == {"status": 200, "sub": "auth0|alice"}
    hub.wait_for_log(f"200 GET /user/{OTHER}/nbauth/callback?code=[secret]")
    hub.wait_for_log(f"200 GET /user/{USER}/nbauth/callback?code=[secret]")
    hub.assert_not_logged({**login_secrets(USER, carol_start, carol_callback),
                           **login_secrets(OTHER, other["start"], other_user.callback)})


def _carol_logs_in(hub: Hub, server: HubServer, provider: ProviderInfo,
                   context: BrowserContext, other_user: OtherUser) -> tuple[str, str]:
    """Carol, in chromium, logs in from her notebook; the other user signs in while she is at
    the provider. Returns her start link and the callback URL her tab landed on."""
    hub_page = context.new_page()
    hub_page.goto(f"{hub.url}hub/login", timeout=UI_TIMEOUT)
    hub_page.locator('input[name="username"]').fill(USER)
    hub_page.locator('input[name="password"]').fill(HUB_PASSWORD)
    hub_page.locator('input[type="submit"], button[type="submit"]').first.click()
    hub_page.wait_for_url(f"**/user/{USER}/**", timeout=60_000)
    page = open_notebook(context, server, "hub.ipynb")  # type: ignore[arg-type]
    run_cell(page, 0)
    run_cell(page, 1)
    expect_widget_text(page, "via your Jupyter server")
    expect_widget_text(page, f"{hub.url}hub/user-redirect/nbauth/callback")
    link = widget(page).get_by_role("link", name="Log in", exact=True)
    expect(link).to_have_attribute("href", f"{hub.url}user/{USER}/nbauth/start?key=" +
                                   link.get_attribute("href").split("key=", 1)[1])
    start = link.get_attribute("href")
    with context.expect_page(timeout=UI_TIMEOUT) as new_tab:
        link.click()
    tab = new_tab.value
    sign_in(tab)
    other_user.start()  # … and now both are at the provider at the same time
    consent(tab)
    expect_callback_page(tab, "Logged in")
    assert tab.url.startswith(f"{hub.url}user/{USER}/nbauth/callback?")
    callback = tab.url
    expect(tab.get_by_role("link", name="Back to Jupyter")).to_have_attribute(
        "href", f"/user/{USER}/")
    page.bring_to_front()
    expect_widget_text(page, "Logged in as", timeout=60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    widget(page).screenshot(path=str(SCREENSHOTS / "hub-logged-in.png"))
    wait_for_output(page, 1, "Logged in as")  # the login cell has finished
    run_cell(page, 2)
    wait_for_output(page, 2, "auth0|demo", timeout=60_000)
    return str(start), callback
