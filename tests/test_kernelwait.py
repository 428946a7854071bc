"""The login cell in a real ipykernel: awaited where the kernel allows it, plain everywhere else.

Users wrap cells in %%time and %%capture, reset their namespace, and interrupt waiting logins;
none of that may break %auth0_login (kernelwait rewrites only the cell the kernel was sent).
"""

from __future__ import annotations

import queue
import socket
import time

import pytest
from kernel_frontend import FrontendKernel

pytestmark = [pytest.mark.provider, pytest.mark.kernel]

TIMED_OUT = "LoginTimeoutError"
LOGIN = "%auth0_login --no-browser --port 0 --timeout 2"


class Kernel(FrontendKernel):
    """A real kernel with the demo provider's settings in its environment."""

    def __init__(self, provider):
        super().__init__({"AUTH0_DOMAIN": provider.issuer,
                          "AUTH0_CLIENT_ID": provider.client_id, "BROWSER": "true"})

    def collect(self, msg_id, timeout=60):
        """Outputs of one cell: its text and its errors (ename: evalue)."""
        result = super().collect(msg_id, timeout=timeout)
        return result.text, result.errors

    def run(self, code, timeout=60):
        return self.collect(self.send(code), timeout)


@pytest.fixture
def kernel(provider):
    k = Kernel(provider)
    try:
        assert k.run("%load_ext nbauth") == ("", [])
        yield k
    finally:
        k.close()


def only_error(errors):
    assert len(errors) == 1, errors
    return errors[0]


def test_login_inside_time_cell_magic_runs_and_times_out_cleanly(kernel):
    text, errors = kernel.run(f"%%time\n{LOGIN}")
    assert only_error(errors).startswith(TIMED_OUT)  # not "SyntaxError: 'await' outside function"
    assert "Wall time" in text


def test_login_inside_capture_cell_magic_runs_and_times_out_cleanly(kernel):
    _, errors = kernel.run(f"%%capture captured\n{LOGIN}")
    # not "RuntimeError: This event loop is already running"
    assert only_error(errors).startswith(TIMED_OUT)


def test_login_after_reset_still_works(kernel):
    assert kernel.run("%reset -f") == ("", [])
    _, errors = kernel.run(LOGIN)
    assert only_error(errors).startswith(TIMED_OUT)  # not NameError


def test_login_after_reload_ext_still_works(kernel):
    assert kernel.run("%reload_ext nbauth") == ("", [])
    _, errors = kernel.run(LOGIN)
    assert only_error(errors).startswith(TIMED_OUT)


def test_login_called_from_a_function_blocks_and_times_out_cleanly(kernel):
    _, errors = kernel.run("def f():\n    get_ipython().run_line_magic('auth0_login', "
                           "'--no-browser --port 0 --timeout 2')\nf()")
    assert only_error(errors).startswith(TIMED_OUT)


@pytest.mark.parametrize("cell", [
    "%auth0_login --no-browser --port 0 --timeout 120",
    # a blocked wait (no await possible inside a function): the same one-line outcome
    "def f():\n    get_ipython().run_line_magic('auth0_login', "
    "'--no-browser --port 0 --timeout 120')\nf()",
], ids=["awaited", "blocked"])
def test_interrupt_cancels_the_waiting_login_and_frees_its_port(kernel, cell):
    msg_id = kernel.kc.execute(cell)
    deadline = time.monotonic() + 30
    shown = False
    while not shown and time.monotonic() < deadline:  # the cell waits once the widget is shown
        try:
            msg = kernel.kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        shown = (msg["parent_header"].get("msg_id") == msg_id
                 and msg["msg_type"] == "display_data")
    assert shown, "the login widget was never shown"
    time.sleep(0.5)
    kernel.km.interrupt_kernel()
    _, errors = kernel.collect(msg_id)
    assert only_error(errors) == "LoginCancelledError: The login was interrupted (kernel interrupt)."
    text, errors = kernel.run(
        "print(get_ipython().magics_manager.registry['AuthMagics']"
        ".logins['access_token'].pending.port)")
    assert errors == []
    port = int(text.strip())
    assert port > 0
    # nothing listens on the interrupted login's port any more ...
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # ... and a new login can bind exactly that port
    _, errors = kernel.run(f"%auth0_login --no-browser --port {port} --timeout 2")
    assert only_error(errors).startswith(TIMED_OUT)
