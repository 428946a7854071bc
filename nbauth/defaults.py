"""Default settings shared by the Python API, the traitlets config and the magics.

A leaf module (no imports), so that `%load_ext nbauth` — which needs these for `NbauthConfig` —
does not import the listener, requests or the JOSE library before a login is started.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PORTS", "DEFAULT_SCOPE", "DEFAULT_TIMEOUT", "MAX_TIMEOUT"]

#: Scopes requested when none are given: an ID token with the profile and email, and a
#: refresh token (offline_access) so the session can renew itself.
DEFAULT_SCOPE = "openid profile email offline_access"

#: The ports tried when none are configured. Providers that match callback URLs exactly (Auth0)
#: need each one registered: http://127.0.0.1:8765/callback, …:8766/…, …:8767/….
DEFAULT_PORTS: tuple[int, ...] = (8765, 8766, 8767)
#: Seconds a login waits for the browser before giving up.
DEFAULT_TIMEOUT = 300.0
#: The longest a login may wait (a day).
MAX_TIMEOUT = 86400.0
