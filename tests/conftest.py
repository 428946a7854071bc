"""Shared fixtures: the real local OpenID provider, a scripted person, a clean environment."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "provider"))

from devprovider import ProviderInfo, running_provider  # noqa: E402
from scripted_user import complete_login  # noqa: E402

_NBAUTH_ENV = ("AUTH0_DOMAIN", "AUTH0_CLIENT_ID", "AUTH0_AUDIENCE", "AUTH0_CLIENT_SECRET",
               "NBAUTH_PORTS", "NBAUTH_SCOPE", "JUPYTERHUB_SERVICE_PREFIX", "BROWSER")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own Auth0 settings, and none opens a real browser."""
    for name in _NBAUTH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BROWSER", "true")  # webbrowser runs /bin/true if anything calls it


@pytest.fixture(autouse=True)
def fresh_discovery_cache() -> Iterator[None]:
    from nbauth.discovery import clear_metadata_cache

    clear_metadata_cache()
    yield
    clear_metadata_cache()


@pytest.fixture(scope="session")
def provider() -> Iterator[ProviderInfo]:
    """One real provider (node oidc-provider on 127.0.0.1) for the whole session."""
    with running_provider() as info:
        yield info


def authorization_url(url: str) -> str:
    """The authorization URL behind nbauth's opaque /start/<token> link (or `url` itself)."""
    if "/start/" not in url:
        return url
    import requests

    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.status_code
    return response.headers["Location"]


class ScriptedBrowser:
    """Opens authorize URLs like a person would: signs in, clicks Allow/Deny, follows redirects.

    Runs each login on its own thread (as a real browser is another process) and keeps the
    page the app served at the end, or the error.
    """

    def __init__(self, **defaults: object) -> None:
        self.defaults = defaults
        self.pages: list[str] = []
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.urls: list[str] = []

    def __call__(self, url: str, **overrides: object) -> None:
        self.urls.append(authorization_url(url))
        options = {**self.defaults, **overrides}

        def run() -> None:
            try:
                self.pages.append(complete_login(url, **options))  # type: ignore[arg-type]
            except BaseException as exc:  # reported by join()
                self.errors.append(exc)

        thread = threading.Thread(target=run, name="scripted-browser", daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout: float = 30.0) -> None:
        for thread in self.threads:
            thread.join(timeout)
            assert not thread.is_alive(), "the scripted browser did not finish in time"


@pytest.fixture
def browser() -> Callable[..., ScriptedBrowser]:
    return ScriptedBrowser


@pytest.fixture(scope="session")
def ip():
    """IPython's global test shell (one per process) with nbauth loaded."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "nbauth")
    return shell


@pytest.fixture
def magics(ip):
    """nbauth's magics in the shared shell; every login a test leaves is logged out after it."""
    from IPython.utils.capture import capture_output

    m = ip.magics_manager.registry["AuthMagics"]
    yield m
    for var in list(m.logins):
        with capture_output():
            ip.run_line_magic("auth0_logout", f"--var {var}")


@pytest.fixture(scope="module")
def short_provider(request: pytest.FixtureRequest) -> Iterator[ProviderInfo]:
    """A provider whose access tokens live the module's TTL seconds (short enough to see
    several refreshes in a test)."""
    with running_provider(access_token_ttl=request.module.TTL) as info:
        yield info
