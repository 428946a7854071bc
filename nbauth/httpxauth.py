"""An `httpx.Auth` that sends the credentials' current bearer token (httpx is optional).

This module imports httpx, so nbauth imports it only when asked (`Credentials.httpx_auth()`,
or ``from nbauth.httpxauth import HttpxBearerAuth``). Each request asks the credentials for a
token, so a token about to expire is refreshed first (once for all threads). In the async flow
a refresh — a blocking call to the provider — runs in a worker thread, so the event loop is
never blocked. httpx itself drops the Authorization header on redirects to another origin.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

import httpx

from .tokens import TokenState

if TYPE_CHECKING:
    from .credentials import Credentials

__all__ = ["HttpxBearerAuth"]


class HttpxBearerAuth(httpx.Auth):
    """httpx auth: sets `Authorization: Bearer …` from the credentials on every request."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response,
                                                                     None]:
        request.headers["Authorization"] = f"Bearer {self._credentials.token()}"
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request,
                                                                               httpx.Response]:
        credentials = self._credentials
        if credentials.valid and credentials.state is TokenState.FRESH:
            token = credentials.token()  # no refresh due: no I/O
        else:
            import anyio.to_thread  # httpx's own dependency; works under asyncio and trio

            token = await anyio.to_thread.run_sync(credentials.token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def __repr__(self) -> str:
        return "<nbauth.HttpxBearerAuth>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("nbauth auth objects are not picklable")
