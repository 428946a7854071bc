"""The login widget: a "Log in" link-button, the URL to copy, and a status line.

Only text meant for people is ever synced to the browser. The authorization URL (which carries
the login's state) is shown only while the login waits and is blanked as soon as it ends, so
saved widget state holds no token, code, verifier or state value.
"""

from __future__ import annotations

import time
from html import escape

import ipywidgets as widgets

from .credentials import Credentials
from .flow import Status
from .tokens import describe_remaining

__all__ = ["LoginWidget"]

_BUTTON_STYLE = (
    "display:inline-block;padding:4px 14px;border-radius:4px;background:#1f6feb;color:#fff;"
    "text-decoration:none;font-weight:600"
)


class LoginWidget(widgets.VBox):
    """What a person sees for one login: provider, Log in button, URL, status."""

    def __init__(self, provider: str, *, mode: str = "") -> None:
        self._title = widgets.HTML(
            value=f"<b>Log in to {escape(provider)}</b>"
            + (f" <small>({escape(mode)})</small>" if mode else "")
        )
        self._button = widgets.HTML(value="")
        self._url = widgets.Text(
            value="", description="URL", disabled=False,
            layout=widgets.Layout(width="100%", display="none"),
            tooltip="Copy this address into your browser if the button does not open it",
        )
        self._status = widgets.HTML(value="<i>Preparing the login…</i>")
        super().__init__(children=[self._title, self._button, self._url, self._status])
        self.add_class("nbauth-login")

    # The default repr lists child values (the URL among them) and is saved as text/plain.
    def __repr__(self) -> str:
        return "<nbauth login widget>"

    @property
    def status_text(self) -> str:
        """The status line as plain text (for tests and logs)."""
        return str(self._status.value)

    def show_pending(self, url: str, note: str = "") -> None:
        """Show the Log in button and the URL while the login waits."""
        safe = escape(url, quote=True)
        self._button.value = (
            f'<a href="{safe}" target="_blank" rel="noopener noreferrer" '
            f'style="{_BUTTON_STYLE}">Log in</a>'
        )
        self._url.value = url
        self._url.layout.display = None
        self._set_status("Waiting for you to log in in the browser…" + (f" {note}" if note else ""))

    def update(self, status: Status) -> None:
        """Reflect a login's status; the URL disappears once the login has ended."""
        if status.done:
            self._end_pending()
        if status.phase == Status.SUCCEEDED:
            return  # show_credentials() follows with the details
        if status.phase == Status.FAILED:
            self._set_status(status.message, error=True)
        else:
            self._set_status(status.message)

    def show_credentials(self, credentials: Credentials, clock: float | None = None) -> None:
        """'Logged in as …', with expiry and scopes (never a token)."""
        self._end_pending()
        now = time.time() if clock is None else clock
        remaining = None if credentials.expires_at is None else credentials.expires_at - now
        details = describe_remaining(remaining)
        if credentials.scopes:
            details += "; scopes: " + " ".join(credentials.scopes)
        self._status.value = (
            f"<span style='color:#1a7f37'>✔ Logged in as "
            f"<b>{escape(credentials.identity.label)}</b></span> "
            f"<small>({escape(details)})</small>"
        )

    def show_error(self, message: str) -> None:
        self._end_pending()
        self._set_status(message, error=True)

    def show_logged_out(self, message: str = "Logged out.") -> None:
        self._end_pending()
        self._set_status(message)

    def _end_pending(self) -> None:
        self._button.value = ""
        self._url.value = ""
        self._url.layout.display = "none"

    def _set_status(self, text: str, *, error: bool = False) -> None:
        style = " style='color:#b42318'" if error else ""
        icon = "✖ " if error else ""
        self._status.value = f"<span{style}>{icon}{escape(text)}</span>"
