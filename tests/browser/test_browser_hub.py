"""A person on JupyterHub: log in to the hub, open a notebook, click the widget's Log in link,
sign in at the provider in a new tab, and come back through the one hub-wide callback URL.

The hub (tests/hubs.py) runs on loopback with configurable-http-proxy; the user's browser is
Debian's chromium; nothing reaches the kernel's 127.0.0.1 but the server extension's relay.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from devprovider import ProviderInfo, running_provider
from hubs import NBAUTH_HUB_CONFIG, Hub, running_hub
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
from playwright.sync_api import Browser, expect

pytestmark = [
    pytest.mark.hub,
]

USER = "carol"
HUB_PASSWORD = "nbauth-hub-test"  # noqa: S105 - DummyAuthenticator's test password


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
        yield hub


@pytest.fixture(scope="module")
def hub_provider(hub: Hub) -> Iterator[ProviderInfo]:
    with running_provider(redirect_uris=[f"{hub.url}hub/user-redirect/nbauth/callback"]) as info:
        yield info


def test_a_person_logs_in_from_a_hub_notebook_through_the_hub_wide_callback(
        hub: Hub, hub_provider: ProviderInfo, chromium: Browser) -> None:
    server = HubServer(hub, USER, hub.user_token(USER))
    provider = hub_provider
    write_notebook(server, "hub.ipynb", [  # type: ignore[arg-type]
        "%load_ext nbauth",
        f"%auth0_login --domain {provider.issuer} --client-id {provider.exact_client_id} "
        f"--audience {provider.audience}",
        f"print(auth0_session.get({provider.api_url!r}, timeout=10).json()['sub'])",
    ])
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
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
        with context.expect_page(timeout=UI_TIMEOUT) as new_tab:
            link.click()
        tab = new_tab.value
        sign_in(tab)
        consent(tab)
        expect_callback_page(tab, "Logged in")
        assert tab.url.startswith(f"{hub.url}user/{USER}/nbauth/callback?")
        expect(tab.get_by_role("link", name="Back to Jupyter")).to_have_attribute(
            "href", f"/user/{USER}/")
        page.bring_to_front()
        expect_widget_text(page, "Logged in as", timeout=60_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        widget(page).screenshot(path=str(SCREENSHOTS / "hub-logged-in.png"))
        wait_for_output(page, 1, "Logged in as")  # the login cell has finished
        run_cell(page, 2)
        wait_for_output(page, 2, "auth0|demo", timeout=60_000)
    finally:
        context.close()
