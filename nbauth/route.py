"""How the browser's answer gets back to the kernel: loopback, the Jupyter server, or no callback.

- ``loopback``: the browser runs on the kernel's machine and reaches ``http://127.0.0.1:PORT``
  (RFC 8252 §7.3). The default for local notebooks.
- ``jupyter``: the browser is elsewhere (JupyterHub, Binder, a remote server) but reaches the
  Jupyter server, whose nbauth extension relays ``{base_url}nbauth/callback`` to the kernel. On
  JupyterHub the redirect URI is the hub-wide ``{hub}/hub/user-redirect/nbauth/callback``.
- ``device``: nothing can call back (RFC 8628); the user types a code at the provider.

``auto`` picks loopback locally — unless the Jupyter server that started the kernel listens on
a non-loopback address (``--ip=0.0.0.0``, as Docker images do), where the browser is likely
elsewhere: then the device flow, saying why; in a JupyterHub session it picks ``jupyter`` when
the server extension runs and the hub's public address is configured, and the device flow
otherwise, saying why. The public address comes only from configuration (NBAUTH_PUBLIC_URL,
``c.NbauthConfig.public_url``, or the hub's own JUPYTERHUB_PUBLIC_HUB_URL) — never from request
headers, which whoever sends the request controls (RFC 9700 §4.13).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from .discovery import is_loopback_host, redact_url
from .errors import ConfigurationError, InsecureTransportError

__all__ = ["MODES", "CallbackRoute", "choose_route"]

MODES = ("auto", "loopback", "jupyter", "device")
_CALLBACK = "nbauth/callback"


@dataclass(frozen=True)
class CallbackRoute:
    """The chosen way back, and the words that explain it to the user before the flow starts."""

    mode: str
    reason: str
    redirect_uri: str | None = None
    #: jupyter mode: the base URL of the server that relays (``/user/alice/``) …
    server_base_url: str | None = None
    #: … and the absolute address of its pages, for the link the user opens.
    server_public_url: str | None = None
    registry_dir: Path | None = None
    #: Why `auto` could not route the callback and chose the device flow instead.
    fallback_reason: str | None = None

    def start_link(self, token: str) -> str:
        """The browser link that starts a Jupyter-routed login (token in the query, which
        Jupyter's access log scrubs)."""
        if self.server_public_url is None:
            raise ValueError("only Jupyter-routed logins have a server start link")
        return f"{self.server_public_url}nbauth/start?{urlencode({'key': token})}"

    @property
    def label(self) -> str:
        return {"loopback": "local callback", "jupyter": "via your Jupyter server",
                "device": "device code"}[self.mode]


def choose_route(mode: str = "auto", public_url: str = "",
                 environ: Mapping[str, str] | None = None,
                 registry_dir: Path | None = None) -> CallbackRoute:
    """Decide the callback route for a login started in this process."""
    environ = os.environ if environ is None else environ
    mode = (mode or "auto").strip().lower()
    if mode not in MODES:
        raise ConfigurationError(
            f"The callback mode {mode!r} is unknown; use one of {', '.join(MODES)} "
            "(--callback, NBAUTH_CALLBACK or c.NbauthConfig.callback)."
        )
    if mode == "loopback":
        return CallbackRoute("loopback", "Your browser returns to this kernel on 127.0.0.1.")
    if mode == "device":
        return CallbackRoute("device", "You enter a short code at the provider's page.")
    hub_prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    public_url = public_url.strip()
    if mode == "auto" and not hub_prefix and not public_url:
        remote = _server_reachable_from_elsewhere(environ, registry_dir)
        if remote is None:
            return CallbackRoute("loopback", "Your browser returns to this kernel on 127.0.0.1.")
        return CallbackRoute(
            "device", f"{remote} Until then nbauth uses the device flow, which needs no "
            "callback.", fallback_reason=remote)
    try:
        return _jupyter_route(hub_prefix, public_url, environ, registry_dir)
    except ConfigurationError as exc:
        if mode == "jupyter":
            raise
        return CallbackRoute(
            "device", f"{exc} Until then nbauth uses the device flow, which needs no callback.",
            fallback_reason=str(exc),
        )


def _server_reachable_from_elsewhere(environ: Mapping[str, str],
                                     registry_dir: Path | None) -> str | None:
    """Why the browser may not be on this machine, or None.

    A Jupyter server that listens on a non-loopback address (``--ip=0.0.0.0``, as in Docker
    images) is opened from other machines, where 127.0.0.1 is not this kernel. Only the server
    that started this kernel counts (its process id is JPY_PARENT_PID), and only if it runs
    nbauth's extension, which records the address.
    """
    try:
        parent = int(environ.get("JPY_PARENT_PID", "") or os.getppid())
        from .serverext import server_listen_address
        from .serverext.registry import default_directory

        directory = registry_dir if registry_dir is not None else default_directory()
    except (ValueError, ImportError):
        return None
    address = server_listen_address(directory, parent)
    if address is None or address == "localhost" or is_loopback_host(address):
        return None
    shown = address or "all addresses"
    return (f"This kernel's Jupyter server listens on {shown}, so your browser may be on "
            "another machine, where 127.0.0.1 is not this kernel. Set NBAUTH_PUBLIC_URL (or "
            "--public-url) to the address you open Jupyter at to log in through the server, or "
            "pass --callback loopback if your browser runs on this machine.")


def _jupyter_route(hub_prefix: str, public_url: str, environ: Mapping[str, str],
                   registry_dir: Path | None) -> CallbackRoute:
    from .serverext import server_markers
    from .serverext.registry import default_directory

    try:
        directory = registry_dir if registry_dir is not None else default_directory()
    except ImportError:
        raise ConfigurationError(
            "The Jupyter-routed callback needs jupyter_core (part of every Jupyter install), "
            "which this Python does not have."
        ) from None
    running = server_markers(directory)
    if hub_prefix:
        base_url = hub_prefix if hub_prefix.endswith("/") else hub_prefix + "/"
        hub_url = _hub_public_url(public_url, environ)
        origin = _origin(hub_url)
        server_name = environ.get("JUPYTERHUB_SERVER_NAME", "")
        if server_name:  # user-redirect leads to the default server only
            redirect_uri = f"{origin}{base_url}{_CALLBACK}"
            where = (f"this named server's own callback (register {redirect_uri}; the hub-wide "
                     "URL serves default servers)")
        else:
            redirect_uri = f"{hub_url}user-redirect/{_CALLBACK}"
            where = "the hub-wide callback"
        server_public = f"{origin}{base_url}"
    else:
        if not public_url:
            raise ConfigurationError(
                "The Jupyter-routed callback needs this server's public address: pass "
                "--public-url (or set NBAUTH_PUBLIC_URL, or c.NbauthConfig.public_url) with "
                "the URL you open Jupyter at, e.g. https://jupyter.example.org/."
            )
        server_public = _checked_url(public_url, "NBAUTH_PUBLIC_URL")
        base_url = urlsplit(server_public).path
        redirect_uri = f"{server_public}{_CALLBACK}"
        where = "your Jupyter server"
    if base_url not in running:
        found = (f" (it runs for {', '.join(sorted(running))}, not for {base_url}: if a proxy "
                 "strips a path prefix, give the public URL that maps to the server's base URL)"
                 if running else "")
        raise ConfigurationError(
            "nbauth's Jupyter server extension is not running in this server, so the "
            f"provider cannot send you back through it{found}. Install nbauth in the "
            "environment that runs the Jupyter server (it enables itself) and restart the "
            "server."
        )
    return CallbackRoute(
        "jupyter", f"Your browser returns through {where}: {redirect_uri}",
        redirect_uri=redirect_uri, server_base_url=base_url, server_public_url=server_public,
        registry_dir=directory,
    )


def _hub_public_url(public_url: str, environ: Mapping[str, str]) -> str:
    """The hub's public `…/hub/` URL, from configuration or the hub's own setting."""
    if public_url:
        root = _checked_url(public_url, "NBAUTH_PUBLIC_URL")
        base = environ.get("JUPYTERHUB_BASE_URL", "/") or "/"
        path = urlsplit(root).path
        if "/user/" in path or "/hub/" in path or path.endswith(("/lab/", "/tree/")):
            raise ConfigurationError(
                f"NBAUTH_PUBLIC_URL={redact_url(public_url)!r} is a page inside the hub; give "
                "the hub's own address, e.g. "
                f"{_origin(root)}{base if base.endswith('/') else base + '/'} "
                "(the part of the address bar before /user/ or /hub/)."
            )
        if urlsplit(root).path == "/" and base != "/":
            root = root.rstrip("/") + (base if base.endswith("/") else base + "/")
        return root + "hub/"
    hub = environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "")
    if hub:
        return _checked_url(hub, "JUPYTERHUB_PUBLIC_HUB_URL")
    server = environ.get("JUPYTERHUB_PUBLIC_URL", "")  # this server's URL when the hub knows
    if server:
        base = environ.get("JUPYTERHUB_BASE_URL", "/") or "/"
        origin = _origin(_checked_url(server, "JUPYTERHUB_PUBLIC_URL"))
        return f"{origin}{base if base.endswith('/') else base + '/'}hub/"
    raise ConfigurationError(
        "This JupyterHub's public address is not known to the kernel, so nbauth cannot tell "
        "the provider where to send you back. Set NBAUTH_PUBLIC_URL=https://your-hub.example "
        "(or c.NbauthConfig.public_url; admins: c.JupyterHub.public_url, or the variable in "
        "the spawner's environment)."
    )


def _checked_url(url: str, name: str) -> str:
    """An absolute https URL (http only for loopback hosts), ending in '/'.

    Messages repeat the URL with any user:password@ part redacted: it may hold a password.
    """
    parts = urlsplit(url.strip())
    shown = redact_url(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name}={shown!r} is not an absolute http(s) URL.")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigurationError(f"{name}={shown!r} must be a plain URL (no query, fragment or "
                                 "credentials).")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InsecureTransportError(
            f"{name}={shown!r} uses plain http; a redirect URI must use https unless it is a "
            "loopback address (RFC 9700 §2.6)."
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    # Providers compare redirect URIs exactly: write the host in lower case, drop a default port.
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = "" if parts.port in (None, default) else f":{parts.port}"
    except ValueError:
        raise ConfigurationError(f"{name}={shown!r} has an invalid port.") from None
    return f"{parts.scheme}://{host}{port}{path}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
