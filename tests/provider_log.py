"""Count what the real provider did, from its request log (method, path, status; no secrets)."""

from __future__ import annotations

import time
from pathlib import Path


def log_lines(info) -> list[str]:
    return Path(info.log_path).read_text(encoding="utf-8", errors="replace").splitlines()


def token_requests(info) -> int:
    """POSTs to /oauth/token so far (any grant, any answer)."""
    return sum("POST /oauth/token ->" in line for line in log_lines(info))


def refresh_grants(info) -> int:
    """Refresh tokens the provider accepted so far."""
    return sum("token issued: grant_type=refresh_token" in line for line in log_lines(info))


def settled(count, seconds: float = 2.0):
    """The value of `count()` once it stops changing (the log is written asynchronously)."""
    deadline = time.monotonic() + seconds
    value = count()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        again = count()
        if again == value:
            return value
        value = again
    return value


def revocations(info) -> int:
    """RFC 7009 revocation requests the provider answered so far."""
    return sum("POST /oauth/revoke ->" in line for line in log_lines(info))


def refresh_refused(info, refresh_token) -> bool:
    """Whether the provider refuses `refresh_token` now (one refresh grant; it spends a live
    token, so probe once, after the revocation was seen)."""
    import requests

    answer = requests.post(info.issuer + "oauth/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": str(refresh_token),
        "client_id": info.client_id})
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
