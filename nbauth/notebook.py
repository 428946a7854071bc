"""One login as a notebook shows it: the flow, its widget, and the namespace variables.

`NotebookLogin` wires `start_login` to a `LoginWidget` and to the user's namespace: it starts
(and restarts) logins, cancels them, logs out, and keeps `access_token` current after refreshes
— which the credentials do in the background (`Credentials.start_auto_refresh`), so a cell
that only uses the `access_token` string never sends an expired token.
It only ever removes or rebinds a namespace entry that still holds the object it put there, so
two logins sharing a session variable cannot delete each other's.
Widget buttons may be clicked from another thread than the cell's (JupyterLab runs comm
messages on a subshell while a cell waits), so everything here is safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
import webbrowser
from typing import Any

from .authorize import DEFAULT_SCOPE
from .config import LoginSettings
from .credentials import Credentials
from .device import DeviceLogin, start_device_login
from .errors import (
    ConfigurationError,
    LoginCancelledError,
    NbauthError,
)
from .flow import PendingLogin, Status, start_login
from .machine import MachineCredentials, client_credentials
from .remember import forget_remembered, keep_remembered, remember_refusal, resume_login
from .route import CallbackRoute, choose_route
from .widget import LoginWidget

__all__ = ["NotebookLogin", "in_remote_session"]


def in_remote_session() -> bool:
    """JupyterHub (and Binder) kernels run on another machine than the user's browser."""
    return bool(os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
                or os.environ.get("BINDER_SERVICE_HOST"))


def _note(message: str) -> None:
    """A warning for the person at the notebook (stderr shows in the cell's output)."""
    print(f"nbauth: {message}", file=sys.stderr, flush=True)


#: Logins holding variables in some shell's namespace (to say who owns a shared session name).
_live_logins: weakref.WeakSet[NotebookLogin] = weakref.WeakSet()
_live_lock = threading.Lock()


def _cell_run(shell: Any) -> tuple[str, str] | None:
    """(cell id, execution id) of the cell running now, or None where the frontend sends no
    cell id. JupyterLab, Notebook 7 and VS Code send ``cellId`` in each execute request's
    metadata; a re-run of that cell clears its outputs, the widgets shown there among them."""
    parent = getattr(shell, "parent_header", None)
    if not isinstance(parent, dict):
        return None
    metadata = parent.get("metadata")
    header = parent.get("header")
    cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
    msg_id = header.get("msg_id") if isinstance(header, dict) else None
    if isinstance(cell_id, str) and cell_id and isinstance(msg_id, str) and msg_id:
        return cell_id, msg_id
    return None


def _has_frontend(shell: Any) -> bool:
    """Whether a frontend can show widgets: a kernel's shell (a terminal IPython has none)."""
    return getattr(shell, "kernel", None) is not None


def _open_in_background(url: str) -> None:
    # webbrowser can block (it waits for $BROWSER or xdg-open); the kernel must not.
    threading.Thread(target=webbrowser.open, args=(url,), kwargs={"new": 2},
                     name="nbauth-open-browser", daemon=True).start()


class NotebookLogin:
    """The login shown under one variable name, with its widget and namespace entries."""

    def __init__(self, shell: Any, settings: LoginSettings,
                 replaces: NotebookLogin | None = None, *,
                 cancel_while_waiting: bool = True) -> None:
        self.shell = shell
        self.settings = settings
        # False when the cell will block so that widget clicks wait until it ends (kernelwait).
        self.cancel_while_waiting = cancel_while_waiting
        self.widget = LoginWidget(settings.domain)
        self.widget.publish_outcomes = _has_frontend(shell)
        self._cell_run = _cell_run(shell)
        if replaces is not None and replaces._widget_unseen_after(self):
            replaces.widget.close()  # nothing can show it again; ipywidgets would keep it
        if replaces is not None and replaces.credentials is None:
            # It never logged in (failed, cancelled, superseded): what this one replaces is
            # the login that still holds the variables, if any.
            replaces = replaces.replaced_login
        self._replaces: NotebookLogin | None = replaces  # holds the variable; retired on success
        self.pending: PendingLogin | DeviceLogin | None = None
        self.credentials: Credentials | None = None
        #: How the last login completed without a browser ("remembered login", …), or None.
        self.how: str | None = None
        self._device_settled = threading.Event()  # set when a device poller is done
        self._remember = settings.remember and not settings.client_credentials
        self._lock = threading.RLock()
        #: What this login put in the namespace, by name: it removes or rebinds only those.
        self._bound: dict[str, object] = {}
        self.widget.on_cancel(lambda: self.cancel("Login cancelled in the widget."))
        self.widget.on_logout(self._logout_from_widget)
        self.widget.on_retry(self._retry)

    # -- actions ----------------------------------------------------------------------------
    def start(self) -> PendingLogin | DeviceLogin | None:
        """Begin a login (superseding this one's pending login) and show what to do.

        The callback route is chosen first and shown with the exact redirect URI, so the user
        sees what to register before anything else happens. Returns None when the login
        completed at once (a remembered login, client credentials).
        """
        self._note_shared_session_var()
        if self.settings.client_credentials:
            self._start_machine()
            return None
        if self._remember and self._resume():
            return None
        settings = self.settings
        try:
            route = choose_route(settings.callback, settings.public_url)
        except NbauthError as exc:
            self._show_failure(str(exc))
            raise
        self.widget.set_mode(route.label)
        if route.mode == "device":
            return self._start_device(route)
        with self._lock:
            try:
                pending = start_login(
                    settings.domain, settings.client_id, audience=settings.audience,
                    scope=settings.scope, port=settings.ports, timeout=settings.timeout,
                    extra_params=settings.extra_params, route=route,
                )
            except NbauthError as exc:
                self._show_failure(str(exc))
                raise
            self.pending = pending
        note = (f"({route.reason}; this login waits up to {pending.timeout / 60:g} min)"
                if route.mode == "jupyter" else f"(callback {pending.redirect_uri})")
        # The provider shows these mistakes on its own page and never calls back (RFC 6749
        # §4.1.2.1): only the words here can tell the user what to check.
        note += (" If the provider shows an error page instead of its sign-in, check the "
                 "client id and that this callback URL is registered for the application.")
        if not self.cancel_while_waiting:
            note += " To cancel, interrupt the kernel."
        self.widget.show_pending(pending.start_url, note=note,
                                 cancellable=self.cancel_while_waiting)
        pending.on_status(lambda status: self._on_status(pending, status))
        if settings.open_browser and route.mode == "loopback" and not in_remote_session():
            _open_in_background(pending.start_url)
        return pending

    def _resume(self) -> bool:
        """Log in with the remembered refresh token, if there is one the provider accepts."""
        settings = self.settings
        refusal = remember_refusal(settings.allow_remember_on_shared_hosts)
        if refusal is not None:
            self._remember = False
            _note(refusal)
            return False
        try:
            credentials = resume_login(settings.domain, settings.client_id,
                                       audience=settings.audience, scope=settings.scope,
                                       warn=_note)
        except NbauthError as exc:
            self._show_failure(str(exc))
            raise
        if credentials is None:
            return False
        with self._lock:
            self.pending = None
            self.how = "remembered login, no browser needed"
        self._install(credentials, remember=False)  # resume_login keeps it remembered
        return True

    def _start_machine(self) -> None:
        """Client credentials: a token for the confidential client, cached until near expiry."""
        settings = self.settings
        scope = None if settings.scope == DEFAULT_SCOPE else settings.scope
        try:
            credentials = client_credentials(settings.domain, settings.client_id,
                                             audience=settings.audience, scope=scope,
                                             configured_secret=settings.client_secret)
        except NbauthError as exc:
            self._show_failure(str(exc))
            raise
        with self._lock:
            self.pending = None
            self.how = "client credentials"
        self._install(credentials, replace_previous=False)

    def _start_device(self, route: CallbackRoute) -> DeviceLogin:
        """RFC 8628: show the user code and link; poll on a background thread."""
        settings = self.settings
        with self._lock:
            try:
                device = start_device_login(settings.domain, settings.client_id,
                                            audience=settings.audience, scope=settings.scope,
                                            timeout=settings.timeout)
            except NbauthError as exc:
                error: NbauthError = exc
                if route.fallback_reason:  # nbauth chose the device flow: say why, and the ways out
                    error = ConfigurationError(
                        f"{route.fallback_reason} nbauth tried the device flow instead, and the "
                        f"provider refused it: {exc} Either make the callback possible (see "
                        "above) or enable the Device Code grant for this application."
                    )
                self._show_failure(str(error))
                raise error from None
            self.pending = device
        self.widget.show_device(device, cancellable=self.cancel_while_waiting,
                                note=route.fallback_reason or "")
        self._device_settled.clear()
        threading.Thread(target=self._poll_device, args=(device,), name="nbauth-device-poll",
                         daemon=True).start()
        return device

    def _poll_device(self, device: DeviceLogin) -> None:
        try:
            try:
                credentials = device.wait()
            except NbauthError as exc:
                if device is self.pending:
                    self._show_failure(str(exc))
                return
            except BaseException:  # a daemon thread must end quietly
                return
            if device is self.pending:
                self._install(credentials)
        finally:
            self._device_settled.set()  # a waiting cell reports after the widget has its say

    def _show_failure(self, message: str) -> None:
        """The failure in the widget, and, when an earlier login still holds the variables,
        that it does and how to end it."""
        earlier = self._earlier_credentials()
        if earlier is None:
            self.widget.show_error(message)
            return
        self.widget.show_error(
            f"{message} Your earlier login as {earlier.identity.label} still holds "
            f"{self.settings.var}; Log out ends it.", can_log_out=True)

    def _pending_or_done(self) -> PendingLogin | DeviceLogin | Credentials:
        """What a wait waits for: the pending login, or the credentials of one that completed
        at once (a remembered or client-credentials login)."""
        pending = self.pending
        if pending is not None:
            return pending
        if self.credentials is not None:
            return self.credentials
        raise LoginCancelledError("No login is pending.")

    def wait(self) -> Credentials:
        """Block until the pending login ends (Ctrl-C / kernel interrupt cancels it)."""
        pending = self._pending_or_done()
        if isinstance(pending, Credentials):
            return pending
        try:
            credentials = pending.wait()
        except KeyboardInterrupt:
            # As in wait_async: one line in nbauth's words, not a traceback through its frames.
            how = "kernel interrupt" if _has_frontend(self.shell) else "Ctrl-C"
            self._show_failure(f"Login cancelled: interrupted ({how}).")
            raise LoginCancelledError(f"The login was interrupted ({how}).") from None
        if isinstance(pending, DeviceLogin):  # its poller installs the credentials: let it
            self._device_settled.wait(timeout=5)
        return credentials

    async def wait_async(self) -> Credentials:
        """Await the pending login; widget messages (Cancel) are handled meanwhile."""
        pending = self._pending_or_done()
        if isinstance(pending, Credentials):
            return pending
        try:
            while not pending.done():
                await asyncio.sleep(0.05)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # A kernel interrupt cancels an awaiting cell; say what it did in nbauth's words
            # (a bare CancelledError would not tell the user the login was stopped).
            pending.cancel("The login was interrupted.")
            how = "kernel interrupt" if _has_frontend(self.shell) else "Ctrl-C"
            self._show_failure(f"Login cancelled: interrupted ({how}).")
            raise LoginCancelledError(f"The login was interrupted ({how}).") from None
        credentials = pending.wait(timeout=0)
        if isinstance(pending, DeviceLogin):  # its poller installs the credentials: let it
            for _ in range(100):  # at most 5 s
                if self._device_settled.is_set():
                    break
                await asyncio.sleep(0.05)
        return credentials

    def cancel(self, reason: str = "Login cancelled.") -> None:
        """Stop the pending login, if any, and free its port."""
        pending = self.pending
        if pending is not None and not pending.done():
            pending.cancel(reason)
            if isinstance(pending, DeviceLogin):  # its poller may sleep a while before noticing
                self._show_failure(reason)

    def supersede(self) -> None:
        """End the pending login because a newer one for the same variable starts."""
        pending = self.pending
        if isinstance(pending, DeviceLogin):
            pending.cancel("A newer login replaced this one.")
        elif pending is not None and not pending.done():
            pending._supersede()

    def _widget_unseen_after(self, newer: NotebookLogin) -> bool:
        """Whether this login's widget has no view left once `newer` is shown: the same
        cell was run again (its output was cleared), or no frontend shows widgets at all."""
        if not _has_frontend(self.shell):
            return True
        mine, theirs = self._cell_run, newer._cell_run
        return mine is not None and theirs is not None and mine[0] == theirs[0] \
            and mine[1] != theirs[1]

    @property
    def replaced_login(self) -> NotebookLogin | None:
        """The earlier login this one takes over from when it succeeds, or None."""
        return self._replaces

    def holding_credentials(self) -> Credentials | None:
        """The credentials under this login's variable, live or ended: its own, else those of
        the earlier login that keeps the variables while this one failed or waits."""
        if self.credentials is not None:
            return self.credentials
        return None if self._replaces is None else self._replaces.credentials

    def _earlier_credentials(self) -> Credentials | None:
        """The live credentials of the login this one would replace (it keeps the variables
        until this one succeeds)."""
        earlier = self._replaces
        credentials = None if earlier is None else earlier.credentials
        return credentials if credentials is not None and credentials.valid else None

    def logout(self) -> str:
        """Revoke and forget the credentials, remove the namespace variables; say what happened.

        An earlier login for the same variable, which keeps the variables until this one
        succeeds (a re-run that failed or is still waiting), ends too.
        """
        earlier, self._replaces = self._replaces, None
        outcome = self._logout_here()
        if earlier is not None and earlier.credentials is not None:
            outcome = earlier.logout()  # this one never logged in: the earlier one's words
            self.widget.show_logged_out(outcome)
        return outcome

    def _logout_here(self) -> str:
        with self._lock:
            self.cancel("Logged out before the login finished.")
            credentials, self.credentials = self.credentials, None
            outcome = "Logged out."
            if credentials is not None:
                outcome = f"Logged out. {credentials.logout()}"
                if not isinstance(credentials, MachineCredentials):
                    forgotten = forget_remembered(credentials, scope=self.settings.scope)
                    if forgotten:
                        outcome += f" {forgotten}"
                end_session = credentials.end_session_url()
                if end_session:
                    outcome += f" To end your session at the provider too, open {end_session}"
            kept = [name for name in self._bound if not self._owns(name)
                    and name in self.shell.user_ns]
            removed = []
            for name, mine in self._bound.items():
                if self._owns(name):
                    self.shell.user_ns.pop(name, None)
                    removed.append(name)
                if self.shell.user_ns_hidden.get(name) is mine:
                    self.shell.user_ns_hidden.pop(name, None)
            self._bound = {}
        with _live_lock:
            _live_logins.discard(self)
        if removed:  # said first: what the user's namespace lost
            outcome = outcome.replace(
                "Logged out.", f"Logged out. Removed {' and '.join(removed)}.", 1)
        if kept:
            names = " and ".join(f"`{name}`" for name in kept)
            outcome += (f" {names} now {'holds' if len(kept) == 1 else 'hold'} something else "
                        "(another login's, or your own) and "
                        f"{'was' if len(kept) == 1 else 'were'} left as is.")
        self.widget.show_logged_out(outcome)
        return outcome

    def _logout_from_widget(self) -> None:
        self.logout()

    def retire(self, message: str, keep: Credentials | None = None) -> None:
        """A newer login took over this variable: drop the credentials, keep the namespace."""
        with self._lock:
            self.supersede()
            credentials, self.credentials = self.credentials, None
            if credentials is not None and credentials is not keep:
                credentials.end_replaced()
            # The widget stays displayed (and alive) in its cell; let it hold nothing else.
            self.pending = None
            self._bound = {}
        with _live_lock:
            _live_logins.discard(self)
        self.widget.show_logged_out(message)

    # -- internals --------------------------------------------------------------------------
    def _retry(self) -> None:
        try:
            self.start()
        except NbauthError:
            pass  # already shown in the widget

    def _on_status(self, pending: PendingLogin, status: Status) -> None:
        if pending is not self.pending:
            return  # an older attempt: a newer one owns the widget now
        if status.phase == Status.FAILED:
            self._show_failure(status.message)
        else:
            self.widget.update(status)
        credentials = pending.result()
        if status.phase == Status.SUCCEEDED and credentials is not None:
            self._install(credentials)

    def _install(self, credentials: Credentials, *, remember: bool | None = None,
                 replace_previous: bool = True) -> None:
        if self._remember if remember is None else remember:
            keep_remembered(credentials, scope=self.settings.scope, warn=_note)
        with self._lock:
            previous, self.credentials = self.credentials, credentials
            if previous is not None and previous is not credentials and replace_previous:
                previous.clear()
            replaced, self._replaces = self._replaces, None
        if replaced is not None:
            replaced.retire("Replaced by a newer login for the same variable.", keep=credentials)
        with self._lock:
            bound = {self.settings.var: credentials.current_token,
                     self.settings.session_var: credentials.session()}
            # interactive=False: hidden from %who/%whos (which print part of a string's value).
            self.shell.push(bound, interactive=False)
            self._bound = dict(bound)
        with _live_lock:
            _live_logins.add(self)
        credentials.on_change(self._on_credentials_change)
        # Renew before expiry without anyone asking, so `access_token` itself stays usable.
        credentials.start_auto_refresh()
        self.widget.show_credentials(credentials)

    def _owns(self, name: str) -> bool:
        """Whether the namespace entry `name` is still the object this login put there."""
        mine = self._bound.get(name)
        return mine is not None and self.shell.user_ns.get(name) is mine

    def _note_shared_session_var(self) -> None:
        """Say so when this login is about to take a session variable another login holds."""
        name = self.settings.session_var
        with _live_lock:
            others = list(_live_logins)
        for other in others:
            if other is self or other is self._replaces or other.shell is not self.shell:
                continue
            credentials = other.credentials
            if credentials is not None and credentials.valid and other._owns(name):
                _note(f"`{name}` holds the session of the login under `{other.settings.var}`; "
                      f"this login (`{self.settings.var}`) will take it over. Pass "
                      "--session-var NAME to keep both.")
                return

    def _on_credentials_change(self, credentials: Credentials) -> None:
        if credentials is not self.credentials:
            return
        if credentials.valid:
            with self._lock:
                name = self.settings.var
                if self._owns(name):  # not a variable the user has reassigned meanwhile
                    token = credentials.current_token
                    self.shell.push({name: token}, interactive=False)
                    self._bound[name] = token
            self.widget.show_credentials(credentials)
        elif credentials.end_reason == "refused":
            self.widget.show_logged_out(
                "The provider no longer accepts this login (its refresh token expired or was "
                "revoked), so the token cannot be renewed. Click Log in to sign in again.")
        else:
            self.widget.show_logged_out("The login has ended: click Log in (or run "
                                        "%auth0_login) to sign in again.")
