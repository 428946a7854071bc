"""A real ipykernel driven the way a notebook frontend drives it (tests and benchmarks).

Each cell is an ``execute_request`` that may carry the cell's id in its metadata, as JupyterLab,
Notebook 7 and VS Code send it (jupyter_client's ``execute()`` cannot). Every wait is bounded
by count and by time.
"""

from __future__ import annotations

import os
import queue
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class CellResult:
    """What one cell printed: its stream text, and its errors (``ename: evalue``, traceback)."""

    text: str = ""
    errors: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)


class FrontendKernel:
    """A new kernel with `env` added to this process's environment."""

    def __init__(self, env: Mapping[str, str] | None = None, *, quiet: bool = False) -> None:
        from jupyter_client.manager import start_new_kernel

        extra = {"stderr": subprocess.DEVNULL} if quiet else {}
        self.km, self.kc = start_new_kernel(kernel_name="python3",
                                            env={**os.environ, **(env or {})}, **extra)

    def execute(self, code: str, *, cell_id: str | None = None,
                timeout: float = 90) -> CellResult:
        """Run one cell (with `cell_id` in the request's metadata) and wait until it ends."""
        return self.collect(self.send(code, cell_id=cell_id), timeout=timeout)

    def send(self, code: str, *, cell_id: str | None = None) -> str:
        """Send one cell without waiting; return its message id (for `collect`)."""
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content,
                                  metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def collect(self, msg_id: str, *, timeout: float = 90) -> CellResult:
        """What the cell `msg_id` printed, once it has ended."""
        result = CellResult()
        deadline = time.monotonic() + timeout
        for _ in range(100_000):  # messages of one cell: bounded by count and by time
            if time.monotonic() > deadline:
                break
            try:
                reply = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind == "stream":
                result.text += body["text"]
            elif kind == "error":
                result.errors.append(f"{body['ename']}: {body['evalue']}")
                result.tracebacks.append("\n".join(body["traceback"]))
            elif kind == "status" and body["execution_state"] == "idle":
                return result
        raise TimeoutError(f"the cell did not finish within {timeout:g} s")

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
