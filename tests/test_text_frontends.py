"""Where no widget can show, the login cell's text says what to do, and then who logged in.

`jupyter console`, IPython in a terminal and a front end whose widget manager failed ("Error
displaying widget: model not found", ipywidgets #3823) show a display's text/plain only. The
person here reads the link (or the device code) from the cell's text output of a real kernel
driven with jupyter_client, as such a front end would show it, and signs in with it.
"""

from __future__ import annotations

import queue
import re
import time

import pytest
from kernel_frontend import FrontendKernel
from scripted_user import complete_device_login, complete_login

pytestmark = [pytest.mark.provider, pytest.mark.kernel]


class TextFrontend(FrontendKernel):
    """A kernel whose display outputs are kept by display_id, updates applied, as a front
    end does; only their text/plain is read."""

    def __init__(self, provider) -> None:
        super().__init__({"AUTH0_DOMAIN": provider.issuer, "AUTH0_CLIENT_ID": provider.client_id,
                          "AUTH0_AUDIENCE": provider.audience, "BROWSER": "true"})
        self.shown: dict[str, str] = {}  # display_id -> the text/plain shown now
        self.stream = ""

    def pump(self, until, seconds: float = 60):
        """Read iopub messages until `until()` is true (bounded by count and time)."""
        deadline = time.monotonic() + seconds
        for _ in range(100_000):
            if until() or time.monotonic() > deadline:
                break
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("display_data", "update_display_data"):
                display_id = content.get("transient", {}).get("display_id", "")
                self.shown[display_id] = content["data"].get("text/plain", "")
            elif kind == "stream":
                self.stream += content["text"]
        return until()

    def text(self) -> str:
        return "\n".join(self.shown.values())


@pytest.fixture
def frontend(provider):
    f = TextFrontend(provider)
    try:
        f.kc.execute("%load_ext nbauth")
        yield f
    finally:
        f.close()


def test_the_text_output_gives_the_link_and_then_who_logged_in(frontend, provider):
    frontend.kc.execute("%auth0_login --no-browser --port 0 --no-wait")
    assert frontend.pump(lambda: "open http" in frontend.text()), frontend.text()
    text = frontend.text()
    link = re.search(r"open (http://127\.0\.0\.1:\d+/start/\S+)", text).group(1)
    assert "state=" not in text and "code_challenge" not in text  # the opaque link only
    complete_login(link)  # the person opens the link in their browser and signs in
    assert frontend.pump(lambda: "logged in" in frontend.text()), frontend.text()
    assert "as Demo User <demo@example.com>" in frontend.text()
    assert link not in frontend.text()  # the dead link does not stay in the output


def test_the_text_output_gives_the_device_code(frontend, provider):
    frontend.kc.execute("%auth0_login --device --no-wait")
    assert frontend.pump(lambda: "enter the code" in frontend.text()), frontend.text()
    found = re.search(r"open (\S+) and enter the code (\S+)", frontend.text())
    complete_device_login(found.group(1), found.group(2))
    assert frontend.pump(lambda: "logged in" in frontend.text(), seconds=90), frontend.text()


def test_a_failed_login_says_why_in_the_text(frontend):
    frontend.kc.execute("%auth0_login --no-browser --port 0 --timeout 1")
    assert frontend.pump(lambda: "open http" in frontend.text()), frontend.text()
    ended = re.compile(r"nobody completed|timed out|expired", re.IGNORECASE)
    assert frontend.pump(lambda: ended.search(frontend.text()), seconds=30), frontend.text()
    assert "open http" not in frontend.text()  # the link of an ended login is gone
