"""Flood a loopback listener with junk from another process (bounded in count and time).

    python benchmarks/flood.py PORT MODE MAX_REQUESTS MAX_SECONDS [CONCURRENCY]

MODE:
  junk   CONCURRENCY clients each send junk requests back to back, one per connection:
         wrong paths, /favicon.ico, /callback with a forged state, an error without state,
         a foreign Host, a POST, and raw garbage bytes.
  idle   CONCURRENCY clients open connections and send nothing (slowloris), reopening
         whenever the listener drops one.
  mixed  half of each.
Prints one line "started" when the clients run, and a JSON summary when done.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

JUNK = [
    b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    b"GET /callback?code=forged&state=forged HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    b"GET /callback?error=access_denied HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    b"GET /callback?code=x&state=y HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    b"GET /start/not-the-token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    b"POST /callback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
]


#: The rate is measured over the first WINDOW seconds, while the listener still runs (the
#: benchmark sends the real callback after that; the listener closes once the login is done).
WINDOW = 0.3


class Budget:
    def __init__(self, max_requests: int, max_seconds: float) -> None:
        self.left = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.sent = 0
        self.failed = 0
        self.started = time.monotonic()
        self.early = 0  # connections answered in the first WINDOW s, before the real callback

    def ok(self) -> None:
        self.sent += 1
        if time.monotonic() - self.started < WINDOW:
            self.early += 1

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


async def junk_client(port: int, budget: Budget, index: int) -> None:
    i = index
    while budget.take():
        payload = JUNK[i % len(JUNK)].replace(b"{port}", str(port).encode())
        i += 1
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 1.0)
            writer.write(payload)
            await writer.drain()
            await asyncio.wait_for(reader.read(65536), 2.0)
            writer.close()
            budget.ok()
        except (OSError, asyncio.TimeoutError):
            budget.failed += 1
            await asyncio.sleep(0.01)


async def idle_client(port: int, budget: Budget) -> None:
    while budget.take():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 1.0)
            budget.ok()
            # Hold the connection silently until the listener drops it or time runs out.
            remaining = max(0.0, budget.deadline - time.monotonic())
            try:
                await asyncio.wait_for(reader.read(1), remaining)
            except asyncio.TimeoutError:
                pass
            writer.close()
        except (OSError, asyncio.TimeoutError):
            budget.failed += 1
            await asyncio.sleep(0.01)


async def main(port: int, mode: str, max_requests: int, max_seconds: float,
               concurrency: int) -> dict[str, object]:
    budget = Budget(max_requests, max_seconds)
    tasks = []
    n_idle = {"junk": 0, "idle": concurrency, "mixed": concurrency // 2}[mode]
    for i in range(concurrency):
        if i < n_idle:
            tasks.append(asyncio.create_task(idle_client(port, budget)))
        else:
            tasks.append(asyncio.create_task(junk_client(port, budget, i)))
    print("started", flush=True)
    start = time.monotonic()
    await asyncio.wait(tasks, timeout=max_seconds + 3)
    for task in tasks:
        task.cancel()
    elapsed = time.monotonic() - start
    return {"mode": mode, "connections": budget.sent, "failed": budget.failed,
            "seconds": round(elapsed, 3), "per_second": round(budget.early / WINDOW)}


if __name__ == "__main__":
    port, mode, max_requests, max_seconds = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                             float(sys.argv[4]))
    concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 32
    if mode not in ("junk", "idle", "mixed"):
        sys.exit(f"unknown mode {mode!r}: use junk, idle or mixed")
    print(json.dumps(asyncio.run(main(port, mode, max_requests, max_seconds, concurrency))),
          flush=True)
