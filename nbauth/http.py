"""The one place that talks to the provider: JSON GETs and form POSTs with timeouts.

Every transport or format failure becomes an nbauth error (never a JSONDecodeError, KeyError or
a bare requests exception), and a provider's RFC 6749 §5.2 error body becomes a typed OAuthError.
Nothing here logs a request body or a response body.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import urllib3

from .discovery import is_loopback_host
from .errors import (
    OAuthError,
    ProviderError,
    ProviderUnreachableError,
    _printable,
    oauth_error,
)

__all__ = ["DEFAULT_TIMEOUT", "ProviderClient"]

log = logging.getLogger(__name__)

#: (connect, read) seconds for every provider call.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 20.0)

#: Largest provider answer read; a bigger one is refused (discovery, JWKS and token answers
#: are a few kilobytes).
MAX_RESPONSE_BYTES = 1 << 20

_USER_AGENT = "nbauth"

#: requests drops proxy entries that are None, so these keep HTTP(S)_PROXY/ALL_PROXY from the
#: environment away from loopback providers (a proxy cannot reach the user's 127.0.0.1, and
#: must not see what is sent there), whatever NO_PROXY says.
_NO_PROXIES: dict[str, str | None] = {"http": None, "https": None, "all": None}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback_url(url: str) -> bool:
    try:
        return is_loopback_host(urlsplit(url).hostname or "")
    except ValueError:
        return False


class ProviderClient:
    """A small requests wrapper for provider endpoints (discovery, JWKS, token, revoke…)."""

    def __init__(
        self,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = _USER_AGENT
        self.timeout = timeout

    def close(self) -> None:
        self._session.close()

    def get_json(self, url: str, *, what: str) -> dict[str, Any]:
        """GET `url` and return its JSON object; `what` names it in error messages."""
        response = self._send("GET", url, what=what)
        return self._json_object(response, what=what)

    def post_form(
        self,
        url: str,
        data: dict[str, str],
        *,
        what: str,
        auth: tuple[str, str] | None = None,
        expect_json: bool = True,
    ) -> dict[str, Any]:
        """POST a form to a token-style endpoint and return its JSON object.

        A 4xx with an RFC 6749 §5.2 body raises the matching OAuthError. With
        `expect_json=False` (RFC 7009 revocation answers 200 with any body) a 2xx returns {}.
        """
        response = self._send("POST", url, what=what, data=data, auth=auth)
        if not expect_json and 200 <= response.status_code < 300:
            return {}
        try:
            return self._json_object(response, what=what)
        except OAuthError as exc:
            raise _without_echoed_secrets(exc, data, auth) from None

    def _send(self, method: str, url: str, *, what: str, **kwargs: Any) -> requests.Response:
        log.debug("%s %s (%s)", method, _origin(url), what)
        if _is_loopback_url(url):
            kwargs["proxies"] = dict(_NO_PROXIES)
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                url,
                timeout=self.timeout,
                allow_redirects=False,
                headers={"Accept": "application/json"},
                stream=True,
                **kwargs,
            )
            try:
                self._read_bounded(response, started, what=what, url=url)
            finally:
                response.close()
        except requests.exceptions.SSLError:
            local = (" A local development provider without TLS is reached with plain http: "
                     f"{_origin(url).replace('https://', 'http://', 1)}/."
                     if _is_loopback_url(url) else "")
            raise ProviderUnreachableError(
                f"The provider's certificate at {_origin(url)} could not be verified for the "
                f"{what} request. If your network uses its own certificate authority, point "
                f"REQUESTS_CA_BUNDLE at its bundle; nbauth never turns verification off.{local}"
            ) from None
        except requests.Timeout:
            raise ProviderUnreachableError(
                f"The provider did not answer the {what} request at {_origin(url)} within "
                f"{self.timeout[1]:g} s. Check the domain and your network, then try again."
            ) from None
        except requests.ConnectionError:
            raise ProviderUnreachableError(
                f"Could not connect to the provider at {_origin(url)} for the {what} request. "
                "Check the domain and your network, then try again."
            ) from None
        # `from None`: requests' exception texts carry the full URL, and tracebacks reach cells.
        except (requests.RequestException, ValueError) as exc:  # ValueError: unusable URL
            raise ProviderError(
                f"The {what} request to {_origin(url)} failed: {type(exc).__name__}."
            ) from None
        log.debug("%s %s -> %s", method, _origin(url), response.status_code)
        return response

    def _read_bounded(self, response: requests.Response, started: float, *, what: str,
                      url: str) -> None:
        """Read the body into `response.content`, within MAX_RESPONSE_BYTES and the read
        timeout *in all* (requests' own read timeout is per read, so a provider trickling a
        byte at a time would never time out)."""
        chunks: list[bytes] = []
        size = 0
        # read1 (urllib3 2) returns whatever has arrived, so the deadline is checked between
        # trickled bytes; a plain read(n) would block until n bytes came.
        read1 = getattr(response.raw, "read1", None)
        while True:
            try:
                chunk = (read1(65536, decode_content=True) if read1 is not None
                         else response.raw.read(4096, decode_content=True))
            except urllib3.exceptions.ReadTimeoutError:
                raise requests.Timeout from None
            except (urllib3.exceptions.HTTPError, OSError):  # cut short, bad encoding …
                raise requests.ConnectionError from None
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ProviderError(
                    f"The provider's answer to the {what} request at {_origin(url)} is larger "
                    f"than {MAX_RESPONSE_BYTES // 1024} KiB; it was refused. Check the domain.",
                    status=response.status_code,
                )
            if time.monotonic() - started > sum(self.timeout):
                raise requests.Timeout
            chunks.append(chunk)
        response._content = b"".join(chunks)  # what `.content` returns from now on

    @staticmethod
    def _json_object(response: requests.Response, *, what: str) -> dict[str, Any]:
        status = response.status_code
        body: Any = None
        try:
            body = json.loads(response.content)
        except (ValueError, RecursionError):  # RecursionError: hostile deep nesting
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str) and status >= 400:
            description = body.get("error_description")
            uri = body.get("error_uri")
            raise oauth_error(
                body["error"],
                description if isinstance(description, str) else None,
                uri if isinstance(uri, str) else None,
                status=status,
            )
        if status == 429:
            wait = _retry_after(response)
            raise ProviderError(
                f"The provider is rate limiting nbauth's {what} requests (HTTP 429). Try again "
                + (f"in {wait} s." if wait is not None else "in a minute."),
                status=status, retry_after=wait,
            )
        if status >= 400 or 300 <= status < 400:
            kind = "a redirect" if status < 400 else "an error"
            raise ProviderError(
                f"The provider answered the {what} request with {kind} (HTTP {status}"
                f"{', ' + _content_kind(response) if body is None else ''}). "
                + ("It may be down or overloaded: try again in a moment."
                   if status >= 500 else "Check the domain and client settings."),
                status=status, retry_after=_retry_after(response) if status == 503 else None,
            )
        if not isinstance(body, dict):
            raise ProviderError(
                f"The provider's answer to the {what} request is not a JSON object "
                f"(HTTP {status}, {_content_kind(response)}). Check the domain: it may not be an "
                "OpenID Connect provider.",
                status=status,
            )
        return body


#: Form fields whose values are secrets (RFC 6749, 7009, 7636, 8628).
_SECRET_FIELDS = ("code", "code_verifier", "refresh_token", "device_code", "client_secret",
                  "token", "client_assertion")


def _without_echoed_secrets(error: OAuthError, data: dict[str, str],
                            auth: tuple[str, str] | None) -> OAuthError:
    """The provider's error, unless its text repeats a secret that was just sent (some servers
    echo the rejected code or token): then only its error code, and a note saying why."""
    secrets = [data[name] for name in _SECRET_FIELDS if data.get(name)]
    if auth is not None:
        secrets += [auth[1], unquote(auth[1])]
    # Provider text is cut to a few hundred characters, so a prefix is enough to give it away.
    needles = [s[:16] for s in secrets if len(s) >= 8]
    texts = (error.error, error.description or "", error.uri or "")
    if not any(needle in text for needle in needles for text in texts):
        return error
    code = error.error if not any(needle in error.error for needle in needles) else "unknown_error"
    return oauth_error(code, "its message was withheld because it repeated a secret sent "
                       "with the request", status=error.status)


def _retry_after(response: requests.Response) -> int | None:
    """Retry-After in whole seconds when given as a sane number (RFC 9110 §10.2.3), else None."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit() and len(value) <= 6:
        return int(value)
    return None


def _content_kind(response: requests.Response) -> str:
    # The provider's header, made printable: it must not put terminal escapes in our errors.
    ctype = _printable(response.headers.get("Content-Type", "").split(";")[0].strip(), 80)
    return f"content type {ctype}" if ctype.strip() else "no content type"
