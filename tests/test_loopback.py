"""The loopback listener with real sockets (RFC 8252 §7.3, §8.3; S-10 … S-17)."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from nbauth.errors import LoopbackBindError
from nbauth.loopback import CallbackListener, Reply, host_matches


def get(port, path, host=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


class Recorder:
    def __init__(self, final_on=None):
        self.calls = []
        self.final_on = final_on

    def __call__(self, params):
        self.calls.append(dict(params))
        if params.get("state") == self.final_on:
            return Reply(200, "Logged in", f"hello <{params.get('who', '')}>", ok=True, final=True)
        return Reply(400, "Not for this login", "ignored")


@pytest.fixture
def listener():
    handler = Recorder(final_on="good")
    lst = CallbackListener([0], handler)
    lst.start()
    yield lst, handler
    lst.close()


def listener_threads():
    return [t for t in threading.enumerate() if t.name.startswith("nbauth-loopback-")
            and t.name != "nbauth-loopback-close"]


def test_binds_the_loopback_literal_only(listener):
    lst, _ = listener
    assert lst._server.socket.getsockname()[0] == "127.0.0.1"
    assert lst.redirect_uri == f"http://127.0.0.1:{lst.port}/callback"


def test_second_bind_on_the_same_port_fails_fast_with_the_url_to_register(listener):
    lst, _ = listener
    started = time.monotonic()
    with pytest.raises(LoopbackBindError) as info:
        CallbackListener([lst.port], Recorder())
    assert time.monotonic() - started < 2
    assert str(lst.port) in str(info.value)
    assert f"http://127.0.0.1:{lst.port}/callback" in str(info.value)


def test_port_list_falls_through_to_a_free_port(listener):
    lst, _ = listener
    other = CallbackListener([lst.port, 0], Recorder())
    try:
        assert other.port not in (lst.port, 0)
    finally:
        other.close()


def test_port_held_by_another_program_is_reported():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        with pytest.raises(LoopbackBindError, match="in use"):
            CallbackListener([blocker.getsockname()[1]], Recorder())
    finally:
        blocker.close()


def test_port_this_user_may_not_bind_is_not_called_in_use(monkeypatch):
    # (as root every port binds, so the kernel's EACCES is played by the server class)
    import errno

    from nbauth import loopback

    def refuse(self, port, owner):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(loopback._Server, "__init__", refuse)
    with pytest.raises(LoopbackBindError) as caught:
        CallbackListener([80], Recorder())
    message = str(caught.value)
    assert "may not listen on port 80" in message and "in use" not in message
    assert "--port N" in message and "tried: http://127.0.0.1:80/callback" in message


@pytest.mark.parametrize("path,status", [
    ("/favicon.ico", 404), ("/", 404), ("/callback", 400), ("/callback?", 400),
    ("/callbackx?state=good", 404), ("/callback?state=a&state=good", 400),
])
def test_stray_requests_get_4xx_and_the_listener_keeps_waiting(listener, path, status):
    lst, handler = listener
    assert get(lst.port, path)[0] == status
    assert get(lst.port, "/callback?state=wrong&code=x")[0] == 400
    assert not lst.closed
    assert get(lst.port, "/callback?state=good&code=x")[0] == 200


def test_empty_connection_does_not_end_the_wait(listener):
    lst, _ = listener
    socket.create_connection(("127.0.0.1", lst.port), timeout=2).close()
    assert get(lst.port, "/callback?state=good&code=x")[0] == 200


def test_foreign_host_header_is_refused(listener):
    lst, handler = listener
    status, _, _ = get(lst.port, "/callback?state=good&code=x", host=f"evil.example:{lst.port}")
    assert status == 400 and handler.calls == []
    assert get(lst.port, "/callback?state=good&code=x")[0] == 200


@pytest.mark.parametrize("host,port,ok", [
    ("127.0.0.1:8765", 8765, True),
    ("127.0.0.1:80", 80, True),
    ("127.0.0.1", 80, True),        # what a browser sends for http://127.0.0.1:80/
    ("127.0.0.1", 8765, False),
    ("localhost:8765", 8765, False),
    ("evil.example", 80, False),
    ("127.0.0.1:8765 ", 8765, False),
    ("", 8765, False),
])
def test_the_host_header_must_name_the_listener(host, port, ok):
    assert host_matches(host, port) is ok


def test_post_is_refused(listener):
    lst, _ = listener
    conn = http.client.HTTPConnection("127.0.0.1", lst.port, timeout=5)
    conn.request("POST", "/callback?state=good&code=x", body=b"")
    assert conn.getresponse().status == 405
    conn.close()


def test_page_is_escaped_and_inert(listener):
    lst, _ = listener
    status, headers, body = get(lst.port, "/callback?state=good&code=x&who=%3Cscript%3E")
    assert status == 200
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "http" not in body.split("<body>")[1].lower().replace("http://127", "")  # no links


def test_final_reply_closes_the_port_and_ends_the_thread(listener):
    lst, _ = listener
    port = lst.port
    assert get(port, "/callback?state=good&code=x")[0] == 200
    deadline = time.monotonic() + 5
    while (not lst.closed or listener_threads()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lst.closed and not listener_threads()
    # Nothing listens there any more. (Binding the port again would race with every other
    # process on the machine for an ephemeral port; a refused connection says the same.)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_nothing_is_written_to_stderr(listener, capfd):
    lst, _ = listener
    get(lst.port, "/callback?state=wrong&code=SECRETCODE")
    get(lst.port, "/nope?code=SECRETCODE")
    get(lst.port, "/callback?state=good&code=SECRETCODE")
    out, err = capfd.readouterr()
    assert "SECRETCODE" not in out + err
    assert err == ""


def test_slow_clients_do_not_block_the_real_callback(listener):
    lst, _ = listener
    slow = [socket.create_connection(("127.0.0.1", lst.port), timeout=5) for _ in range(8)]
    try:
        for s in slow:
            s.sendall(b"GET /callback?sta")  # never finishes its request line
        started = time.monotonic()
        assert get(lst.port, "/callback?state=good&code=x")[0] == 200
        assert time.monotonic() - started < 2
    finally:
        for s in slow:
            s.close()


def test_oversized_request_line_is_refused(listener):
    lst, _ = listener
    status, _, _ = get(lst.port, "/callback?state=" + "a" * 70_000)
    assert status == 414
    assert get(lst.port, "/callback?state=good&code=x")[0] == 200


def test_close_is_idempotent_and_frees_the_port():
    lst = CallbackListener([0], Recorder())
    lst.start()
    port = lst.port
    lst.close()
    lst.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_trickling_connections_are_evicted_so_the_real_callback_gets_through(listener):
    """16 clients each send a byte now and then (never a whole request): they occupy every
    connection slot, yet the real browser's callback is served at once."""
    lst, _ = listener
    trickle = [socket.create_connection(("127.0.0.1", lst.port), timeout=5) for _ in range(16)]
    try:
        for s in trickle:
            s.sendall(b"G")
        time.sleep(0.3)
        for s in trickle:
            s.sendall(b"E")
        started = time.monotonic()
        assert get(lst.port, "/callback?state=good&code=x")[0] == 200
        assert time.monotonic() - started < 3
    finally:
        for s in trickle:
            s.close()


def test_a_connection_gets_a_bounded_time_in_all(monkeypatch):
    import nbauth.loopback as loopback

    monkeypatch.setattr(loopback, "CONNECTION_TIMEOUT", 1.0)
    lst = CallbackListener([0], Recorder())
    lst.start()
    try:
        conn = socket.create_connection(("127.0.0.1", lst.port), timeout=5)
        started = time.monotonic()
        closed = False
        for _ in range(20):  # a byte every 0.25 s: each read is quick, the whole is not
            try:
                conn.sendall(b"x")
                if conn.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.25)
        assert closed and time.monotonic() - started < 3
        conn.close()
    finally:
        lst.close()
