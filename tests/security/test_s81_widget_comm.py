"""J. S-81: no secret ever passes through the login widget's comm — not just in its final state.

The saved widget state (tests/test_widget.py, test_s80_kernel_leakage.py) shows only where a
login ended; a secret synced for a moment while it ran would have reached the browser (and a
collaborator's, with RTC) all the same. Here ipywidgets' comm is replaced by a recording one
(the idea of ipywidgets' own `DummyComm` harness, widgets/tests/utils.py), so every message a
login's widgets send — the comm-open with the initial state, each state update, the close —
is kept, from `%auth0_login` to the end: a real login and logout, a login the person denies
(real provider), and one whose ID token is refused after the token response (scripted
provider). The secrets are captured outside the widget: state, nonce and verifier from the
login's request, the code from the redirect, tokens and everything sent at nbauth's one I/O
layer. None may appear in any message.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import comm
import pytest
import requests
from IPython.utils.capture import capture_output
from scripted_provider import ScriptedProvider
from scripted_user import complete_login

import nbauth.http


class RecordingComm:
    """Stands in for a kernel comm: accepts everything and keeps what would be sent."""

    kernel = "recording"  # ipywidgets sends only when its comm has a kernel

    def __init__(self, messages: list[tuple[str, Any]], **kwargs: Any) -> None:
        self.comm_id = kwargs.get("comm_id") or uuid.uuid4().hex
        self.messages = messages
        self.messages.append(("open", kwargs))

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.messages.append(("open", kwargs))

    def on_msg(self, callback: Any) -> None:
        pass

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages.append(("send", {"data": data, "metadata": metadata, "buffers": buffers}))

    def close(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages.append(("close", {"data": data, "metadata": metadata}))


def as_text(message: Any) -> str:
    """A recorded message as text, binary buffers included (base64 and raw)."""
    def default(value: Any) -> str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            return raw.decode("latin-1") + " " + base64.b64encode(raw).decode()
        return repr(value)
    return json.dumps(message, default=default)


@pytest.fixture
def comm_messages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every comm message a widget created from now on sends (ipywidgets asks `comm`)."""
    messages: list[tuple[str, Any]] = []
    monkeypatch.setattr(comm, "create_comm",
                        lambda *args, **kwargs: RecordingComm(messages, **kwargs))
    return messages


#: The checklist's secrets, as nbauth sends them (RFC 6749, 7009, 7636, 8628) and receives them.
SECRET_FIELDS = ("code", "code_verifier", "refresh_token", "token", "device_code",
                 "client_secret", "access_token", "id_token")


@pytest.fixture
def wiretap(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every secret nbauth posts to the provider or gets back from it."""
    seen: list[str] = []
    post_form = nbauth.http.ProviderClient.post_form

    def secrets_in(fields: dict[str, Any]) -> list[str]:
        return [value for key, value in fields.items()
                if key in SECRET_FIELDS and isinstance(value, str)]

    def tapped(self: Any, url: str, data: dict[str, str], **kwargs: Any) -> Any:
        seen.extend(secrets_in(data))
        body = post_form(self, url, data, **kwargs)
        seen.extend(secrets_in(body))
        return body

    monkeypatch.setattr(nbauth.http.ProviderClient, "post_form", tapped)
    return seen


def start(ip, magics, domain: str, client_id: str, extra: str = ""):
    var = f"s81_{secrets.token_hex(3)}"
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {domain} --client-id {client_id} --port 0 "
                          f"--no-browser --no-wait --var {var} --session-var {var}_s {extra}")
    login = magics.logins[var]
    request = login.pending._request
    return var, login, [request.state, request.nonce, request.pkce.verifier]


def wait_for(predicate, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert predicate()


def secret_parts(values: list[str]) -> set[str]:
    """The values, and each long piece of a JWT (header, claims, signature)."""
    parts = {v for v in values if len(v) >= 8}
    parts |= {piece for v in values for piece in v.split(".") if len(piece) >= 16}
    return parts


def assert_no_secret_passed(messages: list[tuple[str, Any]], values: list[str],
                            *shown: str) -> None:
    texts = [as_text(message) for message in messages]
    assert len(texts) > 10  # the widgets were opened and updated through the recorder
    everything = "\n".join(texts)
    for text in shown:  # what the person was told did go through it
        assert text in everything, text
    leaked = [s for s in secret_parts(values) if s in everything]
    assert leaked == []


@pytest.mark.provider
def test_S81_a_whole_login_and_logout_sends_no_secret_through_the_comm(
        ip, magics, provider, comm_messages, wiretap):
    var, login, values = start(ip, magics, provider.issuer, provider.client_id,
                               f"--audience {provider.audience}")
    start_link = login.widget._url.value
    assert start_link and any(start_link in as_text(m) for m in comm_messages)
    redirect = complete_login(start_link, follow_callback=False, timeout=30)
    values += parse_qs(urlsplit(redirect).query)["code"]
    assert requests.get(redirect, timeout=30).status_code == 200
    wait_for(lambda: var in ip.user_ns and "Logged in as" in login.widget.status_text)
    values += [str(ip.user_ns[var]), login.credentials._refresh_token]
    login.credentials.refresh()  # a refresh updates the widget too
    values += [str(ip.user_ns[var]), login.credentials._refresh_token]
    login.widget._logout.click()
    wait_for(lambda: "Logged out" in login.widget.status_text)
    values += wiretap
    assert any(v.startswith("eyJ") for v in wiretap)  # an ID token was captured
    assert_no_secret_passed(comm_messages, values, "Logged in as", "Logged out")


@pytest.mark.provider
def test_S81_a_denied_login_sends_no_secret_through_the_comm(
        ip, magics, provider, comm_messages, wiretap):
    _, login, values = start(ip, magics, provider.issuer, provider.client_id,
                             f"--audience {provider.audience}")
    redirect = complete_login(login.widget._url.value, decision="deny",
                              follow_callback=False, timeout=30)
    assert parse_qs(urlsplit(redirect).query)["error"] == ["access_denied"]
    requests.get(redirect, timeout=30)
    wait_for(lambda: login.pending.done() and "✖" in login.widget.status_text)
    assert_no_secret_passed(comm_messages, values + wiretap, "access_denied")


def test_S81_a_login_whose_id_token_is_refused_sends_no_secret_through_the_comm(
        ip, magics, comm_messages, wiretap):
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens(nonce="not-the-nonce")]
                          ) as p:
        _, login, values = start(ip, magics, p.issuer, p.client_id)
        requests.get(login.widget._url.value, timeout=10)  # the stand-in sends it straight back
        wait_for(lambda: login.pending.done() and "✖" in login.widget.status_text)
        values += [call.form["code"] for call in p.calls("/oauth/token")]
    assert len(wiretap) == 5  # code, verifier; access, refresh and ID token issued, then refused
    assert_no_secret_passed(comm_messages, values + wiretap, "nonce")


def test_S81_the_recorder_catches_a_secret_a_widget_syncs_even_briefly(comm_messages):
    import ipywidgets

    secret = secrets.token_urlsafe(32)
    field = ipywidgets.Text(value="")
    field.value = secret  # synced for a moment …
    field.value = ""  # … and gone from the final state
    assert secret not in json.dumps(field.get_state())
    assert [kind for kind, _ in comm_messages].count("send") >= 2
    with pytest.raises(AssertionError):
        assert_no_secret_passed(comm_messages * 6, [secret])
    for widget in (field.layout, field.style, field):
        widget.close()
