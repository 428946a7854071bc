"""Many `%auth0_login`s in one IPython shell (or kernel), and what is left behind afterwards.

`run_logins(shell, ...)` is imported both by benchmarks/bench.py (a plain InteractiveShell in
the benchmark process) and inside a real ipykernel (through jupyter_client), so both measure
exactly the same loop. The scripted person signs in on a thread of the same process.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from typing import Any


def process_counts() -> dict[str, float]:
    """Threads, open file descriptors, listening TCP sockets and RSS of this process."""
    fds = os.listdir("/proc/self/fd")
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                        listening += 1
        except OSError:
            pass
    with open("/proc/self/statm") as fh:
        rss_pages = int(fh.read().split()[1])
    return {
        "threads": threading.active_count(),
        "os_threads": len(os.listdir("/proc/self/task")),
        "fds": len(fds),
        "listening": listening,
        "rss_mb": rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20,
    }


def _settle(baseline: dict[str, float], limit: float = 15.0) -> dict[str, float]:
    """Let closing threads finish and per-thread resources be reclaimed (bounded), then measure.

    (ipykernel gives every thread that publishes output its own zmq pipe and closes the pipes
    of finished threads every 10 s, so a kernel needs that long to give those fds back.)
    """
    deadline = time.monotonic() + limit
    while True:
        gc.collect()
        now = process_counts()
        if (now["threads"] <= baseline["threads"] and now["fds"] <= baseline["fds"]) or (
                time.monotonic() > deadline):
            return now
        time.sleep(0.1)


def one_login(shell: Any, provider: dict[str, Any], complete_login: Any) -> Any:
    magics = shell.magics_manager.registry["AuthMagics"]
    from IPython.utils.capture import capture_output

    with capture_output():
        shell.run_line_magic(
            "auth0_login",
            f"--domain {provider['issuer']} --client-id {provider['client_id']} "
            f"--audience {provider['audience']} --port 0 --no-browser --no-wait")
    login = magics.logins["access_token"]
    complete_login(login.widget._url.value)
    login.pending.wait(timeout=30)
    deadline = time.monotonic() + 10
    while login.credentials is None and time.monotonic() < deadline:
        time.sleep(0.002)
    if login.credentials is None:
        raise RuntimeError("the login did not complete")
    return login


class LoginRun:
    """`warmup` logins, a baseline, `count` logins, then the same measurements again.

    Each step is a method, so that a benchmark can run every login as its own execute request
    in a real kernel (a re-run of one cell, with the cell id a frontend sends), or all of them
    in one call (`run_logins`). Memory is traced with tracemalloc from the baseline on;
    `series` has (logins done, traced KiB) at `points` steps; `top` names the source lines
    that grew most. `settle` bounds the wait for finished threads' resources to be given back.
    """

    def __init__(self, shell: Any, provider: dict[str, Any], count: int, *,
                 warmup: int = 5, points: int = 10, settle: float = 15.0,
                 control: bool = False) -> None:
        from scripted_user import complete_login

        self.control = control  # log in for the warm-up only: what the cells alone keep
        self.shell, self.provider, self.count = shell, provider, count
        self.warmup, self.settle = warmup, settle
        self.step = max(1, count // points)
        self._complete_login = complete_login
        self.done = 0
        self.series: list[tuple[int, float]] = [(0, 0.0)]

    def login(self) -> None:
        """One `%auth0_login` (replacing the previous one), signed in by the scripted person."""
        one_login(self.shell, self.provider, self._complete_login)

    def begin(self) -> None:
        """After the warm-up logins: the baseline, and tracing from here on."""
        gc.collect()
        self.baseline = _settle(process_counts(), limit=0)
        tracemalloc.start(1)
        gc.collect()
        self.start_traced = tracemalloc.get_traced_memory()[0]
        self.snapshot0 = tracemalloc.take_snapshot()
        self.started = time.perf_counter()

    def counted_login(self) -> None:
        if not self.control:
            self.login()
        self.done += 1
        if self.done % self.step == 0 or self.done == self.count:
            gc.collect()
            self.series.append(
                (self.done, (tracemalloc.get_traced_memory()[0] - self.start_traced) / 1024))

    def finish(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        after = _settle(self.baseline, limit=self.settle)
        gc.collect()
        traced_growth = tracemalloc.get_traced_memory()[0] - self.start_traced
        snapshot1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
        top = [
            {"where": str(stat.traceback[0]), "kib": round(stat.size_diff / 1024, 1),
             "count": stat.count_diff}
            for stat in snapshot1.compare_to(self.snapshot0, "lineno")[:6]
        ]
        return {"logins": self.done, "seconds": elapsed, "baseline": self.baseline,
                "after": after, "traced_growth_kib": traced_growth / 1024,
                "series": self.series, "top": top}


def run_logins(shell: Any, provider: dict[str, Any], count: int, *, warmup: int = 5,
               points: int = 10, settle: float = 15.0) -> dict[str, Any]:
    """A whole `LoginRun` in one call (one cell, or a plain shell)."""
    run = LoginRun(shell, provider, count, warmup=warmup, points=points, settle=settle)
    for _ in range(warmup):
        run.login()
    run.begin()
    for _ in range(count):
        run.counted_login()
    return run.finish()
