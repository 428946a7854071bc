"""What nbauth costs a kernel: nothing heavy at %load_ext, no socket kept by a finished login.

(benchmarks/ measures the numbers; these tests hold the properties behind them.)
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from IPython.utils.capture import capture_output
from scripted_user import complete_login
from waiting import wait_for

HEAVY = ("ipywidgets", "jwt", "requests", "cryptography", "http.server", "importlib.metadata")


def test_load_ext_imports_no_http_jose_or_widget_library():
    code = (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        f"heavy = {HEAVY!r}\n"
        "before = {m for m in heavy if m in sys.modules}\n"
        "sh.run_line_magic('load_ext', 'nbauth')\n"
        "import nbauth\n"
        "loaded = sorted(m for m in heavy if m in sys.modules and m not in before)\n"
        "magics = sh.magics_manager.registry['AuthMagics']\n"
        "print(json.dumps({'loaded': loaded, 'has_login': callable(nbauth.login),\n"
        "                  'magic': 'auth0_login' in sh.magics_manager.magics['line']}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["magic"]
    # `nbauth.login` is reachable, yet loading the extension and importing the package
    # imported none of the heavy libraries: they come with the first login.
    assert out["has_login"] is True
    assert out["loaded"] == []


def test_lazy_names_resolve_and_unknown_names_fail():
    import nbauth
    from nbauth.flow import start_login

    assert nbauth.start_login is start_login
    assert "Credentials" in dir(nbauth)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        nbauth.not_a_name  # noqa: B018 - the attribute access is the test


def _open_pooled_connections(credentials) -> int:
    """Connected sockets idling in the credentials' provider-client pool (urllib3)."""
    session = credentials._client._session
    count = 0
    for adapter in session.adapters.values():
        pools = adapter.poolmanager.pools
        for key in pools.keys():
            pool = pools.get(key)
            if pool is not None and pool.pool is not None:
                count += sum(1 for conn in list(pool.pool.queue)
                             if conn is not None and conn.sock is not None)
    return count


@pytest.mark.provider
def test_a_replaced_login_keeps_no_connection_to_the_provider(ip, provider):
    magics = ip.magics_manager.registry["AuthMagics"]
    line = (f"--domain {provider.issuer} --client-id {provider.client_id} "
            f"--audience {provider.audience} --port 0 --no-browser --no-wait")
    try:
        logins = []
        for _ in range(2):
            with capture_output():
                ip.run_line_magic("auth0_login", line)
            login = magics.logins["access_token"]
            complete_login(login.widget._url.value)
            deadline = time.monotonic() + 15
            while login.credentials is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert login.credentials is not None
            logins.append((login, login.credentials))
        (first, first_credentials), (second, second_credentials) = logins
        # The newer login holds its keep-alive connection (for refreshes); the replaced one
        # was cleared and closed its own, so a displayed old widget keeps no socket alive.
        assert _open_pooled_connections(second_credentials) == 1
        assert not first_credentials.valid
        assert _open_pooled_connections(first_credentials) == 0
        assert first.pending is None
    finally:
        for login in list(magics.logins.values()):
            login.logout()
        magics.logins.clear()


def test_closing_a_listener_frees_its_port_and_thread():
    from nbauth.loopback import CallbackListener, Reply

    listener = CallbackListener([0])
    listener.start(lambda params: Reply(200, "ok", "ok"))
    port, thread = listener.port, listener._thread
    listener.close()
    assert thread is not None and not thread.is_alive()
    with socket.socket() as probe:  # the port is free again at once
        probe.bind(("127.0.0.1", port))


def test_close_racing_start_from_another_thread_never_fails():
    """A newer login closes the older listener from its own thread, maybe mid-start()."""
    import threading

    from nbauth.loopback import CallbackListener, Reply

    errors: list[BaseException] = []

    def start(listener: CallbackListener) -> None:
        try:
            listener.start(lambda params: Reply(200, "ok", "ok"))
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    deadline = time.monotonic() + 20
    for _ in range(200):
        if time.monotonic() > deadline:
            break
        listener = CallbackListener([0])
        starter = threading.Thread(target=start, args=(listener,))
        starter.start()
        listener.close()
        starter.join(timeout=5)
        assert not starter.is_alive()
        thread = listener._thread
        assert thread is None or not thread.is_alive()
    assert errors == []


@pytest.mark.provider
def test_many_logins_leave_one_refresh_timer_and_no_extra_threads(ip, provider):
    """Each live login has at most one background-refresh timer; replaced and logged-out
    logins cancel theirs, so threads return to the baseline (benchmarks/leakcheck.py)."""
    import threading

    magics = ip.magics_manager.registry["AuthMagics"]
    line = (f"--domain {provider.issuer} --client-id {provider.client_id} "
            f"--audience {provider.audience} --port 0 --no-browser --no-wait")

    def timers():
        return [t for t in threading.enumerate()
                if t.name == "nbauth-auto-refresh" and t.is_alive()]

    def settle(predicate, seconds=15.0):
        return wait_for(predicate, seconds)

    def log_in():
        with capture_output():
            ip.run_line_magic("auth0_login", line)
        login = magics.logins["access_token"]
        complete_login(login.widget._url.value)
        login.pending.wait(timeout=30)
        assert settle(lambda: login.credentials is not None, 10)
        return login

    before = set(timers())
    try:
        for _ in range(2):  # warm-up: imports, pools, the first widget's threads
            log_in()
        baseline = threading.active_count()
        for _ in range(15):
            log_in()
            assert len(set(timers()) - before) == 1
        assert settle(lambda: threading.active_count() <= baseline), (
            threading.active_count(), baseline, [t.name for t in threading.enumerate()])
        with capture_output():
            ip.run_line_magic("auth0_logout", "")
        assert settle(lambda: not set(timers()) - before, 5)
    finally:
        for login in list(magics.logins.values()):
            login.logout()
        magics.logins.clear()
