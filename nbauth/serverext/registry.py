"""Pending logins that the Jupyter server may relay a callback to (kernel ↔ server extension).

A kernel whose browser is elsewhere (JupyterHub, a remote server) registers each pending login
as a small file in the Jupyter runtime directory, which the kernel and its server share: the
SHA-256 of the login's state names the file; inside are the kernel listener's loopback port, a
relay key the listener demands, the hash of the opaque start token, the server it is meant for
and an expiry (at most ten minutes, as JupyterHub's own OAuth state). The server extension
claims a registration exactly once (an atomic rename), so a callback can be relayed only to the
login it belongs to, only once, only in time. The PKCE verifier never leaves the kernel: the
server relays the browser's request and the kernel does the code exchange.

Files are 0600 in a 0700 directory owned by the user; anything else is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["MAX_TTL", "Registration", "Registry", "default_directory", "token_hash"]

#: The longest a registration stays claimable (JupyterHub's OAuth state cookie: max_age=600).
MAX_TTL = 600.0
#: Registrations read at most per lookup (a user has a handful of logins pending, not more).
_MAX_FILES = 256
_MAX_FILE_BYTES = 4096
_NAME_LENGTH = 64  # hex SHA-256


def token_hash(value: str) -> str:
    """The SHA-256 hex digest naming a state or start token on disk (the value never is)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def default_directory() -> Path:
    """`<jupyter runtime dir>/nbauth-pending`, shared by a server and its kernels."""
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / "nbauth-pending"


@dataclass(frozen=True)
class Registration:
    """One pending login as the server extension sees it (no secret of the login itself)."""

    state_hash: str
    start_hash: str
    port: int
    relay_key: str
    server: str  #: the base URL path of the Jupyter server meant to relay it (/user/alice/)
    expires: float

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires

    def __repr__(self) -> str:
        return f"<Registration port={self.port} server={self.server!r}>"


class Registry:
    """The directory of pending-login files; safe for several kernels and one server."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()

    # -- kernel side ------------------------------------------------------------------------
    def register(self, *, state: str, start_token: str, port: int, relay_key: str,
                 server: str, ttl: float) -> Registration:
        """Write the registration for a pending login (atomically, 0600)."""
        registration = Registration(
            state_hash=token_hash(state), start_hash=token_hash(start_token), port=port,
            relay_key=relay_key, server=server, expires=time.time() + min(ttl, MAX_TTL),
        )
        self._ensure_directory()
        final = self.directory / f"{registration.state_hash}.json"
        temporary = self.directory / f".{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(asdict(registration), file)
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return registration

    def unregister(self, state: str) -> None:
        """Remove a login's registration (it ended); missing is fine."""
        with contextlib.suppress(OSError):
            (self.directory / f"{token_hash(state)}.json").unlink()

    # -- server side ------------------------------------------------------------------------
    def claim(self, state: str, *, server: str | None = None) -> Registration | None:
        """Take the registration for `state` exactly once; None if unknown, taken or unsafe.

        The rename is atomic, so of two concurrent callbacks with the same state only one
        wins. An expired registration is removed and not returned. With `server` (the base URL
        of the server asking), a registration meant for another server is left in place: servers
        of one user may share the runtime directory, and a callback that reaches the wrong one
        must not use up the login its own server is still waiting to complete.
        """
        name = token_hash(state)
        if not self._directory_is_safe():
            return None
        source = self.directory / f"{name}.json"
        if server is not None:
            waiting = self._read(source)
            if waiting is None or waiting.server != server:
                return None
        claimed = self.directory / f".{name}.{secrets.token_hex(8)}.claimed"
        try:
            os.rename(source, claimed)
        except OSError:
            return None
        try:
            registration = self._read(claimed)
        finally:
            with contextlib.suppress(OSError):
                claimed.unlink()
        if registration is None or registration.state_hash != name or registration.expired():
            return None
        if server is not None and registration.server != server:
            return None  # replaced for another server between the check and the rename
        return registration

    def find_start(self, start_token: str) -> Registration | None:
        """The unexpired registration whose start token this is (not consumed: a link may be
        opened twice)."""
        wanted = token_hash(start_token)
        for registration in self._all():
            if hmac.compare_digest(registration.start_hash, wanted) and not registration.expired():
                return registration
        return None

    def sweep(self) -> int:
        """Delete expired and unreadable registrations; return how many were removed."""
        removed = 0
        for path in self._files():
            registration = self._read(path)
            if registration is None or registration.expired():
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        return removed

    # -- internals --------------------------------------------------------------------------
    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self._directory_is_safe():
            raise PermissionError(
                f"{self.directory} must be a directory owned by you with mode 0700; "
                "fix it (chmod 700) or remove it."
            )

    def _directory_is_safe(self) -> bool:
        try:
            info = os.lstat(self.directory)
        except OSError:
            return False
        return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
                and stat.S_IMODE(info.st_mode) & 0o077 == 0)

    def _files(self) -> Iterator[Path]:
        if not self._directory_is_safe():
            return
        with contextlib.suppress(OSError):
            for count, entry in enumerate(os.scandir(self.directory)):
                if count >= _MAX_FILES:
                    return
                if entry.name.endswith(".json") and len(entry.name) == _NAME_LENGTH + 5:
                    yield Path(entry.path)

    def _all(self) -> Iterator[Registration]:
        for path in self._files():
            registration = self._read(path)
            if registration is not None:
                yield registration

    @staticmethod
    def _read(path: Path) -> Registration | None:
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid()
                    or stat.S_IMODE(info.st_mode) & 0o077 or info.st_size > _MAX_FILE_BYTES):
                return None
            with os.fdopen(fd, "rb") as file:
                fd = -1
                data = json.loads(file.read(_MAX_FILE_BYTES))
            return Registration(
                state_hash=_text(data, "state_hash"), start_hash=_text(data, "start_hash"),
                port=_port(data), relay_key=_text(data, "relay_key"),
                server=_text(data, "server"), expires=float(data["expires"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            if fd >= 0:
                os.close(fd)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _text(data: dict[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _port(data: dict[str, object]) -> int:
    value = data["port"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError("port")
    return value
