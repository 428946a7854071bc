"""A person logs in from a real notebook page, in JupyterLab and in Notebook 7.

Debian's chromium (Playwright) drives the real front ends; kernels run nbauth against the real
provider; the provider's pages open in a new tab when the widget's "Log in" link is clicked,
and the test types the demo user's email and password there like a person. Assertions are
about what the pages show (and, for saving, what lands on disk).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from notebook_ui import (
    cell,
    cell_output,
    click_widget_button,
    expect_widget_text,
    log_in_in_new_tab,
    run_all,
    run_cell,
    save_notebook,
    screenshot,
    wait_for_output,
    widget,
    widget_text,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.provider, pytest.mark.kernel]

LOGIN_CELL = "%load_ext nbauth\n%auth0_login"
API_CELL = (
    "import requests, os\n"
    "requests.get(os.environ['NBAUTH_DEMO_API'], "
    "headers={'Authorization': f'Bearer {access_token}'}).json()['message']"
)
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def test_log_in_then_call_the_api(jupyter, open_nb):
    page = open_nb([LOGIN_CELL, API_CELL])
    run_all(page)

    expect_widget_text(page, "Log in to")
    expect(widget(page).get_by_role("link", name="Log in", exact=True)).to_be_visible()
    expect_widget_text(page, "Waiting")
    screenshot(cell(page, 0), f"{jupyter.flavour}-waiting")

    tab, _ = log_in_in_new_tab(page, "Allow")
    screenshot(tab.locator("body"), f"{jupyter.flavour}-tab-logged-in")

    expect_widget_text(page, "Logged in as Demo User <demo@example.com>")
    shown = widget_text(page)
    assert "expires in" in shown
    assert "openid" in shown and "offline_access" in shown  # the granted scopes
    wait_for_output(page, 1, "Hello from the nbauth demo API")
    screenshot(cell(page, 0), f"{jupyter.flavour}-logged-in")


def test_deny_on_consent_shows_access_denied(jupyter, open_nb):
    page = open_nb([LOGIN_CELL])
    run_cell(page, 0)

    log_in_in_new_tab(page, "Deny")

    expect_widget_text(page, re.compile(r"denied", re.IGNORECASE))
    assert "Logged in as" not in widget_text(page)
    screenshot(cell(page, 0), f"{jupyter.flavour}-error-denied")


def test_saved_notebook_holds_no_secret(jupyter, open_nb, tmp_path):
    token_file = tmp_path / "access_token.txt"
    name = "saved-widget-state.ipynb"
    page = open_nb([
        LOGIN_CELL,
        f"import pathlib\npathlib.Path({str(token_file)!r}).write_text(str(access_token))\n"
        "print('token written')",
    ], name=name)
    run_all(page)
    _, authorize = log_in_in_new_tab(page, "Allow")
    expect_widget_text(page, "Logged in as Demo User")
    wait_for_output(page, 1, "token written")

    save_notebook(page)
    saved = _wait_for_saved_widget_state(jupyter.root / name)

    secrets = {
        "access token": token_file.read_text(),
        "state": authorize.param("state"),
        "nonce": authorize.param("nonce"),
        "code_challenge": authorize.param("code_challenge"),
    }
    assert all(len(value) >= 20 for value in secrets.values())
    for what, value in secrets.items():
        assert value not in saved, f"the saved notebook contains the {what}"


def _wait_for_saved_widget_state(path: Path, timeout: float = 30.0) -> str:
    """The notebook's text once a save has written the widget state showing the login."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text()
        state = json.loads(text).get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {})
        if "Logged in as" in json.dumps(state):
            return text
        time.sleep(0.2)
    raise AssertionError(f"{path.name} was not saved with the widget state in {timeout}s: "
                         f"{text[:2000]}")


def _port_is_free(port: int) -> bool:
    """Nothing listens there (connections of a finished login may linger in TIME_WAIT, which
    does not stop the next login: nbauth's listener binds with SO_REUSEADDR)."""
    import socket

    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_cancel_while_the_login_cell_is_still_running(jupyter, open_nb):
    """The cell waits (the kernel is busy); Cancel in the widget still stops the login, the cell
    ends with the cancellation, the port is freed and the Log in button offers a retry.
    (The extension is loaded in an earlier cell: see README, "Cancelling a waiting login".)"""
    page = open_nb(["%load_ext nbauth", "%auth0_login --port 8799", "print('next cell ran')"])
    run_all(page)
    expect_widget_text(page, "Waiting")
    assert not _port_is_free(8799)
    click_widget_button(page, "Cancel")
    expect_widget_text(page, re.compile("cancelled", re.IGNORECASE))
    wait_for_output(page, 1, "LoginCancelledError")
    expect(widget(page).get_by_role("button", name="Log in", exact=True)).to_be_visible()
    deadline = time.monotonic() + 10
    while not _port_is_free(8799) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _port_is_free(8799)
    screenshot(cell(page, 1), f"{jupyter.flavour}-cancelled")
    # retry from the widget, then log in for real
    click_widget_button(page, "Log in")
    expect_widget_text(page, "Waiting")
    log_in_in_new_tab(page, "Allow")
    expect_widget_text(page, "Logged in as Demo User")


def test_log_out_button_clears_the_login(jupyter, open_nb):
    page = open_nb([LOGIN_CELL, "print('access_token' in dir(), 'auth0_session' in dir())"])
    run_cell(page, 0)
    log_in_in_new_tab(page, "Allow")
    expect_widget_text(page, "Logged in as Demo User")
    click_widget_button(page, "Log out")
    expect_widget_text(page, "Logged out")
    expect(widget(page).get_by_role("button", name="Log in", exact=True)).to_be_visible()
    run_cell(page, 1)
    wait_for_output(page, 1, "False False")


def test_rerunning_the_login_cell_while_a_login_waits(jupyter, open_nb):
    page = open_nb([LOGIN_CELL + " --no-wait", API_CELL])
    run_cell(page, 0)
    expect_widget_text(page, "Waiting")
    first_link = widget(page).get_by_role("link", name="Log in", exact=True).get_attribute("href")
    run_cell(page, 0)  # the person runs the cell again: the new login takes over
    expect_widget_text(page, "Waiting")
    second_link = widget(page).get_by_role("link", name="Log in", exact=True).get_attribute("href")
    assert first_link != second_link
    log_in_in_new_tab(page, "Allow")
    expect_widget_text(page, "Logged in as Demo User")
    run_cell(page, 1)
    wait_for_output(page, 1, "Hello from the nbauth demo API")


def test_login_in_the_same_cell_as_load_ext_says_how_to_cancel(jupyter, open_nb):
    """On its first run such a cell cannot await (the extension was not loaded when the cell
    was compiled), so it blocks: the widget says to interrupt the kernel, and that works."""
    page = open_nb([LOGIN_CELL + " --port 8798"])
    run_cell(page, 0)
    expect_widget_text(page, "interrupt the kernel")
    expect(widget(page).get_by_role("button", name="Cancel", exact=True)).to_be_hidden()
    page.keyboard.press("Escape")
    page.keyboard.press("i")
    page.keyboard.press("i")
    # one line in nbauth's words, as for an awaited cell (no KeyboardInterrupt traceback)
    wait_for_output(page, 0, "LoginCancelledError: The login was interrupted (kernel interrupt).")
    expect(cell_output(page, 0)).not_to_contain_text("Traceback")
    expect_widget_text(page, re.compile("cancelled", re.IGNORECASE))
