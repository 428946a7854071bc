"""nbauth: log in to Auth0 or any OpenID Connect provider from a Jupyter notebook.

Authorization Code + PKCE (RFC 7636) through a loopback listener (RFC 8252), with the ID token
validated before anything is stored. In a notebook: ``%load_ext nbauth`` then ``%auth0_login``;
in a script: ``nbauth.login(domain=..., client_id=...)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AccessDeniedError,
    ConfigurationError,
    DeviceFlowUnsupportedError,
    DeviceLoginExpiredError,
    IdTokenError,
    LoginCancelledError,
    LoginRequiredError,
    LoginTimeoutError,
    LoopbackBindError,
    NbauthError,
    NbauthWarning,
    OAuthError,
    ProviderError,
    TokenStoreError,
)

if TYPE_CHECKING:
    from .credentials import BearerAuth, BearerSession, Credentials, Identity
    from .device import DeviceLogin, start_device_login
    from .flow import PendingLogin, login, start_login
    from .machine import MachineCredentials, client_credentials

#: Public names imported on first use (PEP 562), so `%load_ext nbauth` does not pay for
#: requests, PyJWT/cryptography and ipywidgets until a login starts.
_LAZY = {
    "BearerAuth": "credentials", "BearerSession": "credentials", "Credentials": "credentials",
    "Identity": "credentials", "DeviceLogin": "device", "start_device_login": "device",
    "PendingLogin": "flow", "login": "flow", "start_login": "flow",
    "MachineCredentials": "machine", "client_credentials": "machine",
}

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "BearerAuth",
    "BearerSession",
    "ConfigurationError",
    "Credentials",
    "DeviceFlowUnsupportedError",
    "DeviceLogin",
    "DeviceLoginExpiredError",
    "IdTokenError",
    "Identity",
    "LoginCancelledError",
    "LoginRequiredError",
    "LoginTimeoutError",
    "LoopbackBindError",
    "MachineCredentials",
    "NbauthError",
    "NbauthWarning",
    "OAuthError",
    "PendingLogin",
    "ProviderError",
    "TokenStoreError",
    "__version__",
    "client_credentials",
    "load_ipython_extension",
    "login",
    "start_device_login",
    "start_login",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbauth' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """Register %auth0_login and %auth0_logout (run by ``%load_ext nbauth``)."""
    from . import kernelwait
    from .magics import AuthMagics, nbauth_exception_handler

    ipython.register_magics(AuthMagics(ipython))
    ipython.set_custom_exc((NbauthError,), nbauth_exception_handler)
    kernelwait.install(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Drop nbauth's short error display and awaited login cells (the magics stay, as IPython
    cannot unregister them)."""
    from . import kernelwait

    ipython.set_custom_exc((), None)
    kernelwait.uninstall(ipython)
