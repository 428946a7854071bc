"""JupyterHub configuration for the hub-wide callback (used in jupyterhub_config.py, not kernels).

JupyterHub answers ``/hub/user-redirect/<path>?<query>`` through its spawn page with the whole
target in a ``next`` parameter, and its access log scrubs parameters by name (``code``,
``state``…), not inside ``next``: every hub-wide callback would write the login's code and state
to the hub's log. This hook sends nbauth's callbacks straight to the user's server instead::

    from nbauth.hubhook import user_redirect_hook
    c.JupyterHub.user_redirect_hook = user_redirect_hook

Other user-redirect paths keep JupyterHub's own behaviour.
"""

from __future__ import annotations

from typing import Any

__all__ = ["user_redirect_hook"]

_NBAUTH_PATHS = ("nbauth/callback", "nbauth/start")


def user_redirect_hook(path: str, request: Any, user: Any, base_url: str) -> str | None:
    """Redirect `/hub/user-redirect/nbauth/…` to the user's own server, query kept, no `next`."""
    if user is None or path.lstrip("/") not in _NBAUTH_PATHS:
        return None
    server_url = str(user.url)
    if not server_url.endswith("/"):
        server_url += "/"
    query = request.query
    return f"{server_url}{path.lstrip('/')}" + (f"?{query}" if query else "")
