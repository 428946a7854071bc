"""Another local user's process hammering a loopback listener (run as a separate process).

    python attacker.py PORT SECONDS

Phase 1 sends forged callbacks (random and leaked-looking states, errors without the right
state, a foreign Host header), oversized request lines and headers, and opens idle, half-open
and trickling connections; then it prints ``ready`` and keeps flooding junk requests until
stdin closes or SECONDS pass (bounded by count too). Finally it prints one JSON line: the
status of every forged request (None when the connection was dropped).
"""

from __future__ import annotations

import json
import secrets
import select
import socket
import sys
import time

FORGED = [
    "/callback?code=stolen&state=" + secrets.token_urlsafe(32),          # random 256-bit state
    "/callback?code=stolen&state=" + secrets.token_urlsafe(32)[:-1] + "A",
    "/callback?code=stolen&state=",
    "/callback?code=stolen",
    "/callback?error=access_denied",                                     # S-14: no state
    "/callback?error=access_denied&state=" + secrets.token_urlsafe(32),  # S-14: wrong state
    "/callback?error=login_required&error_description=%3Cscript%3Ealert(1)%3C/script%3E",
    "/callback?state=x&state=y&code=z",
    "/callback?" + "&".join(f"k{i}=v" for i in range(200)),
    "/start/" + secrets.token_urlsafe(24),
    "/../../etc/passwd",
    "/favicon.ico",
]
MAX_JUNK = 2000


def request(port: int, raw: bytes, timeout: float = 5.0) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(raw)
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        return None


def get(port: int, path: str, host: str | None = None, extra: str = "") -> int | None:
    host = host or f"127.0.0.1:{port}"
    return request(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())


def main() -> None:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    results: dict[str, list[int | None]] = {"forged": [], "foreign_host": [], "oversized": []}
    held: list[socket.socket] = []
    for _ in range(24):  # idle connections that never send a byte
        held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    for _ in range(8):  # half-open: the client closes its sending side at once
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.shutdown(socket.SHUT_WR)
        held.append(s)
    for _ in range(8):  # slowloris: a request line that never ends
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /callback?state=")
        held.append(s)
    for path in FORGED:
        results["forged"].append(get(port, path))
    results["foreign_host"].append(get(port, "/callback?code=c&state=s", host=f"evil.example:{port}"))
    results["foreign_host"].append(get(port, "/callback?code=c&state=s", host="localhost"))
    results["foreign_host"].append(request(port, b"GET /callback?code=c&state=s HTTP/1.0\r\n\r\n"))
    results["oversized"].append(get(port, "/callback?state=" + "a" * 70_000))
    results["oversized"].append(get(port, "/callback", extra="X-Big: " + "b" * 70_000 + "\r\n"))
    results["oversized"].append(get(port, "/callback", extra="".join(
        f"X-H{i}: v\r\n" for i in range(150))))
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    junk = 0
    while time.monotonic() < deadline and junk < MAX_JUNK:
        if select.select([sys.stdin], [], [], 0)[0]:
            break  # the test closed our stdin: the real login is over
        junk += 1
        request(port, secrets.token_bytes(64) + b"\r\n\r\n", timeout=2)
        get(port, "/callback?code=junk&state=" + secrets.token_urlsafe(8))
    results["junk"] = [junk]
    for s in held:
        s.close()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
