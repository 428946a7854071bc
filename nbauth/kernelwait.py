"""Waiting in the login cell without blocking the widget's buttons.

A cell that blocks (a thread event, a sleep) keeps ipykernel from handling widget messages
until it ends, so a Cancel button would do nothing while `%auth0_login` waits. From ipykernel
7.4 on, a cell that *awaits* lets the kernel dispatch widget (comm) messages meanwhile. So in
such kernels nbauth rewrites a top-level ``%auth0_login`` line of the cell the kernel was asked
to run into an awaited call, and the login cell waits with ``await``. Code that runs inside a
running cell (a cell magic's body such as ``%%time`` or ``%%capture``, ``run_cell`` from user
code) is left alone and blocks: it cannot await. Elsewhere (ipykernel 6 to 7.3, plain IPython)
the cell blocks and kernel interrupt is the way to cancel: processing widget messages from
inside a blocked cell would mean re-entering the kernel's event loop (nest-asyncio) or
replaying its private message queue, which changes between ipykernel releases — not robust
enough for a login.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import Any

__all__ = ["install", "kernel_handles_widgets_while_awaiting", "uninstall"]

_MAGIC_CALL = re.compile(r"^get_ipython\(\)\.run_line_magic\('auth0_login', (?P<args>.*)\)\s*$")
#: What a rewritten line awaits. It reaches the magics through the shell (not a name in the
#: user's namespace, which %reset would remove).
_AWAITED = "await get_ipython().magics_manager.registry['AuthMagics'].await_login({args})"


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


class _AwaitLoginLines:
    """IPython input transformer: make top-level ``%auth0_login`` lines awaited calls.

    Runs after IPython has turned magics into ``get_ipython().run_line_magic(...)`` lines;
    indented or assigned uses are left alone (they block as usual), and so is everything
    transformed while a cell is already executing on this thread (ipykernel transforms the
    cell it was sent before its pre_execute event; cell magics transform their body during it).
    """

    def __init__(self) -> None:
        self._running = threading.local()

    def _depth(self) -> int:
        return int(getattr(self._running, "depth", 0))

    def cell_started(self) -> None:
        self._running.depth = self._depth() + 1

    def cell_ended(self, *_: Any) -> None:
        self._running.depth = max(0, self._depth() - 1)

    def __call__(self, lines: list[str]) -> list[str]:
        if self._depth():
            return lines
        out = []
        for line in lines:
            match = _MAGIC_CALL.match(line)
            if match:
                ending = "\n" if line.endswith("\n") else ""
                line = _AWAITED.format(args=match.group("args")) + ending
            out.append(line)
        return out


def install(shell: Any) -> None:
    """Let the login cell await in kernels that handle widget messages meanwhile."""
    if not kernel_handles_widgets_while_awaiting(shell):
        return
    if any(isinstance(t, _AwaitLoginLines) for t in shell.input_transformers_post):
        return
    transformer = _AwaitLoginLines()
    shell.events.register("pre_execute", transformer.cell_started)
    shell.events.register("post_execute", transformer.cell_ended)
    shell.input_transformers_post.append(transformer)


def uninstall(shell: Any) -> None:
    """Undo `install` (cells block again while a login waits)."""
    for transformer in [t for t in shell.input_transformers_post
                        if isinstance(t, _AwaitLoginLines)]:
        shell.input_transformers_post.remove(transformer)
        shell.events.unregister("pre_execute", transformer.cell_started)
        shell.events.unregister("post_execute", transformer.cell_ended)
