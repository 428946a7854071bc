"""I. S-70: logout when the provider's revocation endpoint misbehaves, in a real IPython shell.

The scripted stand-in (with an RFC 7009 revocation endpoint added here) answers the revoke
request with 200, with 503 and a Retry-After, with `unsupported_token_type`, or is not there at
all. In every case the login's local state is gone — the namespace variables, the credentials'
tokens, the session, the widget's logged-in state — and when the token could not be revoked
the user is told so, in the cell's output and in the widget, without any token in the words.

A 503 whose Retry-After is short (at most REVOKE_RETRY_LIMIT seconds) is waited out once and the
request sent again (RFC 7009 §2.2.1); a longer one is reported, and the refresh token is
forgotten locally whatever the provider says (the warning says it was not revoked).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from IPython.utils.capture import capture_output
from scripted_provider import ScriptedProvider, TokenAnswer

from nbauth.errors import LoginRequiredError

REVOKE = "/oauth/revoke"
TOKEN = "/oauth/token"


@dataclass
class RevokingProvider(ScriptedProvider):
    """The scripted stand-in with a revocation endpoint whose answers the test scripts."""

    revoke_answers: list[TokenAnswer] = field(default_factory=list)
    issued: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        provider = self
        base = self._server.RequestHandlerClass  # the stand-in's own handler, extended

        class Handler(base):
            def do_POST(self) -> None:
                if urlsplit(self.path).path != REVOKE:
                    super().do_POST()
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                self._record(form)
                answers = provider.revoke_answers
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                self._send(*answer(form, provider))

        self._server.RequestHandlerClass = Handler
        self.token_answers = [self._recording_good_tokens]

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "revocation_endpoint": self.issuer + REVOKE.lstrip("/")}

    def _recording_good_tokens(self, form: dict[str, str], p: ScriptedProvider):
        status, headers, body = ScriptedProvider.good_tokens()(form, p)
        self.issued.append(json.loads(body))
        return status, headers, body


SCENARIOS = {
    "revoked": (ScriptedProvider.raw(200, b"", "text/plain"), "was revoked at the provider"),
    "503_with_retry_after": (
        ScriptedProvider.raw(503, b"<h1>Service Unavailable</h1>", headers={"Retry-After": "120"}),
        "retry in 120 s"),
    "503_with_a_short_retry_after_then_200": (
        [ScriptedProvider.raw(503, b"", headers={"Retry-After": "1"}),
         ScriptedProvider.raw(200, b"", "text/plain")],
        "was revoked at the provider"),
    "unsupported_token_type": (
        ScriptedProvider.oauth_error("unsupported_token_type", 400,
                                     error_description="refresh tokens cannot be revoked here"),
        "unsupported_token_type"),
    "unreachable": (None, "could not be revoked"),
}


def log_in(ip, magics, p: RevokingProvider, var: str):
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {p.issuer} --client-id {p.client_id} "
                          f"--port 0 --no-browser --no-wait --var {var} "
                          f"--session-var {var}_session")
    login = magics.logins[var]
    # The person opens the widget's link; the stand-in signs them in and sends them back.
    assert requests.get(login.widget._url.value, timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while var not in ip.user_ns and time.monotonic() < deadline:
        time.sleep(0.02)
    assert var in ip.user_ns and login.credentials is not None
    return login


def widget_text(widget) -> str:
    """Everything the widget's children hold as text (what would be synced to the browser)."""
    values = [str(getattr(child, "value", "")) for child in widget.children]
    values += [str(getattr(grandchild, "value", "")) for child in widget.children
               for grandchild in getattr(child, "children", ())]
    return "\n".join(values)


@pytest.mark.parametrize("how", ["magic", "widget_button"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_S70_logout_clears_local_state_and_warns_without_a_token(ip, magics, scenario, how):
    answer, expected = SCENARIOS[scenario]
    var = f"s70_{secrets.token_hex(3)}"
    answers = answer if isinstance(answer, list) else [answer] if answer else []
    with RevokingProvider(revoke_answers=list(answers)) as p:
        login = log_in(ip, magics, p, var)
        credentials, session = login.credentials, ip.user_ns[f"{var}_session"]
        issued = p.issued[-1]
        tokens = [issued["access_token"], issued["refresh_token"], issued["id_token"]]
        assert credentials._refresh_token == issued["refresh_token"]
        if answer is None:
            p.__exit__(None, None, None)  # the provider goes away before the logout
        with capture_output() as out:
            if how == "magic":
                ip.run_line_magic("auth0_logout", f"--var {var}")
            else:
                login.widget._logout.click()
        revokes = p.calls(REVOKE)

    said = out.stdout + out.stderr
    status = login.widget.status_text
    # local state is gone, whatever the provider answered
    assert var not in ip.user_ns and f"{var}_session" not in ip.user_ns
    assert var not in ip.user_ns_hidden and f"{var}_session" not in ip.user_ns_hidden
    assert login.credentials is None and not credentials.valid
    assert credentials._refresh_token is None
    with pytest.raises(LoginRequiredError):
        session.get(p.issuer, timeout=5)
    assert "Logged out" in status and "stays valid" in status
    assert login.widget._logout.layout.display == "none"  # no logged-in controls are left
    assert login.widget._retry.layout.display != "none"
    # the provider was asked the RFC 7009 way: once, or again after a short Retry-After
    if answer is None:
        assert revokes == []
    else:
        assert len(revokes) == len(answers)
        for revoke in revokes:
            assert revoke.form == {"token": issued["refresh_token"],
                                   "token_type_hint": "refresh_token", "client_id": p.client_id}
    # the user is told what happened — and warned when it did not work
    where = [status] + ([said] if how == "magic" else [])
    for text in where:
        assert expected in text
        if "revoked at the provider" not in expected:
            assert "Warning" in text and "could not be revoked" in text
    # … with no token in the words, nor anywhere in the widget
    for text in (said, status, widget_text(login.widget)):
        for token in tokens:
            assert token not in text
            assert token[:16] not in text
