"""The server extension's routes: `{base_url}nbauth/start` and `{base_url}nbauth/callback`.

Both are GETs for the logged-in owner of this server only (JupyterHub's sharing can let other
users in; they are refused). Each is a straight line of guards, as JupyterHub's own OAuth
callback: error without state → 400; no state → 400; another user → 403; unknown, used or
expired login → 400; then the browser's request is relayed to the kernel's loopback listener,
which checks the response and does the code exchange, and the outcome is rendered here.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import url_concat

from ..pages import PAGE_HEADERS, render_page
from .nexturl import safe_next
from .registry import Registration, Registry

__all__ = ["RELAY_HEADER", "CallbackHandler", "StartHandler", "handlers"]

#: The header carrying a registration's relay key to the kernel's listener.
RELAY_HEADER = "X-Nbauth-Relay"
#: The kernel completes the code exchange (with its own timeouts) before it answers.
_RELAY_TIMEOUT = 120.0
_MAX_RETURN_TO = 256


class _Page(JupyterHandler):
    """Common guards and page rendering."""

    registry: Registry
    return_to: dict[str, tuple[str, float]]

    def initialize(self, registry: Registry, return_to: dict[str, tuple[str, float]]) -> None:
        self.registry = registry
        self.return_to = return_to

    def _request_summary(self) -> str:
        # Tornado logs this line for every error and uncaught exception; the query holds the
        # login's code and state (and the start key), so it is never part of it.
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Tornado's version adds repr(request) — with the query — to the log.
        self.log.error("nbauth: %s failed with %s", self._request_summary(),
                       getattr(typ, "__name__", "an error"))

    def page(self, status: int, title: str, message: str, *, ok: bool = False,
             back: str | None = None) -> None:
        self.set_status(status)
        for name, value in PAGE_HEADERS.items():
            self.set_header(name, value)
        self.finish(render_page(title, message, ok=ok, back=back or self.base_url))

    def owner_refused(self) -> bool:
        """On JupyterHub, only the server's owner may use these routes (S-92)."""
        owner = os.environ.get("JUPYTERHUB_USER")
        user = self.current_user
        name = getattr(user, "username", None) or getattr(user, "name", None)
        if owner and name != owner:
            self.page(403, "Not your login",
                      "This login belongs to the owner of this server. Log in from your own "
                      "notebook server instead.")
            return True
        return False

    async def relay(self, registration: Registration, path: str) -> HTTPResponse | None:
        request = HTTPRequest(
            f"http://127.0.0.1:{registration.port}{path}",
            headers={RELAY_HEADER: registration.relay_key, "Accept": "application/json"},
            follow_redirects=False, connect_timeout=5.0, request_timeout=_RELAY_TIMEOUT,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError):
            response = None  # refused or reset (tornado raises these even with raise_error=False)
        if response is None or response.code == 599:  # the kernel died or was restarted
            self.page(502, "Your notebook is not listening",
                      "The kernel that started this login is no longer waiting for it. Run "
                      "the login again in your notebook.")
            return None
        return response


class StartHandler(_Page):
    """`nbauth/start?key=…`: send the browser on to the provider's login page."""

    @web.authenticated
    async def get(self) -> None:
        if self.owner_refused():
            return
        token = self.get_query_argument("key", "")
        registration = self.registry.find_start(token) if token else None
        if registration is None or registration.server != self.base_url:
            self.page(404, "Login not found", "This login link is no longer valid. Run the "
                      "login again in your notebook.")
            return
        response = await self.relay(registration, "/start/" + token)
        if response is None:
            return
        location = response.headers.get("Location")
        if response.code != 303 or not location:
            self.page(404, "Login not found", "This login link is no longer valid. Run the "
                      "login again in your notebook.")
            return
        self._remember_return(registration, self.get_query_argument("next", ""))
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.redirect(location, status=303)  # the provider's authorization URL, from the kernel

    def _remember_return(self, registration: Registration, next_url: str) -> None:
        now = time.time()
        for key, (_, expires) in list(self.return_to.items()):
            if expires <= now:
                del self.return_to[key]
        if next_url and len(self.return_to) < _MAX_RETURN_TO:
            self.return_to[registration.state_hash] = (safe_next(next_url, self.base_url),
                                                       registration.expires)


class CallbackHandler(_Page):
    """`nbauth/callback?code=…&state=…`: hand the provider's response to the waiting kernel."""

    def get_login_url(self) -> str:
        """Where `@web.authenticated` sends a browser not logged in to this server (S-90, S-95).

        Tornado would add this request's URL as `next`, so the provider's code and state would
        sit in the login page's address and in the server's "302 POST /login?next=…" log line
        (jupyter_server scrubs query keys named code or state, not their copies inside `next`).
        The login page gets the bare callback path instead; after signing in to Jupyter the
        user clicks the notebook's Log in link again (the login still waits). JupyterHub's
        login URL already has a query: it keeps the return address server-side, behind an
        opaque state, and comes back with the response, so it is left as it is.
        """
        url = super().get_login_url()
        if "?" in url:
            return url
        return url_concat(url, {"next": self.request.path})

    @web.authenticated
    async def get(self) -> None:
        state = self.get_query_argument("state", "")
        if not state:
            if self.get_query_argument("error", ""):
                self.page(400, "Login failed", "The provider sent an error that belongs to no "
                          "login of yours; it was ignored.")
            else:
                self.page(400, "Not a login response", "This address only receives the "
                          "provider's answer to a login started in your notebook. If you have "
                          "just signed in to Jupyter, click Log in in your notebook again: "
                          "the login is still waiting.")
            return
        if self.owner_refused():
            return
        registration = self.registry.claim(state, server=self.base_url)
        if registration is None:
            self.page(400, "Login not found", "No login of this server is waiting for this "
                      "response: it has finished, expired (after 10 minutes at most) or was "
                      "never started here. Run the login again in your notebook.")
            return
        back = self.return_to.pop(registration.state_hash, (self.base_url, 0.0))[0]
        response = await self.relay(registration, "/callback?" + self.request.query)
        if response is None:
            return
        try:
            outcome: Any = json.loads(response.body or b"")
            title, message, ok = str(outcome["title"]), str(outcome["message"]), bool(outcome["ok"])
        except (ValueError, KeyError, TypeError):
            title, message, ok = ("Login failed", "Your notebook gave an unexpected answer; "
                                  "see the notebook for details.", False)
        self.page(response.code if 200 <= response.code < 600 else 502, title, message,
                  ok=ok, back=back)


def handlers(base_url: str, registry: Registry) -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado routes for the extension, under the server's base URL."""
    shared: dict[str, Any] = {"registry": registry, "return_to": {}}
    prefix = base_url.rstrip("/")
    return [
        (f"{prefix}/nbauth/start", StartHandler, shared),
        (f"{prefix}/nbauth/callback", CallbackHandler, shared),
    ]
