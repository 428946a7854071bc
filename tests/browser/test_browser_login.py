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
