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


def close_widget_tree(widget: Any) -> None:
    """Close a widget, its children and their layout/style models (what a frontend would
    have to ask for to free a widget whose output was cleared; none does)."""
    from ipywidgets import Widget

    for child in getattr(widget, "children", ()):
        close_widget_tree(child)
    for name in ("layout", "style"):
        part = getattr(widget, name, None)
        if isinstance(part, Widget):
            part.close()
    widget.close()


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


def run_logins(shell: Any, provider: dict[str, Any], count: int, *, warmup: int = 5,
               points: int = 10, close_replaced_widgets: bool = False,
               settle: float = 15.0) -> dict[str, Any]:
    """`warmup` logins, a baseline, `count` logins, then the same measurements again.

    Memory is traced with tracemalloc from the baseline on; `series` has (logins done,
    traced KiB) at `points` steps; `top` names the source lines that grew most. With
    `close_replaced_widgets`, each replaced login's widget is closed, to tell what nbauth keeps
    apart from the widgets ipywidgets keeps registered while they are displayed. `settle` bounds
    the wait for finished threads' resources to be given back.
    """
    from scripted_user import complete_login

    previous: list[Any] = []

    def login_once() -> None:
        login = one_login(shell, provider, complete_login)
        if close_replaced_widgets:
            for old in previous:
                close_widget_tree(old.widget)
            previous[:] = [login]

    for _ in range(warmup):
        login_once()
    gc.collect()
    baseline = _settle(process_counts(), limit=0)
    tracemalloc.start(1)
    gc.collect()
    start_traced = tracemalloc.get_traced_memory()[0]
    snapshot0 = tracemalloc.take_snapshot()
    series = [(0, 0.0)]
    step = max(1, count // points)
    started = time.perf_counter()
    for i in range(1, count + 1):
        login_once()
        if i % step == 0 or i == count:
            gc.collect()
            series.append((i, (tracemalloc.get_traced_memory()[0] - start_traced) / 1024))
    elapsed = time.perf_counter() - started
    after = _settle(baseline, limit=settle)
    gc.collect()
    traced_growth = tracemalloc.get_traced_memory()[0] - start_traced
    snapshot1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    top = [
        {"where": str(stat.traceback[0]), "kib": round(stat.size_diff / 1024, 1),
         "count": stat.count_diff}
        for stat in snapshot1.compare_to(snapshot0, "lineno")[:6]
    ]
    return {"logins": count, "seconds": elapsed, "baseline": baseline, "after": after,
            "traced_growth_kib": traced_growth / 1024, "series": series, "top": top}
