"""Where the browser may be sent back to after a login: only this Jupyter server's own pages.

RFC 9700 §4.11.1: a client must not be an open redirector. The rules follow jupyter_server's
`_redirect_safe`, minus its cross-origin allowance: backslashes are treated as the slashes some
browsers take them for, `scheme:///host` collapses the way browsers read it, percent-encoding
is undone before judging, and whatever names a scheme or a host is refused.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

__all__ = ["safe_next"]

_MAX_LENGTH = 2048


def safe_next(candidate: str | None, base_url: str) -> str:
    """Return `candidate` if it is a path on this server (under `base_url`), else `base_url`."""
    if not base_url.startswith("/"):
        base_url = "/" + base_url
    if not base_url.endswith("/"):
        base_url += "/"
    if not candidate or len(candidate) > _MAX_LENGTH:
        return base_url
    for form in _readings(candidate):
        if any(ord(char) < 0x20 or char == "\x7f" for char in form):
            return base_url
        url = form.replace("\\", "/")
        if ":" in url.split("/", 1)[0] or url.startswith("//"):
            return base_url  # a scheme (https:, javascript:) or a network path (//host)
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not (parts.path + "/").startswith(base_url):
            return base_url
        if "/../" in f"{parts.path}/" or "/./" in f"{parts.path}/":
            return base_url
    return candidate


def _readings(candidate: str) -> list[str]:
    """The candidate, and what it becomes after each round of percent-decoding (at most 3)."""
    forms = [candidate]
    for _ in range(3):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms
