"""What a person does in JupyterLab / Notebook 7 and on the provider's pages, with Playwright.

Both front ends are built from the same JupyterLab components, so one set of selectors serves
both: `.jp-Notebook .jp-Cell` cells, `.jp-OutputArea` outputs, the toolbar's
`.jp-Notebook-ExecutionIndicator[data-status]` kernel status, and the nbauth widget's own
`.nbauth-login` class. Every wait has a timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
from jupyter_servers import JupyterServer
from playwright.sync_api import BrowserContext, Locator, Page, expect

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

KERNEL_TIMEOUT = 60_000  # ms: kernel start, plus a busy 2-core machine
UI_TIMEOUT = 30_000  # ms: page loads, widget rendering, provider pages
DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "nbauth-demo"  # the bundled provider's published demo password


# -- notebooks ------------------------------------------------------------------------------

def write_notebook(server: JupyterServer, name: str, cells: Sequence[str]) -> Path:
    """Create NAME in the server's root with these code cells (python3 kernel, no outputs)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = server.root / name
    nbformat.write(nb, path)
    return path


def open_notebook(context: BrowserContext, server: JupyterServer, name: str) -> Page:
    """Open NAME in a new tab and wait until its cells are shown and its kernel is idle."""
    page = context.new_page()
    page.goto(server.notebook_url(name), timeout=UI_TIMEOUT)
    expect(cell(page, 0)).to_be_visible(timeout=UI_TIMEOUT)
    # The toolbar's kernel indicator reads "idle" before any kernel exists (and running a cell
    # then asks "Select Kernel"), so first wait until the page's websocket is connected to the
    # notebook's kernel (the server counts it); after that "idle" means the kernel answered.
    deadline = time.monotonic() + KERNEL_TIMEOUT / 1000
    while not _kernel_connected(server, name):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: no kernel connected to the page in time")
        page.wait_for_timeout(100)
    wait_kernel_idle(page, timeout=max(1000.0, (deadline - time.monotonic()) * 1000))
    return page


def _kernel_connected(server: JupyterServer, name: str) -> bool:
    sessions = server.api("GET", "sessions").json()
    return any(s.get("path") == name and (s.get("kernel") or {}).get("connections", 0) >= 1
               for s in sessions)


def wait_kernel_idle(page: Page, timeout: float = KERNEL_TIMEOUT) -> None:
    expect(notebook_panel(page).locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=timeout)


def notebook_panel(page: Page) -> Locator:
    """The notebook on show (JupyterLab keeps other tabs' panels in the DOM, hidden)."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def cell(page: Page, index: int) -> Locator:
    return notebook_panel(page).locator(".jp-Cell").nth(index)


def cell_output(page: Page, index: int) -> Locator:
    return cell(page, index).locator(".jp-OutputArea")


def run_cell(page: Page, index: int) -> None:
    """Click into the cell's editor and press Shift+Enter."""
    cell(page, index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def run_all(page: Page) -> None:
    """Run ▸ Run All Cells, from the menu bar (same menu in JupyterLab and Notebook 7)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled)",
                 has_text=re.compile(r"^Run All Cells")).first.click()


def wait_for_output(page: Page, index: int, text: str | re.Pattern[str],
                    timeout: float = UI_TIMEOUT) -> None:
    expect(cell_output(page, index)).to_contain_text(text, timeout=timeout)


def save_notebook(page: Page) -> None:
    """Ctrl+S with the focus in the notebook (command mode)."""
    notebook_panel(page).locator(".jp-Notebook").focus()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")


# -- the nbauth widget ----------------------------------------------------------------------

def widget(page: Page, index: int = -1) -> Locator:
    """The nbauth login widget (the last one on the page by default)."""
    widgets = notebook_panel(page).locator(".nbauth-login")
    return widgets.last if index == -1 else widgets.nth(index)


def widget_text(page: Page, index: int = -1) -> str:
    """What the widget shows, as the person reads it."""
    return widget(page, index).inner_text()


def expect_widget_text(page: Page, text: str | re.Pattern[str], index: int = -1,
                       timeout: float = UI_TIMEOUT) -> None:
    expect(widget(page, index)).to_contain_text(text, timeout=timeout)


def click_widget_button(page: Page, name: str, index: int = -1) -> None:
    """Click one of the widget's visible buttons by its label ("Cancel", "Log out", ...)."""
    widget(page, index).get_by_role("button", name=name, exact=True).click()


@dataclass
class AuthorizeRequest:
    """The authorization request the person's tab opened (to check nothing of it leaks)."""

    url: str

    def param(self, name: str) -> str:
        return parse_qs(urlsplit(self.url).query)[name][0]


def click_login_link(page: Page, index: int = -1) -> tuple[Page, AuthorizeRequest]:
    """Click the widget's "Log in" link: the provider opens in a NEW tab. Returns that tab and
    the /authorize URL it navigated to first."""
    navigations: list[str] = []

    def record(request) -> None:  # type: ignore[no-untyped-def]
        if request.is_navigation_request() and urlsplit(request.url).path == "/authorize":
            navigations.append(request.url)

    context = page.context
    context.on("request", record)
    try:
        link = widget(page, index).get_by_role("link", name="Log in", exact=True)
        expect(link).to_be_visible(timeout=UI_TIMEOUT)
        with context.expect_page(timeout=UI_TIMEOUT) as new_tab:
            link.click()
        tab = new_tab.value
        tab.wait_for_load_state("domcontentloaded", timeout=UI_TIMEOUT)
        deadline = time.monotonic() + UI_TIMEOUT / 1000
        while not navigations and time.monotonic() < deadline:
            tab.wait_for_timeout(50)
    finally:
        context.remove_listener("request", record)
    assert navigations, f"the new tab never requested /authorize (it shows {tab.url})"
    return tab, AuthorizeRequest(navigations[0])


# -- the person on the provider's pages (provider/README.md, "The pages") ---------------------

def sign_in(tab: Page, username: str = DEMO_USER, password: str = DEMO_PASSWORD) -> None:
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible(timeout=UI_TIMEOUT)
    tab.locator('input[name="username"]').fill(username)
    tab.locator('input[name="password"]').fill(password)
    tab.get_by_role("button", name="Sign in", exact=True).click()


def consent(tab: Page, decision: str = "Allow") -> None:
    """Click "Allow" or "Deny" on the consent page."""
    button = tab.get_by_role("button", name=decision, exact=True)
    expect(button).to_be_visible(timeout=UI_TIMEOUT)
    button.click()


def expect_callback_page(tab: Page, title: str) -> None:
    """The tab ends on nbauth's own page: "Logged in" or "Login failed"."""
    expect(tab.get_by_role("heading", level=1)).to_have_text(title, timeout=UI_TIMEOUT)
    assert tab.title() == title


def log_in_in_new_tab(page: Page, decision: str = "Allow") -> tuple[Page, AuthorizeRequest]:
    """The whole person: click Log in, sign in as the demo user, Allow/Deny, see nbauth's page,
    then go back to the notebook's tab (a background tab gets few animation frames, which makes
    screenshots of it slow)."""
    tab, request = click_login_link(page)
    sign_in(tab)
    consent(tab, decision)
    expect_callback_page(tab, "Logged in" if decision == "Allow" else "Login failed")
    page.bring_to_front()
    return tab, request


# -- screenshots ----------------------------------------------------------------------------

def screenshot(target: Locator | Page, name: str) -> Path:
    """Save a PNG to artifacts/screenshots/NAME.png (a locator is cropped to its element)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path), animations="disabled", timeout=UI_TIMEOUT)
    return path
