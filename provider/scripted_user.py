"""A headless "person" who signs in on the nbauth demo provider's pages, with ``requests``.

It plays the part of a browser in tests: it opens an authorization URL, follows redirects,
fills the login form, presses *Allow* or *Deny* on the consent page and, when the provider
redirects back to the application's redirect URI, delivers that redirect to the application
(the loopback listener) just like a browser would.

Library use::

    page_text = complete_login(authorize_url)                      # browser-like
    redirect = complete_login(authorize_url, follow_callback=False)  # just the callback URL

As a browser (``BROWSER="python provider/scripted_user.py"``)::

    python provider/scripted_user.py URL

reads ``NBAUTH_SCRIPTED_USERNAME``, ``NBAUTH_SCRIPTED_PASSWORD``, ``NBAUTH_SCRIPTED_DECISION``
(allow/deny), writes nothing to stdout or stderr, logs failures to the file named by
``NBAUTH_SCRIPTED_LOG`` and exits 0 on success.

Error messages never contain authorization codes, state values or other query strings: URLs in
messages are cut to scheme, host and path.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit, urlunsplit

import requests

DEFAULT_USERNAME = "demo@example.com"
DEFAULT_PASSWORD = "nbauth-demo"  # noqa: S105 - the demo users' published password
MAX_STEPS = 12
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class ScriptedUserError(RuntimeError):
    """A step of the scripted sign-in failed (unexpected page, HTTP error, time out...)."""


class LoginRejected(ScriptedUserError):
    """The provider re-displayed the login form with an error (e.g. a wrong password)."""


# -------------------------------------------------------------------------------------------
# HTML parsing
# -------------------------------------------------------------------------------------------


@dataclass
class _Control:
    tag: str  # "input", "button", "select", "textarea"
    name: str
    value: str
    type: str
    text: str = ""


@dataclass
class _Form:
    action: str
    method: str
    form_id: str
    controls: list[_Control] = field(default_factory=list)

    def inputs(self) -> list[_Control]:
        return [
            c
            for c in self.controls
            if c.tag != "button" and c.type not in ("submit", "button", "image", "reset")
        ]

    def buttons(self) -> list[_Control]:
        return [c for c in self.controls if c.tag == "button" or c.type in ("submit", "image")]

    def has_input(self, name: str, types: Sequence[str] | None = None) -> bool:
        return any(c.name == name and (types is None or c.type in types) for c in self.inputs())

    def path(self) -> str:
        return urlsplit(self.action).path


class _PageParser(HTMLParser):
    """Collects forms (with their controls), the title, h1 and visible text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._orphans: list[tuple[str, _Control]] = []  # (form id, control) for form="..." controls
        self._current: _Form | None = None
        self._button: _Control | None = None
        self._skip = 0  # inside <script>/<style>
        self._in_title = False
        self._in_h1 = False
        self._error_depth = 0
        self.title = ""
        self.h1 = ""
        self.error_text = ""
        self.text_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("script", "style"):
            self._skip += 1
            return
        if tag == "title":
            self._in_title = True
        elif tag == "h1":
            self._in_h1 = True
        if "error" in a.get("class", "").split() or a.get("role") == "alert":
            self._error_depth += 1
        if tag == "form":
            self._current = _Form(
                action=a.get("action", ""),
                method=(a.get("method") or "get").lower(),
                form_id=a.get("id", ""),
            )
            self.forms.append(self._current)
        elif tag in ("input", "button", "select", "textarea"):
            default_type = {"input": "text", "button": "submit"}.get(tag, tag)
            control = _Control(
                tag=tag,
                name=a.get("name", ""),
                value=a.get("value", ""),
                type=(a.get("type") or default_type).lower(),
            )
            if tag == "input" and control.type in ("checkbox", "radio") and "checked" not in a:
                control.name = ""  # unchecked: not submitted
            owner = a.get("form")
            if owner:
                self._orphans.append((owner, control))
            elif self._current is not None:
                self._current.controls.append(control)
            if tag == "button":
                self._button = control

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag == "h1":
            self._in_h1 = False
        elif tag == "form":
            self._current = None
        elif tag == "button":
            self._button = None
        if tag in ("p", "div", "span") and self._error_depth:
            self._error_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data
        if self._in_h1:
            self.h1 += data
        if self._button is not None:
            self._button.text += data
        if self._error_depth:
            self.error_text += data
        if data.strip() and not self._in_title:
            self.text_parts.append(data.strip())

    def close(self) -> None:
        super().close()
        by_id = {f.form_id: f for f in self.forms if f.form_id}
        for owner, control in self._orphans:
            if owner in by_id:
                by_id[owner].controls.append(control)

    @property
    def text(self) -> str:
        return " ".join(self.text_parts)


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


# -------------------------------------------------------------------------------------------
# Helpers
# -------------------------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    """Scheme, host and path only: never the query (codes, state) nor the fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _summary(page: _PageParser, limit: int = 300) -> str:
    bits = [b.strip() for b in (page.h1 or page.title, page.error_text) if b and b.strip()]
    if not bits:
        bits = [page.text]
    text = " - ".join(dict.fromkeys(bits))
    return (text[:limit] + "...") if len(text) > limit else text


def _is_authorization_response(url: str) -> bool:
    """A redirect carrying an authorization response (``code``/``error`` with ``iss``/``state``)."""
    parts = urlsplit(url)
    params = parse_qs(parts.query)
    params.update(parse_qs(parts.fragment))
    return ("code" in params or "error" in params) and ("iss" in params or "state" in params)


def _form_data(
    form: _Form, overrides: Mapping[str, str], button: _Control | None
) -> list[tuple[str, str]]:
    data = [(c.name, c.value) for c in form.inputs() if c.name and c.name not in overrides]
    data += list(overrides.items())
    if button is not None and button.name:
        data.append((button.name, button.value))
    return data


def _pick_button(form: _Form, *, avoid_names: Sequence[str] = ("abort",)) -> _Control | None:
    for button in form.buttons():
        if button.name not in avoid_names:
            return button
    return None


@dataclass
class _Plan:
    username: str
    password: str
    decision: str
    user_code: str | None = None


@dataclass
class _Submit:
    method: str
    url: str
    data: list[tuple[str, str]] | None


class _Driver:
    """Walks the provider's pages; one instance per sign-in."""

    def __init__(self, plan: _Plan, *, timeout: float, max_steps: int = MAX_STEPS,
                 session: requests.Session | None = None) -> None:
        self.plan = plan
        self.deadline = time.monotonic() + timeout
        self.max_steps = max_steps
        self.own_session = session is None
        self.session = requests.Session() if session is None else session
        self.session.trust_env = False  # never a proxy, never .netrc credentials
        self.session.max_redirects = 10
        self.session.headers["User-Agent"] = "nbauth-scripted-user/1"
        self.login_submitted = False
        self.user_code_submitted = False
        self.denied = False

    def close(self) -> None:
        if self.own_session:
            self.session.close()

    def _remaining(self, what: str, url: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ScriptedUserError(f"timed out before {what} {_safe_url(url)}")
        return left

    def request(
        self, method: str, url: str, data: list[tuple[str, str]] | None = None
    ) -> requests.Response:
        left = self._remaining(method, url)
        try:
            return self.session.request(
                method.upper(), url, data=data, allow_redirects=False, timeout=left
            )
        except requests.RequestException as exc:
            raise ScriptedUserError(
                f"{method.upper()} {_safe_url(url)} failed: {type(exc).__name__}"
            ) from None

    def deliver(self, url: str) -> str:
        """GET the application's redirect URI like a browser and return the page's text."""
        left = self._remaining("delivering the callback to", url)
        try:
            resp = self.session.get(url, timeout=left, allow_redirects=True)
        except requests.RequestException as exc:
            raise ScriptedUserError(
                f"delivering the callback to {_safe_url(url)} failed: {type(exc).__name__}"
            ) from None
        return resp.text

    def run(self, url: str, *, follow_callback: bool, final_page_ok: bool) -> str:
        """Drive from ``url`` to the authorization response (device flow: to a final page)."""
        step: _Submit = _Submit("get", url, None)
        for _ in range(self.max_steps):
            resp = self.request(step.method, step.url, step.data)
            here = resp.url or step.url
            if resp.status_code in _REDIRECT_STATUSES and resp.headers.get("Location"):
                target = urljoin(here, resp.headers["Location"])
                if _is_authorization_response(target):
                    return self.deliver(target) if follow_callback else target
                if resp.status_code in (307, 308):
                    step = _Submit(step.method, target, step.data)
                else:
                    step = _Submit("get", target, None)
                continue
            page = _parse(resp.text)
            if resp.status_code >= 400:
                raise ScriptedUserError(
                    f"{step.method.upper()} {_safe_url(here)} answered HTTP {resp.status_code}: "
                    f"{_summary(page)}"
                )
            next_step = self._decide(page, here, final_page_ok=final_page_ok)
            if next_step is None:
                return page.text
            step = next_step
        raise ScriptedUserError(
            f"gave up after {self.max_steps} steps (last page {_safe_url(step.url)})"
        )

    def _decide(self, page: _PageParser, here: str, *, final_page_ok: bool) -> _Submit | None:
        forms = page.forms
        # 1. The login page.
        login = next(
            (
                f
                for f in forms
                if f.has_input("username") and f.has_input("password", ("password",))
            ),
            None,
        )
        if login is not None:
            if self.login_submitted:
                message = page.error_text.strip() or "the login form was shown again"
                raise LoginRejected(f"sign-in rejected at {_safe_url(here)}: {message}")
            self.login_submitted = True
            data = _form_data(
                login,
                {"username": self.plan.username, "password": self.plan.password},
                _pick_button(login),
            )
            return _Submit(login.method, urljoin(here, login.action), data)
        self.login_submitted = False

        # 2. The consent page: Allow (/confirm) or Deny (/abort).
        confirm = next((f for f in forms if f.path().endswith("/confirm")), None)
        abort = next((f for f in forms if f.path().endswith("/abort")), None)
        if confirm is not None and abort is not None:
            chosen = confirm if self.plan.decision == "allow" else abort
            self.denied = self.plan.decision == "deny"
            return _Submit(
                chosen.method,
                urljoin(here, chosen.action),
                _form_data(chosen, {}, _pick_button(chosen)),
            )

        # 3. Device flow: the user-code input form, then the confirmation form.
        code_form = next((f for f in forms if f.has_input("user_code", ("text",))), None)
        if code_form is not None:
            if self.user_code_submitted or not self.plan.user_code:
                if self.user_code_submitted and final_page_ok and self.denied:
                    return None
                detail = page.error_text.strip() or "a user code is needed"
                raise ScriptedUserError(
                    f"the device activation page {_safe_url(here)} asks for a code: {detail}"
                )
            self.user_code_submitted = True
            data = _form_data(
                code_form, {"user_code": self.plan.user_code}, _pick_button(code_form)
            )
            return _Submit(code_form.method, urljoin(here, code_form.action), data)

        # 4. Auto-submitting pages (form_post, /activate?user_code=..., device confirmation):
        #    one form whose inputs are all hidden. Press the first non-abort button.
        for form in forms:
            inputs = form.inputs()
            if inputs and all(c.type == "hidden" for c in inputs):
                if any(c.name == "user_code" for c in inputs):
                    self.user_code_submitted = True
                data = _form_data(form, {}, _pick_button(form))
                return _Submit(form.method, urljoin(here, form.action), data)

        # 5. A page without anything to do.
        if final_page_ok:
            return None
        raise ScriptedUserError(f"unexpected page at {_safe_url(here)}: {_summary(page)}")


def _check_decision(decision: str) -> str:
    decision = decision.strip().lower()
    if decision not in ("allow", "deny"):
        raise ValueError(f"decision must be 'allow' or 'deny', not {decision!r}")
    return decision


# -------------------------------------------------------------------------------------------
# Public API
# -------------------------------------------------------------------------------------------


def complete_login(
    authorize_url: str,
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    decision: str = "allow",
    follow_callback: bool = True,
    timeout: float = 20,
    session: requests.Session | None = None,
) -> str:
    """Sign in on the demo provider like a person with a browser would.

    Opens ``authorize_url`` with a fresh cookie-keeping session, follows redirects, fills the
    login form, presses *Allow* (``decision="allow"``) or *Deny* (``"deny"``) on the consent
    page and, when the provider redirects to the client's redirect URI: with
    ``follow_callback`` GETs it (delivering the code to the application's loopback listener)
    and returns the text of the page the application served; without, returns the redirect
    URL unvisited.  At most ~12 steps, all within ``timeout`` seconds.

    ``session`` lends the person's browser: e.g. one already logged in to a JupyterHub, so that
    hub cookies go along with the callback (the provider's cookies are added to it).

    Raises:
        LoginRejected: the login form came back with an error ("Wrong email or password.").
        ScriptedUserError: a page answered with an HTTP error, an unexpected page was shown,
            the application could not be reached, or time ran out.
        ValueError: ``decision`` is neither "allow" nor "deny".
    """
    plan = _Plan(username=username, password=password, decision=_check_decision(decision))
    driver = _Driver(plan, timeout=timeout, session=session)
    try:
        return driver.run(authorize_url, follow_callback=follow_callback, final_page_ok=False)
    finally:
        driver.close()


def complete_device_login(
    verification_uri: str,
    user_code: str | None = None,
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    decision: str = "allow",
    timeout: float = 20,
) -> str:
    """Approve (or deny) a device authorization on the provider's ``/activate`` page.

    ``verification_uri`` is either ``verification_uri`` (then ``user_code`` is typed into
    the form) or ``verification_uri_complete`` (the code is in the URL).  Returns the text
    of the final page ("Device activated ..." on success).

    Raises:
        LoginRejected: wrong username or password.
        ScriptedUserError: the code was refused, or another step failed.
    """
    plan = _Plan(
        username=username,
        password=password,
        decision=_check_decision(decision),
        user_code=user_code,
    )
    driver = _Driver(plan, timeout=timeout)
    try:
        return driver.run(verification_uri, follow_callback=False, final_page_ok=True)
    finally:
        driver.close()


def _log_failure(message: str) -> None:
    path = os.environ.get("NBAUTH_SCRIPTED_LOG")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} scripted_user: {message}\n")
    except OSError:
        pass


def _silence_std_streams() -> None:
    """Point fds 1 and 2 (and sys.stdout/err) at /dev/null: a kernel's cells must see nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass
    sys.stdout = open(os.devnull, "w")
    sys.stderr = open(os.devnull, "w")


def main(argv: Sequence[str] | None = None) -> int:
    """Act as a browser: ``scripted_user.py URL``.

    Silent; exit 0 on success, 1 on failure, 2 on misuse.
    """
    _silence_std_streams()
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        _log_failure(f"usage: scripted_user.py URL (got {len(args)} arguments)")
        return 2
    try:
        complete_login(
            args[0],
            username=os.environ.get("NBAUTH_SCRIPTED_USERNAME") or DEFAULT_USERNAME,
            password=os.environ.get("NBAUTH_SCRIPTED_PASSWORD") or DEFAULT_PASSWORD,
            decision=os.environ.get("NBAUTH_SCRIPTED_DECISION") or "allow",
        )
    except Exception as exc:  # all goes to the log, nothing to the console
        _log_failure(f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
