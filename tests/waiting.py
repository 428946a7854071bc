"""A bounded wait for tests: every loop here ends by count and by time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], seconds: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` every ``step`` seconds for at most ``seconds``; return its last value."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / step) + 1):  # bounded by count and by time
        if predicate() or time.monotonic() > deadline:
            break
        time.sleep(step)
    return bool(predicate())
