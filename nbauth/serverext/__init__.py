"""nbauth's Jupyter server extension: the login callback for browsers that cannot reach the kernel.

Enabled on install by ``etc/jupyter/jupyter_server_config.d/nbauth.json``. It serves
``{base_url}nbauth/callback`` (the redirect URI to register at the provider; on JupyterHub one
URL for everyone: ``https://HUB/hub/user-redirect/nbauth/callback``) and
``{base_url}nbauth/start``, and relays them to the kernel that started the login (see
`registry`). Importing this package does not import jupyter_server.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

__all__ = ["MARKER_PREFIX", "server_listen_address", "server_markers"]

#: `<runtime dir>/nbauth-pending/server-<pid>.json` says a server with the extension is running.
MARKER_PREFIX = "server-"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbauth.serverext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import handlers
    from .registry import Registry

    registry = Registry()
    base_url: str = serverapp.base_url
    serverapp.web_app.add_handlers(".*$", handlers(base_url, registry))
    try:
        registry.sweep()
        _write_marker(registry.directory, base_url, str(getattr(serverapp, "ip", "") or ""))
    except OSError as exc:
        serverapp.log.warning("nbauth: cannot use %s (%s); Jupyter-routed logins are off.",
                              registry.directory, exc.strerror)
        return
    serverapp.log.info("nbauth: login callback at %snbauth/callback", base_url)


def _write_marker(directory: Any, base_url: str, ip: str = "localhost") -> None:
    from .registry import Registry

    Registry(directory)._ensure_directory()
    path = directory / f"{MARKER_PREFIX}{os.getpid()}.json"
    temporary = directory / f".{MARKER_PREFIX}{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({"pid": os.getpid(), "started": _process_start(os.getpid()),
                   "base_url": base_url, "ip": ip}, file)
    os.replace(temporary, path)
    import atexit

    atexit.register(_remove, path)


def _process_start(pid: int) -> str | None:
    """When `pid` started (Linux: /proc/<pid>/stat field 22), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            return file.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _remove(path: Any) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def server_markers(directory: Any) -> list[str]:
    """Base URLs of running Jupyter servers that loaded this extension (from their markers)."""
    return [str(marker["base_url"]) for marker in _live_markers(directory)]


def server_listen_address(directory: Any, pid: int) -> str | None:
    """The address (ServerApp.ip) the running server with process id `pid` listens on, if it
    loaded this extension; None otherwise."""
    for marker in _live_markers(directory):
        if marker["pid"] == pid:
            return str(marker.get("ip") or "")
    return None


def _live_markers(directory: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if not (entry.name.startswith(MARKER_PREFIX) and entry.name.endswith(".json")):
                continue
            try:
                with open(entry.path, encoding="utf-8") as file:
                    data = json.load(file)
                pid, base_url = int(data["pid"]), str(data["base_url"])
                os.kill(pid, 0)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            started = data.get("started")
            if started is not None and started != _process_start(pid):
                continue  # the server died without cleaning up and its pid was reused
            found.append({**data, "pid": pid, "base_url": base_url})
    return found
