"""Launch the nbauth demo OpenID provider (``provider/server.mjs``) from Python.

The provider is a local, Auth0-compatible OpenID provider plus a small protected API, bound to
127.0.0.1 only.  Tests and demos use :func:`running_provider`::

    with running_provider(access_token_ttl=5) as info:
        print(info.issuer, info.api_url)

Run ``python provider/devprovider.py --help`` to start one in the foreground by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PROVIDER_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = PROVIDER_DIR / "server.mjs"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

_READY_KEYS = (
    "issuer",
    "api_url",
    "audience",
    "client_id",
    "m2m_client_id",
    "m2m_client_secret",
    "exact_client_id",
    "exact_ports",
    "second_audience",
)


class ProviderError(RuntimeError):
    """The demo provider could not be started (or stopped) as expected."""


@dataclass(frozen=True)
class ProviderInfo:
    """What a running demo provider reported in its ready line, plus its process id.

    Attributes:
        issuer: the issuer, ``http://127.0.0.1:<port>/`` (with the trailing slash, like Auth0).
        api_url: the protected API endpoint, ``http://127.0.0.1:<port>/api/private``.
        audience: the API identifier to pass as ``audience`` (``https://api.nbauth.test/``).
        client_id: the public native client (any loopback port, PKCE, device flow).
        m2m_client_id: the confidential client-credentials client.
        m2m_client_secret: its secret (a fixed demo value).
        exact_client_id: the public client whose redirect URIs match exactly, port included.
        second_audience: a second API identifier (``https://reports.nbauth.test/``), served
            at :attr:`reports_url`, for logins to two APIs side by side.
        exact_ports: the ports registered for ``exact_client_id`` (``http://127.0.0.1:<p>/callback``).
        pid: the node process id.
        log_path: the file that receives the provider's stderr log ("" when not redirected).
    """

    issuer: str
    api_url: str
    audience: str
    client_id: str
    m2m_client_id: str
    m2m_client_secret: str
    exact_client_id: str
    exact_ports: tuple[int, ...]
    pid: int
    log_path: str = ""
    second_audience: str = ""

    @property
    def reports_url(self) -> str:
        """The second API's endpoint (``.../api/reports``, for :attr:`second_audience`)."""
        return self.api_url.rsplit("/", 1)[0] + "/reports"

    @property
    def api_public_url(self) -> str:
        """The unauthenticated API endpoint (``.../api/public``)."""
        return self.api_url.rsplit("/", 1)[0] + "/public"

    def exact_redirect_uri(self, index: int = 0) -> str:
        """The ``index``-th redirect URI registered for :attr:`exact_client_id`."""
        return f"http://127.0.0.1:{self.exact_ports[index]}/callback"


#: Node 22 from the npm registry, put here by scripts/install-system-deps when the system's
#: Node is older than 20 (Debian 12 ships 18).
LOCAL_NODE = PROVIDER_DIR.parent / ".tools" / "node" / "node_modules" / ".bin" / "node"


def _node_executable(node: str | None) -> str:
    candidate = node or os.environ.get("NBAUTH_NODE") or (
        str(LOCAL_NODE) if LOCAL_NODE.exists() else "node")
    found = shutil.which(candidate)
    if not found:
        raise ProviderError(
            f"cannot find the node executable {candidate!r}; run scripts/install-system-deps "
            "(or install Node.js 20 or later)"
        )
    version = subprocess.run(  # noqa: S603 - the node found above, asked for its version
        [found, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30,
    ).stdout.strip()
    if not version or int(version.split(".")[0]) < 20:
        raise ProviderError(
            f"{found} is Node.js {version or '(unknown)'}; the provider needs Node.js 20 or "
            "later: run scripts/install-system-deps, which installs Node 22 into .tools/node"
        )
    return found


def _check_installed() -> None:
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise ProviderError(
            "the demo provider's npm packages are not installed in "
            f"{PROVIDER_DIR / 'node_modules'}; "
            "run `npm ci --prefix provider` from the repository root first"
        )


def _cli_args(
    *,
    port: int | None = None,
    api_port: int | None = None,
    access_token_ttl: int | None = None,
    id_token_ttl: int | None = None,
    refresh_token_ttl: int | None = None,
    device_code_ttl: int | None = None,
    device_interval: int | None = None,
    device_min_poll: int | None = None,
    exact_ports: Sequence[int] | None = None,
    redirect_uris: Sequence[str] = (),
) -> list[str]:
    args: list[str] = []
    numeric = {
        "--port": port,
        "--api-port": api_port,
        "--access-token-ttl": access_token_ttl,
        "--id-token-ttl": id_token_ttl,
        "--refresh-token-ttl": refresh_token_ttl,
        "--device-code-ttl": device_code_ttl,
        "--device-interval": device_interval,
        "--device-min-poll": device_min_poll,
    }
    for flag, value in numeric.items():
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f"{flag.lstrip('-').replace('-', '_')} must be an int, not {value!r}"
                )
            args += [flag, str(value)]
    if exact_ports is not None:
        ports = [int(p) for p in exact_ports]
        if not ports:
            raise ValueError("exact_ports must not be empty")
        args += ["--exact-ports", ",".join(str(p) for p in ports)]
    for uri in redirect_uris:
        args += ["--redirect-uri", str(uri)]
    return args


def _tail(path: str | None, limit: int = 4000) -> str:
    if not path:
        return "(stderr not captured)"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            data = fh.read()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return data[-limit:] if data else "(empty)"


def _read_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Read the first stdout line of ``proc`` within ``timeout`` seconds; then keep draining."""
    if proc.stdout is None:
        raise ProviderError("the provider's stdout is not a pipe")
    lines: queue.Queue[bytes] = queue.Queue(maxsize=1)
    stdout = proc.stdout

    def reader() -> None:
        try:
            first = stdout.readline()
            lines.put(first)
            # Drain anything else so the provider can never block on a full pipe.
            while stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass

    threading.Thread(target=reader, name="nbauth-provider-stdout", daemon=True).start()
    try:
        raw = lines.get(timeout=timeout)
    except queue.Empty:
        raise ProviderError(
            f"the demo provider did not become ready within {timeout:g} s"
        ) from None
    if not raw:
        raise ProviderError("the demo provider exited before it became ready")
    return raw.decode("utf-8", errors="replace").strip()


def _parse_ready(line: str, pid: int, log_path: str) -> ProviderInfo:
    try:
        data: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProviderError(
            f"the demo provider printed an unexpected ready line: {line[:200]!r}"
        ) from exc
    missing = [k for k in _READY_KEYS if k not in data]
    if missing:
        raise ProviderError(f"the demo provider's ready line lacks {', '.join(missing)}")
    return ProviderInfo(
        issuer=str(data["issuer"]),
        api_url=str(data["api_url"]),
        audience=str(data["audience"]),
        client_id=str(data["client_id"]),
        m2m_client_id=str(data["m2m_client_id"]),
        m2m_client_secret=str(data["m2m_client_secret"]),
        exact_client_id=str(data["exact_client_id"]),
        exact_ports=tuple(int(p) for p in data["exact_ports"]),
        pid=pid,
        log_path=log_path,
        second_audience=str(data["second_audience"]),
    )


def _stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Close stdin, SIGTERM, and SIGKILL after ``timeout`` seconds if still running."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()


def _start(
    args: list[str],
    *,
    stderr: IO[bytes] | None,
    log_path: str,
    ready_timeout: float,
    node: str | None,
) -> tuple[subprocess.Popen[bytes], ProviderInfo]:
    _check_installed()
    cmd = [_node_executable(node), str(SERVER_SCRIPT), "--exit-on-stdin-close", *args]
    proc = subprocess.Popen(  # noqa: S603 - a fixed command: node + our own script + int flags
        cmd,
        cwd=str(PROVIDER_DIR),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        close_fds=True,
    )
    try:
        line = _read_ready_line(proc, ready_timeout)
        info = _parse_ready(line, proc.pid, log_path)
    except ProviderError as exc:
        _stop(proc)
        raise ProviderError(f"{exc}\n--- provider stderr (tail) ---\n{_tail(log_path)}") from None
    except BaseException:
        _stop(proc)
        raise
    return proc, info


@contextmanager
def running_provider(
    *,
    port: int | None = None,
    api_port: int | None = None,
    access_token_ttl: int | None = None,
    id_token_ttl: int | None = None,
    refresh_token_ttl: int | None = None,
    device_code_ttl: int | None = None,
    device_interval: int | None = None,
    device_min_poll: int | None = None,
    exact_ports: Sequence[int] | None = None,
    redirect_uris: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
    node: str | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> Iterator[ProviderInfo]:
    """Run the demo provider for the duration of a ``with`` block.

    Keyword options map to the server's command-line flags (``port`` -> ``--port``,
    ``access_token_ttl`` -> ``--access-token-ttl``, ...; ``None`` keeps the server default:
    ports chosen by the OS, 3600 s access and ID tokens, 86400 s refresh tokens, 600 s device
    codes, a device polling interval of 5 s, exact ports 8765-8767; ``redirect_uris`` adds exact
    redirect URIs to the exact client, e.g. a JupyterHub's hub-wide callback).  The provider runs
    with ``--exit-on-stdin-close`` so it dies with this process.  Its stderr goes to ``log_path``
    (kept) or to a temporary file (deleted on exit; the environment variable
    ``NBAUTH_PROVIDER_LOG`` names a file to keep).

    Raises:
        ProviderError: ``provider/node_modules`` is missing, node is missing, or the provider
            did not print its ready line within ``ready_timeout`` seconds (the message ends with
            the tail of its stderr).
    """
    args = _cli_args(
        port=port,
        api_port=api_port,
        access_token_ttl=access_token_ttl,
        id_token_ttl=id_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        device_code_ttl=device_code_ttl,
        device_interval=device_interval,
        device_min_poll=device_min_poll,
        exact_ports=exact_ports,
        redirect_uris=redirect_uris,
    )
    keep_path = str(log_path) if log_path is not None else os.environ.get("NBAUTH_PROVIDER_LOG")
    if keep_path:
        path = keep_path
        log_file: IO[bytes] = open(keep_path, "ab")  # closed below
    else:
        fd, path = tempfile.mkstemp(prefix="nbauth-provider-", suffix=".log")
        log_file = os.fdopen(fd, "wb")
    with log_file:
        try:
            proc, info = _start(
                args, stderr=log_file, log_path=path, ready_timeout=ready_timeout, node=node
            )
            try:
                yield info
            finally:
                _stop(proc)
        finally:
            if not keep_path:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo provider in the foreground (its log on stderr) until Ctrl-C."""
    parser = argparse.ArgumentParser(
        description="Run the nbauth demo OpenID provider (Auth0-like) and its API on 127.0.0.1."
    )
    parser.add_argument(
        "--port", type=_positive_int, help="provider port (default: chosen by the OS)"
    )
    parser.add_argument(
        "--api-port", type=_positive_int, help="API port (default: chosen by the OS)"
    )
    parser.add_argument("--access-token-ttl", type=_positive_int, help="seconds (default 3600)")
    parser.add_argument("--id-token-ttl", type=_positive_int, help="seconds (default 3600)")
    parser.add_argument("--refresh-token-ttl", type=_positive_int, help="seconds (default 86400)")
    parser.add_argument("--device-code-ttl", type=_positive_int, help="seconds (default 600)")
    parser.add_argument(
        "--device-interval", type=_positive_int, help="device polling interval, seconds (default 5)"
    )
    parser.add_argument(
        "--exact-ports", help="comma-separated ports for the exact client (default 8765,8766,8767)"
    )
    parser.add_argument("--json", action="store_true", help="print the ready info as one JSON line")
    ns = parser.parse_args(argv)

    exact = [int(p) for p in ns.exact_ports.split(",") if p.strip()] if ns.exact_ports else None
    args = _cli_args(
        port=ns.port,
        api_port=ns.api_port,
        access_token_ttl=ns.access_token_ttl,
        id_token_ttl=ns.id_token_ttl,
        refresh_token_ttl=ns.refresh_token_ttl,
        device_code_ttl=ns.device_code_ttl,
        device_interval=ns.device_interval,
        exact_ports=exact,
    )
    try:
        proc, info = _start(args, stderr=None, log_path="", ready_timeout=READY_TIMEOUT, node=None)
    except ProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    any_port = "http://127.0.0.1:<any port>/callback"
    if ns.json:
        fields = {k: getattr(info, k) for k in _READY_KEYS}
        fields["exact_ports"] = list(info.exact_ports)
        fields["pid"] = info.pid
        print(json.dumps(fields), flush=True)
    else:
        print(
            "\n".join(
                [
                    "nbauth demo provider is running (Ctrl-C to stop)",
                    f"  issuer            {info.issuer}",
                    f"  discovery         {info.issuer}.well-known/openid-configuration",
                    f"  protected API     {info.api_url}   (audience {info.audience})",
                    f"  public API        {info.api_public_url}",
                    f"  public client     {info.client_id}   (redirect {any_port})",
                    f"  exact client      {info.exact_client_id}   (redirect "
                    + ", ".join(f"http://127.0.0.1:{p}/callback" for p in info.exact_ports)
                    + ")",
                    f"  m2m client        {info.m2m_client_id} / {info.m2m_client_secret}",
                    "  users             demo@example.com, alice@example.com, bob@example.com",
                    "  password          nbauth-demo",
                    f"  pid               {info.pid}",
                    "",
                    "In a notebook (one cell each):",
                    "  %load_ext nbauth",
                    f"  %auth0_login --domain {info.issuer} --client-id {info.client_id} "
                    f"--audience {info.audience} --scope openid profile email offline_access "
                    "read:messages",
                    f"  import requests; requests.get('{info.api_url}', "
                    "headers={'Authorization': f'Bearer {access_token}'}).json()",
                ]
            ),
            flush=True,
        )

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop.is_set() and proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
