"""Where a remembered login's refresh token is kept between kernels: the OS keyring or a file.

The OS keyring is used when the optional `keyring` package has a real backend (not its `fail`
or `null` backends, nor a plaintext file keyring); otherwise one JSON file per login under
``<jupyter data dir>/nbauth/``: mode 0600 in a 0700 directory owned by the user, written
atomically (a new file made with O_CREAT|O_EXCL in the same directory, then `os.replace`).
A file or directory another user owns or can read is refused (`TokenStoreError`); a corrupt
file is ignored with a warning. Nothing is ever pickled.

Entries are keyed by issuer, client id, audience and scopes (`StoreKey`), hashed for names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import NbauthWarning, TokenStoreError

__all__ = ["FileStore", "KeyringStore", "RememberedEntry", "StoreKey", "TokenStore",
           "default_store", "store_directory"]

#: keyring "service" name of nbauth's entries.
KEYRING_SERVICE = "nbauth"
#: Largest remembered-login file read (a real one is well under 4 KiB).
MAX_FILE_BYTES = 64 * 1024
#: Longest wait for another kernel's refresh of the same remembered login.
LOCK_TIMEOUT = 60.0
_FORMAT = 1


@dataclass(frozen=True)
class StoreKey:
    """What a remembered login is for: one provider, client, API and set of scopes."""

    issuer: str
    client_id: str
    audience: str | None
    scope: str

    @property
    def digest(self) -> str:
        scopes = sorted(set(self.scope.split()))
        text = json.dumps([self.issuer, self.client_id, self.audience or "", scopes])
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def matches(self, data: dict[str, Any]) -> bool:
        return (data.get("issuer"), data.get("client_id"), data.get("audience") or None,
                sorted(set(str(data.get("scope", "")).split()))) == (
            self.issuer, self.client_id, self.audience,
            sorted(set(self.scope.split())))


@dataclass(frozen=True, repr=False)
class RememberedEntry:
    """A stored login: the refresh token and who it was for (no access token is kept)."""

    refresh_token: str
    subject: str | None = None
    name: str | None = None
    email: str | None = None

    def __repr__(self) -> str:
        return "<nbauth remembered login>"


class TokenStore(Protocol):
    """Load, save and delete remembered logins (both stores below satisfy it)."""

    where: str

    def load(self, key: StoreKey) -> RememberedEntry | None: ...

    def save(self, key: StoreKey, entry: RememberedEntry) -> None: ...

    def delete(self, key: StoreKey) -> None: ...

    def lock(self, key: StoreKey) -> contextlib.AbstractContextManager[bool]: ...

    def keys(self) -> list[StoreKey]: ...


def _encode(key: StoreKey, entry: RememberedEntry) -> str:
    return json.dumps({
        "format": _FORMAT, "issuer": key.issuer, "client_id": key.client_id,
        "audience": key.audience, "scope": key.scope, "refresh_token": entry.refresh_token,
        "subject": entry.subject, "name": entry.name, "email": entry.email,
        "saved_at": int(time.time()),
    })


def _decode(key: StoreKey, text: str | bytes, where: str) -> RememberedEntry | None:
    """Parse a stored entry; a corrupt one is ignored with a warning (never an error)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        data = None
    token = data.get("refresh_token") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(token, str) \
            or not token:
        warnings.warn(f"The remembered login in {where} is corrupt and was ignored; "
                      "log in again to replace it.", NbauthWarning, stacklevel=3)
        return None
    if not key.matches(data):
        return None

    def text_of(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) and value else None

    return RememberedEntry(token, text_of("subject"), text_of("name"), text_of("email"))


# -- the file store -------------------------------------------------------------------------

def store_directory() -> Path:
    """``<jupyter data dir>/nbauth``: jupyter_core's rules when installed, else the same default."""
    try:
        from jupyter_core.paths import jupyter_data_dir
    except ImportError:  # nbauth does not depend on jupyter_core; follow its default rules
        base = os.environ.get("JUPYTER_DATA_DIR") or str(
            Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "jupyter")
        return Path(base) / "nbauth"
    return Path(jupyter_data_dir()) / "nbauth"


@contextlib.contextmanager
def _exclusive(directory: Path, key: StoreKey, timeout: float = LOCK_TIMEOUT) -> Iterator[bool]:
    """Hold this login's lock across processes (POSIX flock, bounded wait); yield if held.

    Kernels that share a remembered login must not refresh at the same time: each refresh
    spends the refresh token, and a spent one sent again revokes the login (Auth0).
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock; each kernel still adopts the newest stored token
        yield False
        return
    try:
        FileStore(directory)._checked_directory(create=True)
        fd = os.open(directory / f".lock-{key.digest}",
                     os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except (OSError, TokenStoreError):
        yield False
        return
    try:
        held, deadline = False, time.monotonic() + timeout
        while not held:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break  # a stuck kernel must not block this one forever
                time.sleep(0.05)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _check_private(st: os.stat_result, path: Path, *, directory: bool) -> None:
    """Refuse what another user owns or may read or write (POSIX; Windows has no modes)."""
    kind, mode = ("directory", 0o700) if directory else ("file", 0o600)
    fix = f"run `chmod {mode:o} {path}`"
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        raise TokenStoreError(
            f"The remembered-login {kind} {path} belongs to another user (uid {st.st_uid}), so "
            f"it was not used. Delete it if you do not know why (`rm -r {path}`).")
    if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
        raise TokenStoreError(
            f"The remembered-login {kind} {path} can be read or changed by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}), so it was not used: {fix}, or delete it and log "
            "in again.")


class FileStore:
    """One JSON file per remembered login, private to the user, replaced atomically."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or store_directory()
        self.where = f"the file store in {self.directory}"

    def path_for(self, key: StoreKey) -> Path:
        return self.directory / f"login-{key.digest}.json"

    def _checked_directory(self, *, create: bool) -> bool:
        directory = self.directory
        if create:
            directory.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            raise TokenStoreError(f"{directory} is not a directory, so remembered logins cannot "
                                  "be kept there; remove it.")
        _check_private(st, directory, directory=True)
        return True

    def load(self, key: StoreKey) -> RememberedEntry | None:
        if not self._checked_directory(create=False):
            return None
        path = self.path_for(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symbolic link where the file should be
            raise TokenStoreError(f"The remembered-login file {path} could not be opened "
                                  f"({exc.strerror}); delete it and log in again.") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise TokenStoreError(f"{path} is not a regular file; delete it.")
            _check_private(st, path, directory=False)
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            data = b""
        return _decode(key, data, str(path))

    def save(self, key: StoreKey, entry: RememberedEntry) -> None:
        self._checked_directory(create=True)
        path = self.path_for(key)
        temporary = self.directory / f".login-{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                     | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                if hasattr(os, "fchmod"):
                    os.fchmod(fh.fileno(), 0o600)  # whatever the umask
                fh.write(_encode(key, entry))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def delete(self, key: StoreKey) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path_for(key))

    def keys(self, limit: int = 200) -> list[StoreKey]:
        """What the stored logins are for (no tokens): to find one whose scope nobody typed
        again. Unreadable, foreign or corrupt files are skipped."""
        try:
            if not self._checked_directory(create=False):
                return []
            paths = sorted(self.directory.glob("login-*.json"))[:limit]
        except (OSError, TokenStoreError):
            return []
        found = []
        for path in paths:
            try:
                st = os.lstat(path)
                _check_private(st, path, directory=False)
                if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
                    continue
                data = json.loads(path.read_bytes())
            except (OSError, ValueError, RecursionError, TokenStoreError):
                continue
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                continue
            issuer, client_id = data.get("issuer"), data.get("client_id")
            audience, scope = data.get("audience"), data.get("scope")
            if isinstance(issuer, str) and isinstance(client_id, str) and isinstance(scope, str) \
                    and (audience is None or isinstance(audience, str)):
                key = StoreKey(issuer, client_id, audience or None, scope)
                if path.name == f"login-{key.digest}.json":
                    found.append(key)
        return found

    def lock(self, key: StoreKey) -> contextlib.AbstractContextManager[bool]:
        return _exclusive(self.directory, key)


# -- the keyring store ----------------------------------------------------------------------

class KeyringStore:
    """Entries in the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.where = f"the OS keyring ({type(backend).__name__})"

    def load(self, key: StoreKey) -> RememberedEntry | None:
        text = self._call("read", self._backend.get_password, KEYRING_SERVICE, key.digest)
        return None if text is None else _decode(key, text, self.where)

    def save(self, key: StoreKey, entry: RememberedEntry) -> None:
        self._call("write", self._backend.set_password, KEYRING_SERVICE, key.digest,
                   _encode(key, entry))

    def delete(self, key: StoreKey) -> None:
        try:
            self._backend.delete_password(KEYRING_SERVICE, key.digest)
        except Exception as exc:  # PasswordDeleteError: there was nothing to delete
            if type(exc).__name__ != "PasswordDeleteError":
                raise TokenStoreError(f"{self.where} could not delete the remembered login "
                                      f"({type(exc).__name__}).") from None

    def lock(self, key: StoreKey) -> contextlib.AbstractContextManager[bool]:
        return _exclusive(store_directory(), key)

    def keys(self) -> list[StoreKey]:
        """A keyring cannot list its entries by service: what is stored is not known here."""
        return []

    def _call(self, what: str, method: Any, *args: str) -> Any:
        try:
            return method(*args)
        except Exception as exc:  # locked, no D-Bus session, access refused …
            raise TokenStoreError(f"{self.where} could not {what} the remembered login "
                                  f"({type(exc).__name__}).") from None


def usable_keyring() -> Any | None:
    """The keyring backend to use, or None: no keyring package, or only unsafe backends."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:
        return None
    try:
        backend: Any = keyring.get_keyring()
    except Exception:  # a broken keyring configuration: use the file store
        return None
    if isinstance(backend, chainer.ChainerBackend):
        # Use the backend the chainer would write to, directly, and only if it is safe.
        found = list(backend.backends)
        backend = found[0] if found else None
    if backend is None or isinstance(backend, (fail.Keyring, null.Keyring)):
        return None
    name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    if "plaintext" in name or name.startswith("keyrings.alt.file") or "null" in name:
        return None
    return backend


def default_store() -> TokenStore:
    """The OS keyring when a safe backend exists, else the private file store."""
    backend = usable_keyring()
    return FileStore() if backend is None else KeyringStore(backend)
