"""Real IPython kernels executing real notebooks (nbclient / jupyter_client) against the real provider."""

from __future__ import annotations

import json
import queue
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from quickstart import QUICKSTART, cell_text, demo_environment, execute_notebook, scripted_browser  # noqa: E402

pytestmark = [pytest.mark.provider, pytest.mark.kernel]

LEAK_CELL = """
import json, os
_c = auth0_session.credentials
_r = get_ipython().magics_manager.registry["AuthMagics"].logins["access_token"].pending._request
with open(os.environ["NBAUTH_TEST_SECRETS"], "w") as _f:
    json.dump({"access": str(access_token), "refresh": _c._refresh_token, "state": _r.state,
               "nonce": _r.nonce, "challenge": _r.pkce.challenge}, _f)
del _c, _f, _r
"""


@pytest.fixture
def run(provider, tmp_path, monkeypatch):
    """Execute a notebook with the demo settings and a recording scripted browser."""
    urls = tmp_path / "urls.txt"
    secrets_file = tmp_path / "secrets.json"
    monkeypatch.setenv("NBAUTH_TEST_SECRETS", str(secrets_file))

    def runner(nb_path=QUICKSTART, *, extra_cells=(), env=None, decision="allow"):
        monkeypatch.setenv("NBAUTH_SCRIPTED_DECISION", decision)
        with scripted_browser(record_urls=urls) as browser:
            environment = demo_environment(provider, browser)
            environment.update(env or {})
            return execute_notebook(nb_path, environment, extra_cells=list(extra_cells))

    runner.urls = urls
    runner.secrets = secrets_file
    return runner


def saved_text(nb, tmp_path):
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    return path.read_text()


def test_quickstart_logs_in_and_the_api_answers(run, tmp_path):
    nb = run(extra_cells=[LEAK_CELL])
    texts = [cell_text(c) for c in nb.cells if c.cell_type == "code"]
    assert any("Logged in as Demo User <demo@example.com>" in t for t in texts)
    answers = [t for t in texts if "Hello from the nbauth demo API" in t]
    assert len(answers) == 2  # once with access_token, once with auth0_session
    assert "auth0|demo" in answers[0]
    assert any("<access token, expires in" in t for t in texts)

    saved = saved_text(nb, tmp_path)
    secrets = json.loads(run.secrets.read_text())
    assert all(len(v) >= 20 for v in secrets.values())
    opened = run.urls.read_text().splitlines()[0]
    assert "/start/" in opened and "state=" not in opened  # the browser's argv has no state
    values = list(secrets.values())
    for value in values:
        assert value not in saved
    # widget state was saved by nbclient, and it holds no secret either
    widget_state = json.dumps(nb.metadata.get("widgets", {}))
    assert "Logged in as" in widget_state
    for value in values:
        assert value not in widget_state


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def error_outputs(nb):
    return [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]


def test_access_denied_is_one_clear_line_without_frames(run, tmp_path):
    from nbclient.exceptions import CellExecutionError

    path = write_notebook(tmp_path / "deny.ipynb", "%load_ext nbauth",
                          "%xmode Verbose", "%auth0_login")
    with pytest.raises(CellExecutionError) as info:
        run(path, decision="deny")
    text = str(info.value)
    assert "AccessDeniedError" in text and "access_denied" in text
    assert "Traceback" not in text and "locals" not in text


def test_missing_setting_gives_a_short_usage_error(run, tmp_path):
    from nbclient.exceptions import CellExecutionError

    path = write_notebook(tmp_path / "missing.ipynb", "%load_ext nbauth",
                          "%auth0_login")
    with pytest.raises(CellExecutionError) as info:
        run(path, env={"AUTH0_CLIENT_ID": ""})
    assert "No client id is set" in str(info.value)
    assert "AUTH0_CLIENT_ID" in str(info.value)


def test_no_wait_returns_at_once_and_the_token_arrives_later(run, tmp_path):
    path = write_notebook(
        tmp_path / "nowait.ipynb", "%load_ext nbauth",
        "import time\n_t0 = time.monotonic()\n%auth0_login --no-wait --var tok --session-var s\n"
        "print('returned after', round(time.monotonic() - _t0, 2), 'defined:', 'tok' in dir())",
        "for _ in range(300):\n    if 'tok' in dir(): break\n    time.sleep(0.1)\n"
        "import requests, os\nprint(requests.get(os.environ['NBAUTH_DEMO_API'], "
        "headers={'Authorization': f'Bearer {tok}'}, timeout=10).status_code)\n"
        "print(s.get(os.environ['NBAUTH_DEMO_API'], timeout=10).status_code)",
    )
    nb = run(path)
    first, second = cell_text(nb.cells[1]), cell_text(nb.cells[2])
    assert "returned after" in first
    assert second.split() == ["200", "200"]


def test_interrupting_the_kernel_cancels_the_login(provider, tmp_path):
    # (that the port is then free and bindable again: tests/test_kernelwait.py)
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env={
        **__import__("os").environ, "AUTH0_DOMAIN": provider.issuer,
        "AUTH0_CLIENT_ID": provider.client_id, "BROWSER": "true"})
    try:
        def execute(code, timeout=30):
            msg_id = kc.execute(code)
            outputs = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    msg = kc.get_iopub_msg(timeout=1)
                except queue.Empty:
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] in ("stream", "error", "execute_result", "display_data"):
                    outputs.append(msg["content"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return outputs
            raise AssertionError("the cell did not finish in time")

        execute("%load_ext nbauth")
        msg_id = kc.execute("%auth0_login --port 0 --no-browser --timeout 120")
        time.sleep(3)  # the cell is now waiting for the browser
        km.interrupt_kernel()
        for _ in range(10):  # skip the replies of earlier cells
            reply = kc.get_shell_msg(timeout=20)
            if reply["parent_header"]["msg_id"] == msg_id:
                break
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        # awaited (ipykernel >= 7.4) or blocked (tests/test_kernelwait.py), an interrupt
        # ends the login in one line
        assert reply["content"]["ename"] == "LoginCancelledError"
        assert "interrupted" in reply["content"]["evalue"]
        out = execute("import threading\nprint([t.name for t in threading.enumerate() "
                      "if t.name.startswith('nbauth-loopback-') and 'close' not in t.name])")
        assert out[-1]["text"].strip() == "[]"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
