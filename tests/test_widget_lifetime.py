"""Re-running a login cell frees the widget it replaced, in a real kernel.

ipywidgets keeps every widget (and its layout and style models) registered until it is closed,
because a frontend may still show it. JupyterLab, Notebook 7 and VS Code send the cell's id
with each execution, and re-running a cell clears its outputs: the widget the earlier run
showed there can never be seen again, so nbauth closes it. A widget in another cell still
shows "Replaced by a newer login" and stays.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from kernel_frontend import FrontendKernel

pytestmark = [pytest.mark.provider, pytest.mark.kernel]

ROOT = Path(__file__).resolve().parents[1]
LOGIN = "%auth0_login --port 0 --timeout 60"
COUNT = "from ipywidgets.widgets.widget import _instances; print(len(_instances))"
NEWEST = "get_ipython().magics_manager.registry['AuthMagics'].logins['access_token'].widget"


class Kernel(FrontendKernel):
    """A real kernel whose $BROWSER is the scripted demo user, so a login cell just logs in."""

    def __init__(self, provider, browser: str) -> None:
        super().__init__({
            "AUTH0_DOMAIN": provider.issuer, "AUTH0_CLIENT_ID": provider.client_id,
            "AUTH0_AUDIENCE": provider.audience,
            "NBAUTH_SCOPE": "openid profile email offline_access read:messages",
            "BROWSER": browser})

    def run(self, code: str, cell_id: str | None = None, timeout: float = 90) -> str:
        """Execute `code` as a frontend would (with `cell_id` in the request's metadata, as
        JupyterLab sends it); return its text output, failing on an error."""
        result = self.execute(code, cell_id=cell_id, timeout=timeout)
        assert not result.errors, result.errors
        return result.text

    def count(self) -> int:
        return int(self.run(COUNT).strip())


@pytest.fixture
def kernel(provider, tmp_path):
    browser = tmp_path / "scripted-browser"
    browser.write_text("#!/bin/sh\n"
                       f'exec "{sys.executable}" "{ROOT / "provider" / "scripted_user.py"}" "$@"\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    k = Kernel(provider, str(browser))
    try:
        k.run("%load_ext nbauth\nimport requests")
        yield k
    finally:
        k.close()


def logs_in(kernel: Kernel, cell_id: str | None) -> None:
    assert "Logged in as Demo User" in kernel.run(LOGIN, cell_id)


def test_rerunning_the_login_cell_frees_the_replaced_widget(kernel, provider):
    logs_in(kernel, "cell-login")
    kernel.run(f"_first = {NEWEST}")
    after_first = kernel.count()
    for _ in range(3):
        logs_in(kernel, "cell-login")
    assert kernel.count() == after_first  # three re-runs, no widget kept for any of them
    assert kernel.run("print(_first.comm is None, 'Replaced' in _first.status_text)").split() \
        == ["True", "True"]
    status = kernel.run("print(requests.get(%r, headers={'Authorization': "
                        "f'Bearer {access_token}'}, timeout=10).status_code)" % provider.api_url)
    assert status.strip() == "200"  # the newest login is the one in use


def test_a_login_in_another_cell_keeps_the_earlier_widget_shown(kernel):
    logs_in(kernel, "cell-one")
    kernel.run(f"_first = {NEWEST}")
    before = kernel.count()
    logs_in(kernel, "cell-two")
    assert kernel.count() > before
    # still open, so the first cell goes on showing that a newer login replaced it
    assert kernel.run("print(_first.comm is not None, 'Replaced by a newer login' in "
                      "_first.status_text)").split() == ["True", "True"]


def test_without_cell_ids_replaced_widgets_stay(kernel):
    # nbclient and older frontends send no cell id: nothing tells nbauth the output was cleared
    logs_in(kernel, None)
    kernel.run(f"_first = {NEWEST}")
    logs_in(kernel, None)
    assert kernel.run("print(_first.comm is not None)").strip() == "True"


def test_a_failed_rerun_keeps_the_earlier_login_usable(kernel, provider):
    logs_in(kernel, "cell-login")
    out = kernel.run("try:\n    get_ipython().run_line_magic('auth0_login', "
                     "'--port 0 --timeout 1 --no-browser')\nexcept Exception as e:\n"
                     "    print(type(e).__name__)", "cell-login")
    assert "LoginTimeoutError" in out
    status = kernel.run("print(requests.get(%r, headers={'Authorization': "
                        "f'Bearer {access_token}'}, timeout=10).status_code)" % provider.api_url)
    assert status.strip() == "200"  # the earlier login still holds access_token
