"""Fixtures for the browser tests: Debian's chromium (Playwright), one real JupyterLab and one
real Notebook 7 server per session, both talking to the real provider (tests/conftest.py).

A test that takes `jupyter` runs once per front end ("lab", "notebook"); `open_nb(cells)`
writes a notebook for the test and opens it in a fresh browser context (own cookies: each
test signs in at the provider from scratch).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from jupyter_servers import UI_FLAVOURS, JupyterServer, running_jupyter
from notebook_ui import SCREENSHOTS, open_notebook, write_notebook
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[
        pytest.TestReport]:
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session", autouse=True)
def _no_stale_failure_screenshots() -> None:
    shutil.rmtree(SCREENSHOTS / "failures", ignore_errors=True)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's chromium (apt), headless. Playwright gives each launch a fresh user data dir."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps (apt's chromium); "
                    "never `playwright install`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session", params=UI_FLAVOURS, ids=lambda f: str(f))
def jupyter(request: pytest.FixtureRequest, provider,  # type: ignore[no-untyped-def]
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A real `jupyter lab` / `jupyter notebook` (7) server on 127.0.0.1, one per session.

    Its kernels (the venv's python3 kernelspec) get the provider's settings as a user would
    export them, and BROWSER=true so nbauth's webbrowser.open does nothing: the test clicks
    the widget's link in chromium instead.
    """
    kernel_env = {
        "AUTH0_DOMAIN": provider.issuer,
        "AUTH0_CLIENT_ID": provider.client_id,
        "AUTH0_AUDIENCE": provider.audience,
        "NBAUTH_DEMO_API": provider.api_url,
    }
    base = tmp_path_factory.mktemp(f"jupyter-{request.param}")
    with running_jupyter(request.param, base, kernel_env) as server:
        yield server


@pytest.fixture
def context(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies) per test; on failure every tab is photographed."""
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    ctx.set_default_navigation_timeout(30_000)
    try:
        yield ctx
    finally:
        if _failed(request):
            _photograph_tabs(ctx, request)
        ctx.close()


@pytest.fixture
def open_nb(jupyter: JupyterServer, context: BrowserContext, request: pytest.FixtureRequest
            ) -> Iterator[Callable[..., Page]]:
    """open_nb(cells, name=None) -> page: a new notebook in the server's root (named after the
    test unless `name` is given), opened in a new tab once its kernel is idle.

    The notebook's kernel is shut down when the test ends (the server stays up).
    """
    names: list[str] = []

    def opener(cells: Sequence[str], name: str | None = None) -> Page:
        name = name or f"{_safe(request.node.name)}-{len(names)}.ipynb"
        names.append(name)
        write_notebook(jupyter, name, cells)
        return open_notebook(context, jupyter, name)

    try:
        yield opener
    finally:
        if _failed(request):
            _photograph_tabs(context, request)
            print(f"--- {jupyter.flavour} server log (tail) ---\n{jupyter.log_tail()}")
        for page in context.pages:
            page.close()
        for name in names:
            jupyter.shutdown_kernels_of(name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(r.failed for r in request.node.stash.get(_reports, {}).values())


def _photograph_tabs(ctx: BrowserContext, request: pytest.FixtureRequest) -> None:
    """Best effort: a full-page PNG of every open tab, in artifacts/screenshots/failures/."""
    failures = SCREENSHOTS / "failures"
    failures.mkdir(parents=True, exist_ok=True)
    for i, page in enumerate(ctx.pages):
        try:
            page.screenshot(path=str(failures / f"{_safe(request.node.name)}-tab{i}.png"),
                            full_page=True, timeout=10_000)
        except Exception as exc:  # never hides the test's own failure
            print(f"could not photograph tab {i}: {exc}")
