"""The loopback redirect listener for native apps (RFC 8252 §7.3, §8.3).

It binds 127.0.0.1 only (never 0.0.0.0 or "localhost"), exclusively, before any URL is shown;
serves one path on a background daemon thread; answers everything else with a 4xx and keeps
waiting; never writes a request line anywhere; bounds connections, their time and their size.
What a callback *means* (state, code, error) is decided by the `handler` the login supplies.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import secrets
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .defaults import DEFAULT_PORTS
from .errors import ConfigurationError, LoopbackBindError
from .pages import PAGE_HEADERS, render_page

__all__ = ["CALLBACK_PATH", "DEFAULT_PORTS", "LOOPBACK_HOST", "RELAY_HEADER", "START_PATH",
           "CallbackListener", "Reply", "parse_callback_query"]

LOOPBACK_HOST = "127.0.0.1"
CALLBACK_PATH = "/callback"
#: `/start/<token>` redirects the browser to the authorization URL, so the URL that is shown,
#: opened and saved with a notebook carries an opaque token instead of the login's state.
START_PATH = "/start/"
#: In relay mode (Jupyter-routed logins) every request must carry the login's relay key here.
RELAY_HEADER = "X-Nbauth-Relay"


#: At most this many connections are served at once; more are closed unanswered.
MAX_CONNECTIONS = 16
#: Seconds a connection may last in all (slow or half-open clients are dropped).
CONNECTION_TIMEOUT = 10.0
#: Seconds close() lets a callback's page finish sending.
REPLY_GRACE = 2.0
_MAX_QUERY_FIELDS = 32
_PORT_TAKEN = (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1))


def host_matches(host: str, port: int) -> bool:
    """Whether a request's Host header names this listener (DNS rebinding defence, S-13).
    Browsers leave out the default port: "Host: 127.0.0.1" on port 80 (RFC 9110 §7.2)."""
    return host == f"{LOOPBACK_HOST}:{port}" or (port == 80 and host == LOOPBACK_HOST)


@dataclass(frozen=True)
class Reply:
    """What the listener sends back for one request; `final` closes the listener afterwards."""

    status: int
    title: str
    message: str
    ok: bool = False
    final: bool = False


CallbackHandler = Callable[[Mapping[str, str]], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # SO_REUSEADDR lets a new login rebind a port whose old connections sit in TIME_WAIT; on
    # Linux/macOS it never lets two sockets *listen* on one port. Windows needs the opposite.
    allow_reuse_address = sys.platform != "win32"
    # Room for a burst of junk connections: a full accept queue drops the real callback's SYN,
    # which the browser resends only after a second (benchmark 6).
    request_queue_size = 128
    timeout = 0.0  # handle_request() is called only when a connection is ready: never block

    def __init__(self, port: int, listener: CallbackListener) -> None:
        self.listener = listener
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._waiting: dict[Any, float] = {}  # connections that have not sent their request yet
        self._waiting_lock = threading.Lock()
        super().__init__((LOOPBACK_HOST, port), _RequestHandler, bind_and_activate=False)
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            exclusive = getattr(socket, "SO_EXCLUSIVEADDRUSE")  # noqa: B009 - Windows-only name
            self.socket.setsockopt(socket.SOL_SOCKET, exclusive, 1)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Full: drop the connection that has waited longest without sending a request
            # (a slow or idle client), so a real browser is never locked out.
            self._evict_oldest_waiting()
            if not self._slots.acquire(timeout=1.0):
                self.shutdown_request(request)
                return
        with self._waiting_lock:
            self._waiting[request] = time.monotonic()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # A connection gets CONNECTION_TIMEOUT seconds in all, however slowly it trickles.
        watchdog = threading.Timer(CONNECTION_TIMEOUT, _drop, args=(request,))
        watchdog.daemon = True
        watchdog.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            watchdog.cancel()
            self._forget(request)
            self._slots.release()

    def request_received(self, request: Any) -> None:
        """The handler has read a whole request head: this connection is no eviction target."""
        self._forget(request)

    def _forget(self, request: Any) -> None:
        with self._waiting_lock:
            self._waiting.pop(request, None)

    def _evict_oldest_waiting(self) -> None:
        with self._waiting_lock:
            if not self._waiting:
                return
            oldest = min(self._waiting, key=self._waiting.__getitem__)
            del self._waiting[oldest]
        _drop(oldest)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the default prints a traceback (with the request) to stderr


def _drop(connection: Any) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)  # wakes the handler thread blocked in recv
    except OSError:
        pass


def parse_callback_query(query: str) -> dict[str, str] | None:
    """The callback's query as a dict, or None if it cannot be a login response: empty, more
    than a few dozen fields, or a repeated name (which value would count is ambiguous)."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False,
                          max_num_fields=_MAX_QUERY_FIELDS)
    except ValueError:
        return None
    params = dict(pairs)
    if not pairs or len(params) != len(pairs):
        return None
    return params


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = CONNECTION_TIMEOUT
    server_version = "nbauth"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the default writes the request line — with ?code=…&state=… — to stderr

    def do_GET(self) -> None:
        self.server.request_received(self.request)
        listener = self.server.listener
        expected_host = f"{LOOPBACK_HOST}:{listener.port}"
        if not host_matches(self.headers.get("Host", ""), listener.port):
            self._send(Reply(400, "Wrong address",
                             f"This page is served only at http://{expected_host}/."))
            return
        if not listener.relay_allows(self.headers.get(RELAY_HEADER)):
            self._send(Reply(403, "Use your Jupyter server",
                             "This login completes through your Jupyter server, not here."))
            return
        url = urlsplit(self.path)
        if url.path.startswith(START_PATH):
            location = listener.start_location(url.path[len(START_PATH):])
            if location is None:
                self._send(Reply(404, "Login not found", "This login link is no longer valid. "
                                 "Run the login again in your notebook."))
            else:
                self._redirect(location)
            return
        if url.path != CALLBACK_PATH:
            self._send(Reply(404, "Not found", "This is nbauth's login callback; nothing else "
                             "is served here."))
            return
        params = parse_callback_query(url.query)
        if params is None:
            self._send(Reply(400, "Not a login response",
                             "This request does not carry a login response. If you are logging "
                             "in, keep waiting for the provider to send you back here."))
            return
        with listener.answering():
            self._send(listener.dispatch(params))

    def do_HEAD(self) -> None:
        self.server.request_received(self.request)
        self._send(Reply(405, "Method not allowed", "Only GET is served here."))

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def _redirect(self, location: str) -> None:
        try:
            self.send_response(303)
            self.send_header("Location", location)
            for name in ("Cache-Control", "Pragma", "Referrer-Policy"):
                self.send_header(name, PAGE_HEADERS[name])
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
        except OSError:
            pass

    def _send(self, reply: Reply) -> None:
        relayed = self.server.listener.relay_key is not None
        if relayed:  # the server extension renders the page (with a link back to Jupyter)
            body = json.dumps({"title": reply.title, "message": reply.message,
                               "ok": reply.ok}).encode()
            headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        else:
            body = render_page(reply.title, reply.message, ok=reply.ok)
            headers = PAGE_HEADERS
        try:
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            if reply.status == 405:
                self.send_header("Allow", "GET")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            pass  # the browser went away; the outcome stands
        finally:
            if reply.final:
                self.server.listener.close_soon()


class CallbackListener:
    """An HTTP listener on 127.0.0.1 for the authorization response.

    Binding happens in the constructor, so a URL is only ever built for a port that is ours.
    """

    def __init__(self, ports: Sequence[int], handler: CallbackHandler | None = None, *,
                 relay_key: str | None = None) -> None:
        if not ports:
            raise ConfigurationError("No callback port is configured. Pass --port 8765 "
                                     "(and register http://127.0.0.1:8765/callback).")
        for port in ports:
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise ConfigurationError(
                    f"The callback port {port!r} is not a port number (0–65535)."
                )
        self._handler = handler
        #: When set, only the Jupyter server extension (which read it from the 0600
        #: registration) may talk to this listener; browsers and other local users get 403.
        self.relay_key = relay_key
        self._start: tuple[str, str] | None = None  # (token, authorization URL)
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._answers = threading.Condition()
        self._answering = 0  # callbacks being handled and answered now (see answering())
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None  # close() → serving thread
        self._server = self._bind(ports)
        self.port: int = self._server.server_address[1]

    def _bind(self, ports: Sequence[int]) -> _Server:
        busy: list[int] = []
        denied: list[int] = []
        for port in ports:
            try:
                return _Server(port, self)
            except OSError as exc:
                if exc.errno in _PORT_TAKEN:
                    (denied if exc.errno == errno.EACCES else busy).append(port)
                    continue
                raise LoopbackBindError(
                    f"Could not listen on {LOOPBACK_HOST}:{port} ({exc.strerror}).",
                    tuple(ports),
                ) from None
        problems = []
        if busy:
            names = ", ".join(str(p) for p in busy)
            problems.append(f"The callback port{'s' if len(busy) > 1 else ''} {names} "
                            f"{'are' if len(busy) > 1 else 'is'} in use by another program.")
        if denied:
            names = ", ".join(str(p) for p in denied)
            problems.append(f"This user may not listen on port{'s' if len(denied) > 1 else ''} "
                            f"{names} (ports below 1024 need privileges).")
        tried = ", ".join(f"http://{LOOPBACK_HOST}:{p}{CALLBACK_PATH}" for p in ports)
        raise LoopbackBindError(
            f"{' '.join(problems)} Free one, or pass another with --port N and register "
            f"http://{LOOPBACK_HOST}:N{CALLBACK_PATH} as an Allowed Callback URL at the provider "
            f"(tried: {tried}).",
            tuple(ports),
        )

    @property
    def redirect_uri(self) -> str:
        """The redirect URI for this listener, with the same IP literal it is bound to."""
        return f"http://{LOOPBACK_HOST}:{self.port}{CALLBACK_PATH}"

    def set_start(self, location: str) -> str:
        """Serve `location` behind a fresh opaque token (at START_PATH); return the token."""
        token = secrets.token_urlsafe(24)
        self._start = (token, location)
        return token

    def start_link(self, token: str) -> str:
        """The browser-facing link for a start token on this listener."""
        return f"http://{LOOPBACK_HOST}:{self.port}{START_PATH}{token}"

    def relay_allows(self, presented: str | None) -> bool:
        """Without a relay key anyone may call; with one, only who presents it."""
        if self.relay_key is None:
            return True
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "replace"), self.relay_key.encode("ascii"))

    def start_location(self, token: str) -> str | None:
        start = self._start
        if start is None or self.closed:
            return None
        if not hmac.compare_digest(token.encode("utf-8", "replace"), start[0].encode("ascii")):
            return None
        return start[1]

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self, handler: CallbackHandler | None = None) -> None:
        """Start serving on a daemon thread."""
        if handler is not None:
            self._handler = handler
        if self._handler is None:
            raise RuntimeError("CallbackListener.start() needs a handler")
        # Under the close lock: a close() from another thread (a newer login superseding this
        # one) either comes first, and nothing starts, or finds the thread started to join.
        with self._close_lock:
            if self._closed.is_set():
                return
            self._wake = socket.socketpair()
            self._thread = threading.Thread(
                target=self._serve,
                args=(self._wake[0],),
                name=f"nbauth-loopback-{self.port}",
                daemon=True,
            )
            self._thread.start()

    def _serve(self, wake: socket.socket) -> None:
        """Accept connections until close(), which wakes this loop at once.

        (socketserver's serve_forever notices a shutdown only at its next poll, so every
        login's close — and with it `wait()` — took up to a poll interval longer.)
        """
        server = self._server
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in selector.select():
                    if key.fileobj is server and not self._closed.is_set():
                        server.handle_request()  # accepts one connection; serves it on a thread

    def dispatch(self, params: Mapping[str, str]) -> Reply:
        handler = self._handler
        if handler is None or self.closed:
            return Reply(410, "Login finished", "This login is no longer waiting.")
        try:
            return handler(params)
        except Exception:  # a bug must not leave the browser hanging or print the query
            return Reply(500, "Login failed", "nbauth could not process this response.",
                         final=False)

    def close_soon(self) -> None:
        """Close from a request thread without waiting for ourselves."""
        threading.Thread(target=self.close, name="nbauth-loopback-close", daemon=True).start()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around handling a callback and sending its page, which close() lets finish."""
        with self._answers:
            self._answering += 1
        try:
            yield
        finally:
            with self._answers:
                self._answering -= 1
                self._answers.notify_all()

    def close(self) -> None:
        """Stop serving and free the port; idempotent, safe from any thread.

        A page still being sent for a callback is given REPLY_GRACE seconds to finish first:
        `wait()` returns as soon as the login has its result, and a script that then exits
        would cut off the browser's "Logged in" page.
        """
        with self._answers:
            self._answers.wait_for(lambda: self._answering == 0, timeout=REPLY_GRACE)
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            if self._wake is not None:
                try:
                    self._wake[1].send(b"\0")
                except OSError:
                    pass
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
            self._server.server_close()
            if self._wake is not None:
                for end in self._wake:
                    end.close()

    def __enter__(self) -> CallbackListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
