"""J. Leakage in a real kernel (S-80 … S-86, S-63, S-65, S-88).

One notebook runs every flow in a real IPython kernel (nbclient): a browser login, the API
call, a refresh, the device flow, a denied login, a login whose ID token is refused after the
token response (the scripted stand-in), and a refresh the provider refuses — with DEBUG logging
on for every logger, `%xmode Verbose`, IPython's output history on. The secrets are captured
outside the notebook, at the "browser" (state, nonce, code: leak_browser.py) and at nbauth's one
I/O layer (verifier, tokens, device code: leak_startup.py), and then searched for everywhere a
notebook user's data ends up: the saved .ipynb (outputs, tracebacks, widget state), the kernel's
widget state, the log file, IPython's history database, `Out`, and `os.environ`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
from scripted_provider import ScriptedProvider

pytestmark = [pytest.mark.provider, pytest.mark.kernel]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CELLS = [
    # 0: every logger at DEBUG, to a file and (for nbauth, requests, urllib3) into the cells
    "import logging, os, sys\n"
    "logging.basicConfig(level=logging.DEBUG, force=True,\n"
    "                    handlers=[logging.FileHandler(os.environ['NBAUTH_TEST_LOG'])])\n"
    "for _name in list(logging.root.manager.loggerDict):\n"
    "    logging.getLogger(_name).setLevel(logging.DEBUG)\n"
    "for _name in ('nbauth', 'requests', 'urllib3'):\n"
    "    logging.getLogger(_name).addHandler(logging.StreamHandler(sys.stderr))",
    "%xmode Verbose",
    "%load_ext nbauth",
    # success
    "%auth0_login --port 0",
    "access_token",
    "auth0_session",
    "auth0_session.credentials",
    "%auth0_token",
    "%whos",
    "import requests\n"
    "requests.get(os.environ['NBAUTH_DEMO_API'], timeout=10,\n"
    "             headers={'Authorization': f'Bearer {access_token}'}).json()",
    # refresh
    "auth0_session.credentials.refresh()\nauth0_session.get(os.environ['NBAUTH_DEMO_API'], "
    "timeout=10).status_code",
    "access_token",
    # S-82: nothing pickles
    "import pickle\n_login = get_ipython().magics_manager.registry['AuthMagics']"
    ".logins['access_token']\n"
    "for _obj in (access_token, auth0_session, auth0_session.credentials, _login.pending,\n"
    "             auth0_session.auth):\n"
    "    try:\n        pickle.dumps(_obj)\n        print('PICKLED', type(_obj).__name__)\n"
    "    except TypeError:\n        print('refused', type(_obj).__name__)",
    "%store access_token",
    # a request that fails in requests/urllib3, whose frames held the Authorization header
    # (%xmode Verbose prints every frame's locals)
    "auth0_session.get('http://127.0.0.1:9/unreachable', timeout=5)",
    # device flow (the person approves from another process)
    "%auth0_login --device --no-wait --var dev_token --session-var dev_session",
    "import subprocess, time\n_dl = get_ipython().magics_manager.registry['AuthMagics']"
    ".logins['dev_token'].pending\n"
    "subprocess.run([sys.executable, '-c', 'import sys; sys.path.insert(0, sys.argv[1]); '\n"
    "    'from scripted_user import complete_device_login; complete_device_login(sys.argv[2])',\n"
    "    os.environ['NBAUTH_TEST_PROVIDER_DIR'], _dl.verification_uri_complete],\n"
    "    check=True, timeout=60, capture_output=True)\n"
    "for _ in range(600):\n    if 'dev_token' in dir():\n        break\n    time.sleep(0.1)\n"
    "dev_session.get(os.environ['NBAUTH_DEMO_API'], timeout=10).status_code",
    "dev_token",
    # failures: denied; an ID token refused after the token response; a refused refresh
    "os.environ['NBAUTH_TEST_DECISION'] = 'deny'",
    "%auth0_login --port 0 --var denied_token --session-var denied_session",
    "os.environ['NBAUTH_TEST_DECISION'] = 'allow'",
    "%auth0_login --port 0 --domain {scripted} --client-id scripted-client --var bad_token "
    "--session-var bad_session",
    "_c = auth0_session.credentials\n"
    "requests.post(os.environ['AUTH0_DOMAIN'] + 'oauth/revoke', timeout=10, data={\n"
    "    'token': _c._refresh_token, 'client_id': _c.client_id}).status_code\n",
    "del _c\nauth0_session.credentials.refresh()",
    "%auth0_logout --var dev_token",
    # client credentials: the secret comes from AUTH0_CLIENT_SECRET, never from the cell
    "%auth0_login --client-credentials --client-id {m2m} --var m2m_token --session-var m2m\n"
    "m2m.get(os.environ['NBAUTH_DEMO_API'], timeout=10).status_code",
    "m2m_token",
    # what the kernel holds at the end, written outside the notebook
    "import json\nfrom ipywidgets import Widget\n"
    "with open(os.environ['NBAUTH_TEST_DUMP'], 'w') as _f:\n"
    "    json.dump({'out': {str(k): repr(v) for k, v in Out.items()},\n"
    "               'oh': {str(k): repr(v) for k, v in _oh.items()},\n"
    "               'widgets': Widget.get_manager_state(drop_defaults=False),\n"
    "               'env': dict(os.environ)}, _f, default=repr)",
]

#: An address nothing listens on (port 9, discard), for a request that fails in requests.
UNREACHABLE_CELL = "127.0.0.1:9/unreachable"

#: The cells expected to fail, and the error each shows (as one line, no frames).
FAILING = {"denied_token": "AccessDeniedError", "bad_token": "IdTokenError",
           "refresh()": "LoginRequiredError"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _secrets(browser_log: Path, capture: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def add(kind: str, value: object) -> None:
        if isinstance(value, str) and len(value) >= 16:
            found.setdefault(kind, set()).add(value)

    for entry in _lines(browser_log):
        assert "error" not in entry, entry["error"]
        for key in ("authorize", "redirect"):
            if key in entry:
                query = parse_qs(urlsplit(entry[key]).query)
                for name in ("state", "nonce", "code"):
                    for value in query.get(name, []):
                        add(name, value)
    for entry in _lines(capture):
        for name, value in {**entry.get("sent", {}), **entry.get("received", {})}.items():
            if name in ("code", "code_verifier", "refresh_token", "access_token", "id_token",
                        "device_code", "token", "client_secret"):
                add(name, value)
    return found


def _history(path: Path) -> str:
    """Everything IPython's history database holds (inputs, and outputs: db_log_output)."""
    deadline = time.monotonic() + 15  # the kernel's history thread writes it at shutdown
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                    rows = db.execute("SELECT source, source_raw FROM history").fetchall()
                    rows += db.execute("SELECT output, '' FROM output_history").fetchall()
                if rows:
                    return "\n".join(a + "\n" + b for a, b in rows)
            except sqlite3.OperationalError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"IPython wrote no history to {path}")


def test_S80_S86_no_secret_anywhere_after_every_flow_in_a_real_kernel(tmp_path, monkeypatch):
    from devprovider import running_provider
    from nbclient import NotebookClient

    work, outside, ipython_dir = tmp_path / "work", tmp_path / "outside", tmp_path / "ipython"
    for d in (work, outside, ipython_dir / "profile_default" / "startup"):
        d.mkdir(parents=True)
    history = ipython_dir / "history.sqlite"
    config = ("c.HistoryManager.db_log_output = True\n"
              f"c.HistoryManager.hist_file = {str(history)!r}\n")
    for name in ("ipython_config.py", "ipython_kernel_config.py"):
        (ipython_dir / "profile_default" / name).write_text(config)
    shutil.copy(HERE / "leak_startup.py", ipython_dir / "profile_default" / "startup" / "00.py")
    files = {name: outside / name for name in ("browser.jsonl", "capture.jsonl", "log.txt",
                                                "dump.json", "env_start.json")}
    data_dir = tmp_path / "jupyter-data"  # where a remembered login would be written

    bad = ScriptedProvider(token_answers=[ScriptedProvider.good_tokens(nonce="not-this-login")])
    with running_provider(device_interval=1) as provider, bad:
        env = {
            "IPYTHONDIR": str(ipython_dir), "BROWSER": str(HERE / "leak_browser.py"),
            "AUTH0_DOMAIN": provider.issuer, "AUTH0_CLIENT_ID": provider.client_id,
            "AUTH0_AUDIENCE": provider.audience,
            "AUTH0_CLIENT_SECRET": provider.m2m_client_secret, "JUPYTER_DATA_DIR": str(data_dir),
            "NBAUTH_SCOPE": "openid profile email offline_access read:messages",
            "NBAUTH_DEMO_API": provider.api_url,
            "NBAUTH_TEST_REAL_PROVIDER": urlsplit(provider.issuer).netloc,
            "NBAUTH_TEST_PROVIDER_DIR": str(ROOT / "provider"),
            "NBAUTH_TEST_BROWSER_LOG": str(files["browser.jsonl"]),
            "NBAUTH_TEST_CAPTURE": str(files["capture.jsonl"]),
            "NBAUTH_TEST_LOG": str(files["log.txt"]), "NBAUTH_TEST_DUMP": str(files["dump.json"]),
            "NBAUTH_TEST_ENV_START": str(files["env_start.json"]),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "provider"), os.environ.get(
                "PYTHONPATH", "")]),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c.replace("{scripted}", bad.issuer).replace(
            "{m2m}", provider.m2m_client_id)) for c in CELLS]
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                       ipython_hist_file=str(history),  # nbclient defaults to :memory:
                       resources={"metadata": {"path": str(work)}}).execute()
        saved = work / "leak.ipynb"
        nbformat.write(nb, saved)

    found = _secrets(files["browser.jsonl"], files["capture.jsonl"])
    # the wiretaps saw every kind of secret, several times: the search below is not vacuous
    for kind, least in (("state", 3), ("nonce", 3), ("code", 2), ("code_verifier", 2),
                        ("access_token", 4), ("refresh_token", 4), ("id_token", 3),
                        ("device_code", 1)):
        assert len(found.get(kind, ())) >= least, (kind, len(found.get(kind, ())))
    client_secret = provider.m2m_client_secret
    every_secret = set().union(*found.values()) | {client_secret}

    texts = {"saved notebook": saved.read_text(), "log file": files["log.txt"].read_text(),
             "history database": _history(history)}
    dump = json.loads(files["dump.json"].read_text())
    texts["widget state in the kernel"] = json.dumps(dump["widgets"])
    texts["Out"] = json.dumps(dump["out"]) + json.dumps(dump["oh"])
    texts["os.environ"] = json.dumps(dump["env"])
    for where, text in texts.items():
        leaked = [s[:6] + "…" for s in every_secret if s in text
                  and not (where == "os.environ" and s == client_secret)]
        assert not leaked, f"secrets found in the {where}: {leaked}"

    # the flows really ran, and failed where they should, each as one line without frames
    shown = {i: "".join(json.dumps(o) for o in c.get("outputs", [])) for i, c in enumerate(nb.cells)}
    assert "Logged in as Demo User" in texts["saved notebook"]
    assert "<access token, expires in" in shown[4] and "<access token, expires in" in shown[11]
    assert "Hello from the nbauth demo API" in shown[9]
    def result(fragment: str) -> str:
        """The text/plain result of the one cell whose source contains `fragment` (DEBUG
        logging puts "200" on every cell's stderr, so only the result itself tells)."""
        (cell,) = [c for c in nb.cells if fragment in c.source]
        return "".join(o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", [])
                       if o.get("output_type") == "execute_result")

    assert result("auth0_session.credentials.refresh()\nauth0_session.get") == "200"
    assert result("dev_session.get(") == "200"
    assert shown[12].count("refused") == 5 and "PICKLED" not in shown[12]
    errors = {i: o for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
              if o.output_type == "error"}
    for fragment, ename in FAILING.items():
        (index,) = [i for i, c in enumerate(nb.cells) if fragment in c.source
                    and c.source.lstrip().startswith(("%auth0_login", "del _c"))]
        assert errors[index]["ename"] == ename, (fragment, errors.get(index))
        traceback_text = "\n".join(errors[index]["traceback"])
        assert "Traceback" not in traceback_text and "locals" not in traceback_text.lower()
    (unreachable,) = [i for i, c in enumerate(nb.cells) if UNREACHABLE_CELL in c.source]
    assert errors[unreachable]["ename"] == "ConnectionError"  # requests' own, shown verbosely
    assert set(errors) <= {i for i, c in enumerate(nb.cells)
                           if any(f in c.source for f in FAILING) or "%store" in c.source
                           or i == unreachable}
    log = texts["log file"]
    assert "POST http://127.0.0.1" in log and "(token)" in log  # DEBUG logging was on
    assert texts["history database"].count("%auth0_login") or "auth0_login" in texts[
        "history database"]
    assert "<access token" in texts["history database"]  # outputs were logged (redacted)
    widget_text = texts["saved notebook"]
    assert "application/vnd.jupyter.widget-state+json" in widget_text

    m2m_cell = next(i for i, c in enumerate(nb.cells) if "--client-credentials" in c.source)
    assert result("m2m.get(") == "200" and "<access token" in shown[m2m_cell + 1]
    # S-87: nothing was remembered on disk (remembering is opt-in); logout's look for a login
    # remembered by an earlier kernel may leave an empty lock file in a private directory
    written = [f for f in data_dir.rglob("*") if f.is_file()] if data_dir.exists() else []
    assert all(f.name.startswith(".lock-") and f.stat().st_size == 0 for f in written), written
    for directory in {f.parent for f in written}:
        assert directory.stat().st_mode & 0o077 == 0

    # S-86: the environment changed only where the notebook itself set a variable
    start = json.loads(files["env_start.json"].read_text())
    changed = {k for k in set(start) | set(dump["env"]) if start.get(k) != dump["env"].get(k)}
    assert changed <= {"NBAUTH_TEST_DECISION"}, changed
    assert sys.executable  # (the kernel ran with this interpreter's environment)
