"""A remembered login survives a real kernel restart (nbclient, one kernel per session).

Each notebook runs in a new kernel process with the same JUPYTER_DATA_DIR; the keyring is
switched to its null backend (PYTHON_KEYRING_BACKEND), so the private file store is used.
The second session's $BROWSER only records that it was called and fails: a login that needed
it would time out.
"""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import nbformat
import pytest
import requests

#: Access-token lifetime in seconds of this module's short_provider (tests/conftest.py).
TTL = 4

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from quickstart import cell_text, demo_environment, execute_notebook, scripted_browser  # noqa: E402

pytestmark = [pytest.mark.provider, pytest.mark.kernel]



@pytest.fixture
def session(short_provider, tmp_path):
    """Run cells in a fresh kernel: the same data directory every time, a chosen browser."""
    data_dir = tmp_path / "jupyter-data"
    opened = tmp_path / "opened.txt"
    opened.touch()
    refusing = tmp_path / "refusing-browser"
    refusing.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\nexit 1\n')
    refusing.chmod(0o700)

    def run(*cells, scripted=True):
        path = tmp_path / f"session-{time.monotonic_ns()}.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nbformat.write(nb, path)
        with scripted_browser(record_urls=opened) as browser:
            env = demo_environment(short_provider, browser if scripted else str(refusing))
            env.update({"JUPYTER_DATA_DIR": str(data_dir),
                        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                        "NBAUTH_TEST_SECRETS": str(tmp_path / "secrets.json")})
            nb = execute_notebook(path, env, timeout=90)
        path.unlink()
        return [cell_text(c) for c in nb.cells], nb

    run.store = data_dir / "nbauth"
    run.opened = lambda: opened.read_text().splitlines()
    run.secrets = tmp_path / "secrets.json"
    return run


FIRST = ("%load_ext nbauth", "%auth0_login --remember",
         "import os\nprint(auth0_session.get(os.environ['NBAUTH_DEMO_API'], timeout=10)"
         ".status_code)")


def test_a_remembered_login_survives_a_kernel_restart_and_logout_ends_it(session,
                                                                          short_provider):
    texts, _ = session(*FIRST)
    assert "Logged in as Demo User" in texts[1] and texts[2].strip() == "200"
    assert len(session.opened()) == 1
    files = list(session.store.glob("login-*.json"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(session.store.stat().st_mode) == 0o700

    texts, nb = session(
        "%load_ext nbauth",
        "%auth0_login --remember --timeout 20",
        # several access-token lifetimes: the session refreshes, access_token is rebound
        "import os, time, requests\napi = os.environ['NBAUTH_DEMO_API']\nseen, codes = set(), []\n"
        f"start = time.monotonic()\nwhile time.monotonic() - start < {3 * TTL}:\n"
        "    codes.append(auth0_session.get(api, timeout=10).status_code)\n"
        "    codes.append(requests.get(api, timeout=10, headers={'Authorization': "
        "f'Bearer {access_token}'}).status_code)\n"
        "    seen.add(str(access_token)); time.sleep(0.5)\n"
        "print(sorted(set(codes)), len(seen) >= 3)",
        "%auth0_token",
        "import json\nwith open(os.environ['NBAUTH_TEST_SECRETS'], 'w') as f:\n"
        "    json.dump({'refresh': auth0_session.credentials._refresh_token}, f)",
        "%auth0_logout",
    )
    assert "remembered login, no browser needed" in texts[1], texts[1]
    assert len(session.opened()) == 1  # the browser was not called again
    assert texts[2].strip() == "[200] True", texts[2]
    assert "refreshes so far" in texts[3]
    assert "revoked at the provider" in texts[5]
    assert list(session.store.glob("login-*.json")) == []  # logout forgot it
    last = json.loads(session.secrets.read_text())["refresh"]
    assert last not in json.dumps(nb)  # no output holds the token
    answer = requests.post(short_provider.issuer + "oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": last,
        "client_id": short_provider.client_id}, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"

    # logged out: the next --remember login needs the browser again
    texts, _ = session(*FIRST)
    assert "Logged in as Demo User" in texts[1] and len(session.opened()) == 2


def test_a_loosened_file_mode_is_refused_and_the_login_uses_the_browser(session):
    session(*FIRST)
    path = next(session.store.glob("login-*.json"))
    path.chmod(0o644)
    texts, _ = session(*FIRST)
    assert "can be read or changed by other users (mode 644)" in texts[1], texts[1]
    assert "chmod 600" in texts[1] and "Logging in in the browser" in texts[1]
    assert "Logged in as Demo User" in texts[1] and texts[2].strip() == "200"
    assert len(session.opened()) == 2
    # the new login replaced the unsafe file with a private one
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


class Kernel:
    """A live kernel, to keep two running at once (nbclient runs one notebook at a time)."""

    def __init__(self, env):
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3", env=env)

    def run(self, code, timeout=60):
        import queue

        msg_id = self.kc.execute(code)
        texts, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg["content"]
            if msg["msg_type"] == "stream":
                texts.append(content["text"])
            elif msg["msg_type"] == "error":
                texts.append(f"{content['ename']}: {content['evalue']}")
            elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
                return "".join(texts)
        raise AssertionError("the cell did not finish in time")

    def stop(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def test_two_kernels_sharing_a_remembered_login_both_keep_refreshing(short_provider, tmp_path):
    import os

    opened = tmp_path / "opened.txt"
    with scripted_browser(record_urls=opened) as browser:
        env = {**os.environ, **demo_environment(short_provider, browser),
               "JUPYTER_DATA_DIR": str(tmp_path / "data"),
               "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
        kernels = []
        try:
            for _ in range(2):
                kernels.append(Kernel(env))
            first, second = kernels
            assert "Logged in" in first.run("%load_ext nbauth\n%auth0_login --remember")
            # The second kernel resumes the same login: that spends the first one's token.
            text = second.run("%load_ext nbauth\n%auth0_login --remember --timeout 20")
            assert "remembered login, no browser needed" in text, text
            check = ("import os\n_c = auth0_session.credentials\n_c.refresh()\n"
                     "print(_c.valid, auth0_session.get(os.environ['NBAUTH_DEMO_API'], "
                     "timeout=10).status_code)")
            for kernel in (first, second, first, second):
                assert kernel.run(check).strip() == "True 200"
            assert len(opened.read_text().splitlines()) == 1  # one browser login in all
        finally:
            for kernel in kernels:
                kernel.stop()
