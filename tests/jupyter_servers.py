"""Real Jupyter servers (JupyterLab, Notebook 7, bare) for the tests, each in its own sandbox.

Every server gets a temporary root dir, JUPYTER_CONFIG_DIR / JUPYTER_DATA_DIR /
JUPYTER_RUNTIME_DIR / IPYTHONDIR, a known token, and binds 127.0.0.1 only.

Ports: jupyter_server picks its own port — `--port=BASE --port-retries=50` tries BASE, BASE+1..+5,
then random ports near BASE, and binds the first free one itself — and then writes
`jpserver-<pid>.json` (its real port and URL) into its runtime dir. We read the URL from that file
(no port is bound here and handed over). A random BASE below the kernel's ephemeral range keeps
clashes with other processes rare; if the server still cannot bind, it exits and we start it again
with another BASE.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
START_ATTEMPTS = 3

FLAVOURS = {
    # flavour: (python -m module, URL path of a notebook). JupyterLab would restore the last
    # test's tabs from its saved workspace; `reset` starts from an empty one.
    "lab": ("jupyterlab", "lab/tree/{name}?reset&"),
    "notebook": ("notebook", "notebooks/{name}"),
    # A bare Jupyter server (no UI): for the server extension's own tests.
    "server": ("jupyter_server", "api/contents/{name}"),
}
#: The flavours a person uses in a browser.
UI_FLAVOURS = ("lab", "notebook")

#: JupyterLab/Notebook 7 user settings written before the server starts (same settings system).
USER_SETTINGS: dict[str, dict[str, Any]] = {
    # Save the widget state into the notebook on every save ("Save Widget State Automatically").
    "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
    # No news / update check: no network, and no toast covering the page.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                     "checkForUpdates": False},
}


class ServerError(RuntimeError):
    """A Jupyter server did not start or stop as expected."""


@dataclass
class JupyterServer:
    flavour: str
    url: str  # http://127.0.0.1:PORT/ (base URL, ends in /)
    token: str
    root: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def runtime_dir(self) -> Path:
        """JUPYTER_RUNTIME_DIR of the server and its kernels."""
        return self.root.parent / "runtime"

    def notebook_url(self, name: str) -> str:
        path = FLAVOURS[self.flavour][1].format(name=name)
        return f"{self.url}{path}{'' if '?' in path else '?'}token={self.token}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}api/{path}", headers=headers, **kwargs)

    def shutdown_kernels_of(self, name: str) -> None:
        """Delete the sessions (and so stop the kernels) of the notebook `name`."""
        for session in self.api("GET", "sessions").json():
            if session.get("path") == name:
                self.api("DELETE", f"sessions/{session['id']}")

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"


def _write_user_settings(config_dir: Path) -> None:
    base = config_dir / "lab" / "user-settings"
    for name, values in USER_SETTINGS.items():
        path = base / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _stop(process: subprocess.Popen[bytes], url: str | None, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then signal it if it lingers."""
    if process.poll() is None and url:
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{url}api/shutdown", headers={"Authorization": f"token {token}"},
                          timeout=5)
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        if sig is not None:
            # The server runs in its own session (start_new_session): its group is it and the
            # kernels it started, all ours.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT if sig is None else 5)
    if process.poll() is None:
        raise ServerError(f"the Jupyter server (pid {process.pid}) did not stop")


def _wait_ready(process: subprocess.Popen[bytes], runtime_dir: Path, token: str,
                deadline: float) -> str | None:
    """The server's URL once it answers; None if it exited (e.g. no free port)."""
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        if url is None:
            for info_file in runtime_dir.glob("jpserver-*.json"):
                with contextlib.suppress(OSError, ValueError):
                    info = json.loads(info_file.read_text())
                    if info.get("pid") == process.pid:
                        url = info["url"]
                        if not url.endswith("/"):
                            url += "/"
        if url is not None:
            with contextlib.suppress(requests.RequestException):
                status = requests.get(f"{url}api/status",
                                      headers={"Authorization": f"token {token}"}, timeout=2)
                if status.status_code == 200:
                    return url
        time.sleep(0.1)
    raise ServerError("the Jupyter server did not become ready in time")


@contextlib.contextmanager
def running_jupyter(flavour: str, base_dir: Path, kernel_env: Mapping[str, str]) -> Iterator[
        JupyterServer]:
    """Start `jupyter lab` or `jupyter notebook` (7) sandboxed in `base_dir`; stop it at exit."""
    module = FLAVOURS[flavour][0]
    root = base_dir / "root"
    dirs = {name: base_dir / name for name in ("config", "data", "runtime", "ipython")}
    for path in (root, *dirs.values()):
        path.mkdir(parents=True, exist_ok=True)
    _write_user_settings(dirs["config"])
    token = secrets.token_hex(24)
    log_path = base_dir / "server.log"

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTH0_", "NBAUTH_", "JUPYTER", "JPY_"))}
    env.update({
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(dirs["ipython"]),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        # webbrowser.open in the kernel runs /bin/true: the person clicks the widget's link.
        "BROWSER": "true",
        **kernel_env,
    })

    for _attempt in range(START_ATTEMPTS):
        base_port = random.randrange(20000, 30000)  # noqa: S311 - not security relevant
        cmd = [
            sys.executable, "-m", module,
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={base_port}",
            "--port-retries=50",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={token}",
            "--ServerApp.terminals_enabled=False",
            "--allow-root",  # CI runs as root
            "--ServerApp.shutdown_no_activity_timeout=900",  # a leaked server ends by itself
        ]
        with open(log_path, "ab") as log:
            # The server and its kernels get their own session, so that a hung server can
            # be signalled as a group without touching anything else.
            process = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        url = None
        try:
            url = _wait_ready(process, dirs["runtime"], token,
                              time.monotonic() + START_TIMEOUT)
        except BaseException:
            _stop(process, None, token)
            raise
        if url is None:
            continue  # it exited: most likely no free port near base_port; try elsewhere
        server = JupyterServer(flavour, url, token, root, log_path, process)
        try:
            yield server
        finally:
            _stop(process, url, token)
        return
    raise ServerError(f"`python -m {module}` did not start; log:\n"
                      + log_path.read_text(errors="replace")[-4000:])
