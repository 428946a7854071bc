"""The login widget: a "Log in" link-button, the URL to copy, a status line, and controls.

Only text meant for people is ever synced to the browser. The authorization URL (which carries
the login's state) is shown only while the login waits and is blanked as soon as it ends, so
saved widget state holds no token, code, verifier or state value.

The widget does no OAuth itself: its buttons call the callbacks the notebook glue registers
(`on_cancel`, `on_logout`, `on_retry`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets

from .credentials import Credentials
from .device import DeviceLogin
from .flow import Status
from .tokens import describe_remaining

__all__ = ["LoginWidget"]

_LINK_STYLE = (
    "display:inline-block;padding:3px 14px;border-radius:4px;background:#1f6feb;color:#fff;"
    "text-decoration:none;font-weight:600;line-height:22px"
)
#: Seconds between updates of "expires in …" while logged in.
TICK_SECONDS = 15.0

Callback = Callable[[], None]


def _hide(widget: Any, hidden: bool) -> None:
    widget.layout.display = "none" if hidden else None


def _qr_image(link: str) -> str:
    """An <img> of `link` as a QR code (to scan with a phone), or "" without segno."""
    try:
        import segno
    except ImportError:
        return ""
    uri = segno.make(link, error="m").svg_data_uri(scale=3, border=2)
    return (f'<img src="{escape(uri, quote=True)}" alt="QR code of the activation link" '
            'title="Scan to open the activation page">')


class LoginWidget(widgets.VBox):
    """What a person sees for one login: provider, Log in, URL, status, Cancel / Log out."""

    def __init__(self, provider: str, *, mode: str = "") -> None:
        self._provider = provider
        self._mode = mode
        self._title = widgets.HTML()
        self._set_title("Log in to")
        self._link = widgets.HTML(value="")
        self._retry = widgets.Button(description="Log in", button_style="primary",
                                     tooltip="Start a new login")
        self._cancel = widgets.Button(description="Cancel", tooltip="Stop waiting for this login")
        self._logout = widgets.Button(description="Log out", tooltip="Forget this login")
        self._url = widgets.Text(
            value="", description="URL", layout=widgets.Layout(width="100%"),
            tooltip="Copy this address into your browser if the button does not open it",
        )
        self._status = widgets.HTML(value="<i>Preparing the login…</i>")
        self._qr = widgets.HTML(value="")  # device flow: the activation link as a QR code
        row = widgets.HBox([self._link, self._retry, self._cancel, self._logout])
        super().__init__(children=[self._title, row, self._url, self._status, self._qr])
        self.add_class("nbauth-login")
        self._callbacks: dict[str, Callback] = {}
        self._retry.on_click(lambda _: self._fire("retry"))
        self._cancel.on_click(lambda _: self._fire("cancel"))
        self._logout.on_click(lambda _: self._fire("logout"))
        self._credentials: Credentials | None = None
        self._device: DeviceLogin | None = None
        self._device_note = ""
        self._ticker: threading.Timer | None = None
        self._closed = False
        self._display: Any = None
        #: False where display updates print as new lines (a terminal IPython).
        self.publish_outcomes = True
        self._text = f"nbauth: preparing the login to {provider}…"
        self._show(link=False, retry=False, cancel=False, logout=False)

    # The default repr lists child values (the URL among them) and is saved as text/plain.
    def __repr__(self) -> str:
        return "<nbauth login widget>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget, and as text/plain what it says in words (what a frontend without
        widgets shows: a terminal, jupyter console, a widget that failed to render)."""
        data: dict[str, Any] | None = super()._repr_mimebundle_(**kwargs)
        if data is not None:
            data["text/plain"] = self._text
        return data

    def attach_display(self, handle: Any) -> None:
        """Keep the display's text/plain in step with the state (`IPython.display.DisplayHandle`
        of where the widget is shown)."""
        self._display = handle

    def _set_text(self, text: str, *, actionable: bool = False) -> None:
        if text == self._text:
            return
        self._text = text
        if self._display is None or self._closed:
            return
        # Where updates print as new lines (a terminal), only what to do is printed: the
        # outcomes are what the magic prints itself.
        if actionable or self.publish_outcomes:
            self._display.update(self)

    # -- callbacks --------------------------------------------------------------------------
    def on_cancel(self, callback: Callback) -> None:
        self._callbacks["cancel"] = callback

    def on_logout(self, callback: Callback) -> None:
        self._callbacks["logout"] = callback

    def on_retry(self, callback: Callback) -> None:
        self._callbacks["retry"] = callback

    def _fire(self, name: str) -> None:
        callback = self._callbacks.get(name)
        if callback is not None:
            callback()

    # -- what tests and people read --------------------------------------------------------------
    @property
    def status_text(self) -> str:
        """The status line's HTML (escaped text for people)."""
        return str(self._status.value)

    # -- states ---------------------------------------------------------------------------------
    def show_pending(self, url: str, note: str = "", *, cancellable: bool = True) -> None:
        """Show the Log in link and the URL while the login waits."""
        self._stop_ticker()
        self._credentials = None
        self._link.value = (
            f'<a href="{escape(url, quote=True)}" target="_blank" rel="noopener noreferrer" '
            f'style="{_LINK_STYLE}">Log in</a>'
        )
        self._url.value = url
        self._show(link=True, retry=False, cancel=cancellable, logout=False, url=True)
        self._set_status("Waiting for you to log in in the browser…" + (f" {note}" if note else ""))
        self._set_text(f"nbauth: to log in to {self._provider}, open {url}", actionable=True)

    def set_mode(self, mode: str) -> None:
        """Name the callback route in the title (local callback, via Jupyter, device code)."""
        self._mode = mode
        self._set_title("Log in to")

    def show_device(self, device: DeviceLogin, *, cancellable: bool = True,
                    note: str = "") -> None:
        """The device flow: the user code, a link to the activation page, a countdown."""
        self._stop_ticker()
        self._credentials = None
        self._device = device
        self._device_note = note
        link = device.link
        if link is not None:
            self._link.value = (
                f'<a href="{escape(link, quote=True)}" target="_blank" '
                f'rel="noopener noreferrer" style="{_LINK_STYLE}">Log in</a>'
            )
        self._show(link=link is not None, retry=False, cancel=cancellable, logout=False)
        self._qr.value = _qr_image(link) if link is not None else ""
        _hide(self._qr, not self._qr.value)
        self._render_device()
        self._start_ticker()
        self._set_text(f"nbauth: {device.instructions}", actionable=True)

    def _render_device(self) -> None:
        device = self._device
        if device is None:
            return
        self._status.value = (
            f"Open <b>{escape(device.verification_uri)}</b> in any browser and enter the code "
            f"<code style='font-size:1.2em;font-weight:700'>{escape(device.user_code)}</code> "
            f"<small>({escape(describe_remaining(device.expires_in()))}; waiting…)</small>"
            + (f"<br><small>{escape(self._device_note)}</small>" if self._device_note else "")
        )

    def update(self, status: Status) -> None:
        """Reflect a login's progress; the URL disappears once the login has ended."""
        if status.phase == Status.SUCCEEDED:
            return  # show_credentials() follows with the details
        if status.phase == Status.FAILED:
            self.show_error(status.message)
        else:
            self._set_status(status.message)

    def show_credentials(self, credentials: Credentials) -> None:
        """'Logged in as …', with time left (kept up to date) and scopes — never a token."""
        self._device = None
        self._credentials = credentials
        self._show(link=False, retry=False, cancel=False, logout=True)
        self._render_credentials()
        self._start_ticker()
        self._set_text(f"nbauth: logged in to {self._provider} as {credentials.identity.label}")

    def show_error(self, message: str, *, can_log_out: bool = False) -> None:
        """The failure in words, and the Log in button to try again (and Log out, when an
        earlier login still holds the variables)."""
        self._stop_ticker()
        self._device = None
        self._show(link=False, retry=True, cancel=False, logout=can_log_out)
        self._set_status(message, error=True)
        self._set_text(f"nbauth: {message}")

    def show_logged_out(self, message: str = "Logged out.") -> None:
        self._stop_ticker()
        self._device = None
        self._credentials = None
        self._show(link=False, retry=True, cancel=False, logout=False)
        self._set_status(message)
        self._set_text(f"nbauth: {message}")

    def close(self) -> None:
        """Free the widget and every model it is made of (ipywidgets keeps each registered,
        with its layout and style, until closed); a closed widget ignores later updates."""
        self._closed = True
        self._stop_ticker()
        parts: list[widgets.Widget] = []
        pending: list[widgets.Widget] = list(self.children)
        for _ in range(64):  # the tree is two levels deep; bounded all the same
            if not pending:
                break
            part = pending.pop()
            parts.append(part)
            pending.extend(getattr(part, "children", ()))
        for part in [*parts, self]:
            for name in ("layout", "style"):
                model = getattr(part, name, None)
                if isinstance(model, widgets.Widget):
                    model.close()
            if part is not self:
                part.close()
        super().close()

    # -- internals ------------------------------------------------------------------------------
    def _set_title(self, verb: str) -> None:
        mode = f" <small>({escape(self._mode)})</small>" if self._mode else ""
        self._title.value = f"<b>{verb} {escape(self._provider)}</b>{mode}"

    def _show(self, *, link: bool, retry: bool, cancel: bool, logout: bool,
              url: bool = False) -> None:
        self._set_title("Logged in to" if logout else "Log in to")
        self._qr.value = ""  # only show_device() puts a QR code back, after this
        _hide(self._qr, True)
        if not link:
            self._link.value = ""
        if not url:
            self._url.value = ""
        _hide(self._link, not link)
        _hide(self._url, not url)
        _hide(self._retry, not retry)
        _hide(self._cancel, not cancel)
        _hide(self._logout, not logout)

    def _render_credentials(self) -> None:
        credentials = self._credentials
        if credentials is None:
            return
        remaining = None if credentials.expires_at is None else credentials.expires_at - time.time()
        details = describe_remaining(remaining)
        if credentials.can_refresh:
            details += ", renews itself"
        if credentials.scopes:
            details += "; scopes: " + " ".join(credentials.scopes)
        problem = ""
        if credentials.refresh_error:  # the background renewal failed (a message, no secret)
            problem = ("<br><small style='color:#9a6700'>⚠ Could not renew the token yet: "
                       f"{escape(credentials.refresh_error)}</small>")
        self._status.value = (
            f"<span style='color:#1a7f37'>✔ Logged in as "
            f"<b>{escape(credentials.identity.label)}</b></span> "
            f"<small>({escape(details)})</small>{problem}"
        )

    def _start_ticker(self, seconds: float = TICK_SECONDS) -> None:
        self._stop_ticker()
        if self._closed:
            return
        ticker = threading.Timer(seconds, self._tick)
        ticker.daemon = True
        ticker.name = "nbauth-widget-ticker"
        self._ticker = ticker
        ticker.start()

    def _tick(self) -> None:
        if self._device is not None and not self._device.done():
            self._render_device()
            self._start_ticker(1.0)
            return
        if self._credentials is None or not self._credentials.valid:
            return
        self._render_credentials()
        self._start_ticker()

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _set_status(self, text: str, *, error: bool = False) -> None:
        style = " style='color:#b42318'" if error else ""
        icon = "✖ " if error else ""
        self._status.value = f"<span{style}>{icon}{escape(text)}</span>"
