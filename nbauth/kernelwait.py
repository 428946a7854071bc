"""Waiting in the login cell without blocking the widget's buttons.

A cell that blocks (a thread event, a sleep) keeps ipykernel from handling widget messages
until it ends, so a Cancel button would do nothing while `%auth0_login` waits. From ipykernel
7.4 on, a cell that *awaits* lets the kernel dispatch widget (comm) messages meanwhile. So in
such kernels nbauth rewrites a top-level ``%auth0_login`` line into an awaited call, and the
login cell waits with ``await``. Elsewhere (ipykernel 6 to 7.3, plain IPython) the cell blocks
and kernel interrupt is the way to cancel: processing widget messages from inside a blocked
cell would mean re-entering the kernel's event loop (nest-asyncio) or replaying its private
message queue, which changes between ipykernel releases — not robust enough for a login.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["AWAIT_NAME", "await_login_lines", "kernel_handles_widgets_while_awaiting"]

#: Name under which the awaitable login entry point is put in the (hidden) user namespace.
AWAIT_NAME = "_nbauth_await_login"

_MAGIC_CALL = re.compile(r"^get_ipython\(\)\.run_line_magic\('auth0_login', (?P<args>.*)\)\s*$")


def kernel_handles_widgets_while_awaiting(shell: Any) -> bool:
    """True in ipykernel ≥ 7.4 with top-level await on (comm messages run during awaits)."""
    if getattr(shell, "kernel", None) is None or not getattr(shell, "autoawait", False):
        return False
    return _ipykernel_version() >= (7, 4)


def _ipykernel_version() -> tuple[int, ...]:
    # The running kernel's module knows its version; importlib.metadata (a scan of every
    # installed distribution, ~10 ms) is the fallback when ipykernel is not imported.
    loaded = getattr(sys.modules.get("ipykernel"), "version_info", None)
    if isinstance(loaded, tuple) and all(isinstance(part, int) for part in loaded[:2]):
        return tuple(loaded[:2])
    from importlib import metadata

    try:
        release = metadata.version("ipykernel")
    except metadata.PackageNotFoundError:  # pragma: no cover - a shell with a kernel has it
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", release)[:2])


def await_login_lines(lines: list[str]) -> list[str]:
    """IPython input transformer: make top-level ``%auth0_login`` lines awaited calls.

    Runs after IPython has turned magics into ``get_ipython().run_line_magic(...)`` lines;
    indented or assigned uses are left alone (they block as usual).
    """
    out = []
    for line in lines:
        match = _MAGIC_CALL.match(line)
        if match:
            ending = "\n" if line.endswith("\n") else ""
            line = f"await {AWAIT_NAME}({match.group('args')}){ending}"
        out.append(line)
    return out
