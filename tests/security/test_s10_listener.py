"""B. The loopback listener under attack, while a real login completes (S-10 … S-17, K).

The real provider and a scripted person do the login; another *process* plays the other local
user of a shared host (attacker.py): forged callbacks, errors without the right state, foreign
Host headers (DNS rebinding), oversized requests, idle/half-open/slowloris connections and a
junk flood. The login must still succeed, the listener must stay bounded, and the socket must be
reachable on 127.0.0.1 only and by nobody else's bind.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from scripted_user import complete_login

import nbauth
from nbauth.loopback import MAX_CONNECTIONS, CallbackListener, Reply

ATTACKER = Path(__file__).with_name("attacker.py")


def _noop(params):
    return Reply(400, "no", "no")


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of LISTEN sockets on `port`, read from the kernel's socket tables."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A = TCP_LISTEN
                if width == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.append(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def _non_loopback_addresses() -> list[str]:
    addresses = set()
    for host in {socket.gethostname(), socket.getfqdn()}:
        try:
            for info in socket.getaddrinfo(host, None, socket.AF_INET):
                addresses.add(info[4][0])
        except OSError:
            continue
    try:  # the address this host would use towards the outside (no packet is sent)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            addresses.add(probe.getsockname()[0])
    except OSError:
        pass
    return sorted(a for a in addresses if not a.startswith("127."))


def test_S10_socket_is_bound_to_the_loopback_literal_only_per_the_kernel():
    listener = CallbackListener([0], _noop)
    listener.start()
    try:
        assert listener._server.socket.getsockname() == ("127.0.0.1", listener.port)
        if Path("/proc/net/tcp").exists():
            assert _listening_addresses(listener.port) == ["127.0.0.1"]
        others = _non_loopback_addresses()
        if not others:
            pytest.skip("this host has no non-loopback IPv4 address to try")
        for address in others:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, listener.port), timeout=3).close()
    finally:
        listener.close()


@pytest.mark.parametrize("address,options", [
    ("127.0.0.1", ()),
    ("127.0.0.1", ("SO_REUSEADDR",)),
    ("127.0.0.1", ("SO_REUSEPORT",)),
    ("127.0.0.1", ("SO_REUSEADDR", "SO_REUSEPORT")),
    ("0.0.0.0", ("SO_REUSEADDR",)),  # noqa: S104 - the squatter's wildcard bind under test
    ("0.0.0.0", ("SO_REUSEPORT",)),  # noqa: S104
])
def test_S12_no_other_socket_can_bind_the_listeners_port(address, options):
    """A squatter cannot share the port, whatever socket options it sets (SO_REUSEPORT would
    let the kernel hand it half of the connections, codes included)."""
    listener = CallbackListener([0], _noop)
    try:
        squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            for name in options:
                if not hasattr(socket, name):
                    pytest.skip(f"{name} does not exist on this platform")
                squatter.setsockopt(socket.SOL_SOCKET, getattr(socket, name), 1)
            with pytest.raises(OSError) as info:
                squatter.bind((address, listener.port))
                squatter.listen()
            assert info.value.errno in (errno.EADDRINUSE, errno.EACCES)
        finally:
            squatter.close()
    finally:
        listener.close()


def _loopback_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("nbauth-loopback")
               or t.name.startswith("Thread-"))


def test_S13_S14_S15_K_attacker_process_cannot_stop_or_block_a_real_login(provider):
    """Another local user's process sends forged callbacks (random and leaked-looking states,
    errors without the right state, foreign Host headers), oversized requests, idle, half-open
    and slowloris connections and a junk flood, all while the real person logs in. Every forged
    request gets a 4xx, the real callback gets through, and the listener's threads stay bounded.
    """
    pending = nbauth.start_login(provider.issuer, provider.client_id, audience=provider.audience,
                                 port=0, timeout=90)
    baseline = threading.active_count()
    attacker = subprocess.Popen(
        [sys.executable, str(ATTACKER), str(pending.port), "40"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        for _ in range(2000):  # bounded by count and by time (stop is set below)
            peak[0] = max(peak[0], threading.active_count())
            if stop.wait(0.02):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert attacker.stdout.readline().strip() == "ready"
        assert not pending.done(), "a forged request ended the login"
        started = time.monotonic()
        page = complete_login(pending.start_url)  # the real person, while the flood goes on
        credentials = pending.wait(30)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        attacker.stdin.close()  # the attacker stops within its own 40 s bound
        out = attacker.stdout.read()
        attacker.wait(60)
        watcher.join(5)
        pending.cancel()
    results = json.loads(out.strip().splitlines()[-1])
    assert "Logged in" in page and elapsed < 30
    assert credentials.identity.email == "demo@example.com"
    assert requests.get(provider.api_url, timeout=10,
                        headers={"Authorization": f"Bearer {credentials.token()}"}).status_code == 200
    # every forged request was answered with a 4xx, or dropped; none was accepted
    assert all(s is None or 400 <= s < 500 for s in results["forged"]), results["forged"]
    assert sum(s is not None for s in results["forged"]) >= len(results["forged"]) // 2
    assert results["foreign_host"] == [400, 400, 400]
    assert results["oversized"] == [414, 431, 431]
    assert results["junk"][0] >= 1
    # bounded: one thread per connection slot plus its watchdog timer, whatever the flood
    assert peak[0] <= baseline + 2 * MAX_CONNECTIONS + 8, (peak[0], baseline)


def test_S13_foreign_host_header_cannot_use_the_start_link_or_the_callback(provider):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example.
    It can neither read the authorization URL behind /start nor deliver a callback — even one
    with the right state — and the login keeps waiting for the real browser."""
    pending = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    try:
        start_path = pending.start_url.split(f":{pending.port}", 1)[1]
        state = pending._request.state

        def raw_get(path, host):
            conn = http.client.HTTPConnection("127.0.0.1", pending.port, timeout=5)
            conn.putrequest("GET", path, skip_host=True)
            conn.putheader("Host", host)
            conn.endheaders()
            response = conn.getresponse()
            result = response.status, response.getheader("Location"), response.read().decode()
            conn.close()
            return result

        for host in (f"evil.example:{pending.port}", f"localhost:{pending.port}",
                     f"127.0.0.1:{pending.port + 1}", f"127.0.0.1:{pending.port}.evil.example"):
            status, location, body = raw_get(start_path, host)
            assert status == 400 and location is None and "state=" not in body
            status, _, _ = raw_get(f"/callback?code=c&state={state}", host)
            assert status == 400
        assert not pending.done()
        assert "Logged in" in complete_login(pending.start_url)
        assert pending.wait(30).identity.email == "demo@example.com"
    finally:
        pending.cancel()


def test_S15_listener_thread_is_a_daemon_and_gone_after_success(provider):
    pending = nbauth.start_login(provider.issuer, provider.client_id, port=0, timeout=60)
    thread = pending._listener._thread
    assert thread is not None and thread.daemon
    complete_login(pending.start_url)
    pending.wait(30)
    thread.join(5)
    assert not thread.is_alive()
    CallbackListener([pending.port], _noop).close()  # the port is free again


def test_S17_a_whole_real_login_writes_no_secret_to_stdout_or_stderr(provider, capfd):
    captured = {}

    def person(url):
        redirect = complete_login(url, follow_callback=False)
        captured["redirect"] = redirect
        threading.Thread(target=requests.get, args=(redirect,), kwargs={"timeout": 10},
                         daemon=True).start()

    credentials = nbauth.login(domain=provider.issuer, client_id=provider.client_id, port=0,
                               timeout=60, open_browser=person)
    out, err = capfd.readouterr()
    from urllib.parse import parse_qs, urlsplit

    query = {k: v[0] for k, v in parse_qs(urlsplit(captured["redirect"]).query).items()}
    secrets = [query["code"], query["state"], str(credentials.token()),
               credentials._refresh_token]
    for secret in secrets:
        assert secret and secret not in out + err
    assert out == ""
    assert err.startswith("Log in at this address") and "/start/" in err
