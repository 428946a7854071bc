"""Settings for notebook logins, the Jupyter way.

Precedence (later wins): traitlets config (``c.NbauthConfig.domain = …`` in
ipython_config.py), then environment variables (AUTH0_DOMAIN, AUTH0_CLIENT_ID, AUTH0_AUDIENCE,
NBAUTH_PORTS, NBAUTH_SCOPE), then the magic's own options.
"""

from __future__ import annotations

import keyword
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Enum, Float, Int, List, Unicode, validate
from traitlets.config import Configurable

from .defaults import DEFAULT_PORTS, DEFAULT_SCOPE, DEFAULT_TIMEOUT, MAX_TIMEOUT
from .errors import ConfigurationError
from .route import MODES

__all__ = ["ENVIRONMENT", "LoginSettings", "NbauthConfig", "parse_ports"]

#: Environment variable → setting name.
ENVIRONMENT: dict[str, str] = {
    "AUTH0_DOMAIN": "domain",
    "AUTH0_CLIENT_ID": "client_id",
    "AUTH0_AUDIENCE": "audience",
    "NBAUTH_SCOPE": "scope",
    "NBAUTH_PORTS": "ports",
    "NBAUTH_CALLBACK": "callback",
    "NBAUTH_PUBLIC_URL": "public_url",
}

_HOW_TO_SET = {
    "domain": "pass --domain example.eu.auth0.com, set AUTH0_DOMAIN, or set "
              "c.NbauthConfig.domain in ipython_config.py",
    "client_id": "pass --client-id YOUR_CLIENT_ID, set AUTH0_CLIENT_ID, or set "
                 "c.NbauthConfig.client_id in ipython_config.py",
}


def parse_ports(text: str) -> tuple[int, ...]:
    """'8765' or '8765,8766, 8767' → (8765, 8766, 8767)."""
    ports: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            port = int(item)
        except ValueError:
            raise ConfigurationError(
                f"The port {item!r} is not a number. Use --port 8765 or --port 8765,8766."
            ) from None
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"The port {port} is out of range (0–65535).")
        ports.append(port)
    if not ports:
        raise ConfigurationError("No port given. Use --port 8765 or --port 8765,8766.")
    return tuple(ports)


def _check_variable_name(option: str, name: object) -> None:
    flag = "--" + option.replace("_", "-")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigurationError(f"{flag} {name!r} is not a valid Python name.")
    if name.startswith("__") or name in ("In", "Out", "get_ipython", "exit", "quit"):
        raise ConfigurationError(
            f"{flag} {name!r} would overwrite a name IPython itself uses; choose another."
        )


class HiddenText(str):
    """A str whose repr hides it: `%config NbauthConfig` prints every trait's current value."""

    def __repr__(self) -> str:
        return "'<hidden>'" if self else "''"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("a hidden setting is not picklable")


class NbauthConfig(Configurable):
    """Defaults for %auth0_login; every option of the magic can be set here."""

    domain = Unicode("", help="Auth0 tenant domain (example.eu.auth0.com) or an OIDC issuer URL."
                     ).tag(config=True)
    client_id = Unicode("", help="Client id of a Native (public) application.").tag(config=True)
    audience = Unicode("", help="API identifier to request an access token for (Auth0 "
                       "'audience'); empty for none.").tag(config=True)
    scope = Unicode(DEFAULT_SCOPE, help="Space-separated scopes to request.").tag(config=True)
    ports = List(Int(), default_value=list(DEFAULT_PORTS), help="Loopback callback ports to "
                 "try in order; register http://127.0.0.1:PORT/callback for each at the "
                 "provider.").tag(config=True)
    timeout = Float(DEFAULT_TIMEOUT, help="Seconds to wait for the browser login.").tag(config=True)
    var = Unicode("access_token", help="Name of the namespace variable that receives the "
                  "access token.").tag(config=True)
    session_var = Unicode("auth0_session", help="Name of the namespace variable that receives "
                          "a requests.Session sending the token.").tag(config=True)
    open_browser = Bool(True, help="Open the login page with Python's webbrowser module in "
                        "local sessions.").tag(config=True)
    wait = Bool(True, help="Make the login cell wait until the login ends (so Run All "
                "works).").tag(config=True)
    callback = Enum(MODES, default_value="auto", help="How the browser returns to the kernel: "
                    "'loopback' (127.0.0.1), 'jupyter' (through the Jupyter server's nbauth "
                    "extension; for JupyterHub and remote servers), 'device' (no callback: "
                    "enter a code), or 'auto' (loopback locally; on JupyterHub the Jupyter "
                    "route when possible, else the device flow).").tag(config=True)
    public_url = Unicode("", help="The address users open Jupyter at, for the Jupyter-routed "
                         "callback: the hub's URL on JupyterHub (https://hub.example.org/), "
                         "the server's URL otherwise. Never taken from request headers."
                         ).tag(config=True)
    remember = Bool(False, help="Keep the refresh token across kernel restarts (OS keyring, "
                    "else a private file in the Jupyter data directory) so the next login "
                    "needs no browser (--remember).").tag(config=True)
    allow_remember_on_shared_hosts = Bool(False, help="Administrators: allow --remember on "
                                          "JupyterHub and Binder, where it is off by "
                                          "default.").tag(config=True)
    client_secret = Unicode("", help="Secret of a confidential client for "
                            "--client-credentials. Prefer AUTH0_CLIENT_SECRET; keep a config "
                            "file holding it readable by you only.").tag(config=True)

    @validate("client_secret")
    def _hide_secret(self, proposal: Any) -> HiddenText:
        return HiddenText(proposal["value"])


@dataclass
class LoginSettings:
    """Resolved settings for one login."""

    domain: str
    client_id: str
    audience: str | None = None
    scope: str = DEFAULT_SCOPE
    ports: tuple[int, ...] = DEFAULT_PORTS
    timeout: float = DEFAULT_TIMEOUT
    var: str = "access_token"
    session_var: str = "auth0_session"
    open_browser: bool = True
    wait: bool = True
    device: bool = False
    callback: str = "auto"
    public_url: str = ""
    remember: bool = False
    allow_remember_on_shared_hosts: bool = False
    client_credentials: bool = False
    client_secret: str | None = field(default=None, repr=False, compare=False)
    extra_params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        config: NbauthConfig,
        overrides: Mapping[str, Any],
        environ: Mapping[str, str] | None = None,
    ) -> LoginSettings:
        """Merge config, then environment, then `overrides` (None values are ignored)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {
            name: getattr(config, name)
            for name in ("domain", "client_id", "audience", "scope", "ports", "timeout", "var",
                         "session_var", "open_browser", "wait", "callback", "public_url",
                         "remember", "allow_remember_on_shared_hosts")
        }
        values["client_secret"] = config.client_secret or None
        values["ports"] = tuple(values["ports"])
        for env_name, name in ENVIRONMENT.items():
            raw = environ.get(env_name, "").strip()
            if raw and name == "ports":
                try:
                    values[name] = parse_ports(raw)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{env_name}={raw!r}: {exc}") from None
            elif raw:
                values[name] = raw
        extra = dict(overrides.get("extra_params") or {})
        for name, value in overrides.items():
            if name != "extra_params" and value is not None:
                values[name] = value
        values.setdefault("device", False)
        if values["device"]:
            values["callback"] = "device"
        values["callback"] = str(values["callback"]).strip().lower()
        if values["callback"] not in MODES:
            raise ConfigurationError(
                f"The callback mode {values['callback']!r} is unknown; use one of "
                f"{', '.join(MODES)}."
            )
        values.setdefault("client_credentials", False)
        if values["client_credentials"] and (values["device"] or values["remember"]):
            raise ConfigurationError("--client-credentials cannot be combined with --device or "
                                     "--remember (a client secret is the machine's login).")
        for name in ("domain", "client_id"):
            if not values[name]:
                raise ConfigurationError(
                    f"No {name.replace('_', ' ')} is set: {_HOW_TO_SET[name]}."
                )
        for name in ("var", "session_var"):
            _check_variable_name(name, values[name])
        if values["var"] == values["session_var"]:
            raise ConfigurationError(
                f"--var and --session-var are both {values['var']!r}; give them different names."
            )
        if not 0 < values["timeout"] <= MAX_TIMEOUT:
            raise ConfigurationError(
                f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds, "
                f"not {values['timeout']:g}."
            )
        values["audience"] = values["audience"] or None
        return cls(extra_params=extra, **values)
