"""The Jupyter-routed callback (S-90…S-95) through a real Jupyter server with nbauth's extension.

The test process plays the kernel (a plain-Python `start_login` with the Jupyter route, as the
kernels of that server would); a requests session logged in to the server plays the browser;
the real provider redirects to `{server}/nbauth/callback`, which the extension relays.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from devprovider import ProviderInfo, running_provider
from jupyter_servers import JupyterServer, running_jupyter
from scripted_user import complete_login

from nbauth.errors import ConfigurationError
from nbauth.flow import PendingLogin, start_login
from nbauth.route import CallbackRoute, choose_route
from nbauth.serverext.registry import Registry, token_hash

pytestmark = [pytest.mark.provider]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    with running_jupyter("server", tmp_path_factory.mktemp("jupyter"), {}) as server:
        yield server


@pytest.fixture(scope="module")
def routed_provider(jupyter: JupyterServer) -> Iterator[ProviderInfo]:
    """A provider whose exact client accepts this server's callback (and nothing else)."""
    with running_provider(redirect_uris=[f"{jupyter.url}nbauth/callback"]) as info:
        yield info


@pytest.fixture
def route(jupyter: JupyterServer) -> CallbackRoute:
    return choose_route("jupyter", public_url=jupyter.url, environ={},
                        registry_dir=jupyter.runtime_dir / "nbauth-pending")


def browser(jupyter: JupyterServer) -> requests.Session:
    """A browser logged in to the Jupyter server (its login cookie), nothing else."""
    session = requests.Session()
    session.trust_env = False
    response = session.get(f"{jupyter.url}api/status?{urlencode({'token': jupyter.token})}",
                           timeout=10)
    assert response.status_code == 200
    session.get(f"{jupyter.url}tree?{urlencode({'token': jupyter.token})}", timeout=10)
    return session


@pytest.fixture
def pending(routed_provider: ProviderInfo, route: CallbackRoute) -> Iterator[PendingLogin]:
    """A Jupyter-routed login started as the server's kernels start it; cancelled at the end."""
    login = start_login(routed_provider.issuer, routed_provider.exact_client_id,
                        audience=routed_provider.audience, route=route, timeout=60)
    yield login
    login.cancel()


def authorization_response(pending: PendingLogin, session: requests.Session,
                           start_url: str | None = None) -> str:
    """Sign in at the provider; return the callback URL it redirects to, not yet delivered."""
    return complete_login(start_url or pending.start_url, session=session,
                          follow_callback=False, timeout=30)


def pending_files(route: CallbackRoute) -> list[Path]:
    assert route.registry_dir is not None
    return sorted(p for p in route.registry_dir.glob("*.json")
                  if re.fullmatch(r"[0-9a-f]{64}\.json", p.name))


def test_route_names_the_one_url_to_register(jupyter: JupyterServer,
                                              route: CallbackRoute) -> None:
    assert route.mode == "jupyter"
    assert route.redirect_uri == f"{jupyter.url}nbauth/callback"
    assert route.redirect_uri in route.reason


def test_login_completes_through_the_jupyter_server(
        jupyter: JupyterServer, routed_provider: ProviderInfo, route: CallbackRoute,
        pending: PendingLogin) -> None:
    assert pending.start_url.startswith(f"{jupyter.url}nbauth/start?key=")
    assert pending.redirect_uri == f"{jupyter.url}nbauth/callback"
    assert len(pending_files(route)) == 1
    session = browser(jupyter)
    page = complete_login(pending.start_url, session=session, timeout=30)
    assert "Logged in" in page and "Back to Jupyter" in page
    credentials = pending.wait(timeout=30)
    api = credentials.session().get(routed_provider.api_url, timeout=10)
    assert api.status_code == 200, api.text
    assert pending_files(route) == []  # the registration is gone with the login


def test_callback_needs_the_jupyter_login_S90(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    """A browser without the Jupyter login is sent to log in (302 to /login, as the checklist
    asks), and the `next` it carries holds neither code nor state; nothing but GET is served."""
    base = urlsplit(jupyter.url).path
    callback = authorization_response(pending, browser(jupyter))
    params = parse_qs(urlsplit(callback).query)
    anonymous = requests.get(callback, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    location = urlsplit(anonymous.headers["Location"])
    assert location.path == f"{base}login"
    assert parse_qs(location.query) == {"next": [f"{base}nbauth/callback"]}
    for secret in (params["code"][0], params["state"][0]):
        assert secret not in anonymous.headers["Location"]
    for method in ("POST", "PUT", "PATCH", "DELETE", "HEAD"):
        refused = requests.request(method, callback, allow_redirects=False, timeout=10)
        assert refused.status_code in (403, 405), method
    assert not pending.done()  # nothing reached the kernel; the login still waits
    assert len(pending_files(route)) == 1
    page = browser(jupyter).get(callback, timeout=30)
    assert page.status_code == 200 and "Logged in" in page.text
    pending.wait(timeout=30)


def test_signing_in_to_jupyter_on_the_way_back_keeps_code_and_state_out_of_the_log_S90_S95(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    """The provider sends back a browser that is not logged in to Jupyter: it signs in on
    /login, lands on a page saying to click Log in again, and that completes the login. The
    server's "302 POST /login?next=…" line, which jupyter_server does not scrub inside `next`,
    names neither the code nor the state."""
    base = urlsplit(jupyter.url).path
    callback = authorization_response(pending, browser(jupyter))
    params = parse_qs(urlsplit(callback).query)
    person = requests.Session()
    person.trust_env = False
    login_page = person.get(callback, timeout=10)
    assert urlsplit(login_page.url).path == f"{base}login"
    back = person.post(login_page.url, timeout=10,
                       data={"password": jupyter.token, "_xsrf": person.cookies.get("_xsrf")})
    assert urlsplit(back.url).path == f"{base}nbauth/callback" and back.status_code == 400
    assert "click Log in in your notebook again" in back.text
    assert not pending.done()
    page = complete_login(pending.start_url, session=person, timeout=30)
    assert "Logged in" in page
    pending.wait(timeout=30)
    time.sleep(0.2)  # let the server flush its access log line
    log = jupyter.log_tail(500_000)
    assert f"POST {base}login?next=" in log
    for secret in (params["code"][0], params["state"][0]):
        assert secret not in log


CANARY_EXTENSION = """
from jupyter_server.base.handlers import JupyterHandler


class CanaryWithoutAuthHandler(JupyterHandler):
    def get(self):
        self.finish("canary")


def _jupyter_server_extension_points():
    return [{"module": "nbauth_canary"}]


def _load_jupyter_server_extension(serverapp):
    serverapp.web_app.add_handlers(".*$", [("/nbauth-canary", CanaryWithoutAuthHandler)])
"""


@pytest.fixture(scope="module")
def strict_jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A server with `ServerApp.allow_unauthenticated_access = False`, and a canary extension
    whose handler lacks @web.authenticated, so the server's warning is known to be working."""
    base = tmp_path_factory.mktemp("strict")
    (base / "canary").mkdir()
    (base / "canary" / "nbauth_canary.py").write_text(CANARY_EXTENSION)
    (base / "config").mkdir()
    (base / "config" / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {
        "allow_unauthenticated_access": False,
        "jpserver_extensions": {"nbauth_canary": True},
    }}))
    with running_jupyter("server", base, {"PYTHONPATH": str(base / "canary")}) as server:
        yield server


def test_with_unauthenticated_access_off_no_nbauth_endpoint_is_left_open_S90(
        strict_jupyter: JupyterServer) -> None:
    """jupyter_server ≥ 2.13 warns (JupyterServerAuthWarning, a RuntimeWarning) about every
    extension endpoint without @web.authenticated or @allow_unauthenticated; nbauth's two are
    not among them, and with the setting off they still work for the logged-in user."""
    server = strict_jupyter
    base = urlsplit(server.url).path
    log = server.log_tail(500_000)
    assert f"nbauth: login callback at {base}nbauth/callback" in log
    warned = re.findall(r"^\s*- (\w+) of (\w+) registered for (\S+)", log, re.MULTILINE)
    assert ("GET", "CanaryWithoutAuthHandler", "/nbauth-canary") in warned  # the check works
    assert [w for w in warned if "nbauth/" in w[2] or w[1] in ("StartHandler",
                                                               "CallbackHandler")] == []
    anonymous = requests.get(f"{server.url}nbauth/callback?code=c&state=s",
                             allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    login = f"{base}login?{urlencode({'next': base + 'nbauth/callback'})}"
    assert anonymous.headers["Location"] == login
    start = requests.get(f"{server.url}nbauth/start?key=k", allow_redirects=False, timeout=10)
    assert start.status_code == 302 and urlsplit(start.headers["Location"]).path == f"{base}login"
    signed_in = browser(server)
    reached = signed_in.get(f"{server.url}nbauth/callback?code=c&state=unknown", timeout=10)
    assert reached.status_code == 400 and "Login not found" in reached.text
    assert signed_in.get(f"{server.url}nbauth/start?key=unknown", timeout=10).status_code == 404


def test_a_callback_is_used_once_S92(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    session = browser(jupyter)
    callback = authorization_response(pending, session)
    first = session.get(callback, timeout=30)
    assert first.status_code == 200
    replay = session.get(callback, timeout=30)
    assert replay.status_code == 400
    assert "Login not found" in replay.text
    pending.wait(timeout=10)


def test_unknown_state_is_refused_and_the_login_keeps_waiting_S92(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    session = browser(jupyter)
    for query in ({"code": "forged", "state": "not-the-state"},
                  {"error": "access_denied", "state": "guess"},
                  {"error": "access_denied"},
                  {"code": "forged"}):
        response = session.get(f"{jupyter.url}nbauth/callback?{urlencode(query)}",
                               timeout=10)
        assert response.status_code == 400, query
    assert not pending.done()
    page = complete_login(pending.start_url, session=session, timeout=30)
    assert "Logged in" in page
    pending.wait(timeout=30)


def test_expired_registration_is_refused_S92(jupyter: JupyterServer,
                                             route: CallbackRoute) -> None:
    registry = Registry(route.registry_dir)
    registry.register(state="old-state", start_token="old-start", port=9, relay_key="k",
                      server=urlsplit(jupyter.url).path, ttl=-1)
    response = browser(jupyter).get(
        f"{jupyter.url}nbauth/callback?{urlencode({'code': 'c', 'state': 'old-state'})}",
        timeout=10)
    assert response.status_code == 400
    assert "expired" in response.text


def test_a_login_meant_for_another_server_is_not_used_up_by_this_one() -> None:
    """Servers of one user can share a runtime directory: a callback that reaches the wrong
    server must leave the registration for the server it was meant for."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        registry = Registry(Path(directory) / "nbauth-pending")
        registry.register(state="alice-state", start_token="t", port=9, relay_key="k",
                          server="/user/alice/", ttl=60)
        assert registry.claim("alice-state", server="/user/bob/") is None
        assert registry.claim("alice-state", server="/user/bob/") is None
        claimed = registry.claim("alice-state", server="/user/alice/")
        assert claimed is not None and claimed.server == "/user/alice/"
        assert registry.claim("alice-state", server="/user/alice/") is None  # once


def test_a_callback_for_another_servers_login_leaves_it_waiting_S92(
        jupyter: JupyterServer, route: CallbackRoute) -> None:
    registry = Registry(route.registry_dir)
    registry.register(state="other-servers-state", start_token="other-start", port=9,
                      relay_key="k", server="/user/someone-else/", ttl=60)
    try:
        response = browser(jupyter).get(
            f"{jupyter.url}nbauth/callback?"
            f"{urlencode({'code': 'c', 'state': 'other-servers-state'})}", timeout=10)
        assert response.status_code == 400 and "Login not found" in response.text
        assert (registry.directory / f"{token_hash('other-servers-state')}.json").exists()
    finally:
        registry.unregister("other-servers-state")


def test_the_kernel_listener_refuses_direct_requests(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    """Another local user on 127.0.0.1 cannot reach a routed login's listener (no relay key)."""
    callback = authorization_response(pending, browser(jupyter))
    direct = f"http://127.0.0.1:{pending.port}/callback?{urlsplit(callback).query}"
    response = requests.get(direct, timeout=10)
    assert response.status_code == 403
    assert not pending.done()
    start = requests.get(f"http://127.0.0.1:{pending.port}/start/x", timeout=10,
                         allow_redirects=False)
    assert start.status_code == 403


def test_spoofed_host_does_not_change_the_redirect_uri_S94(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    """A foreign Host is refused outright (jupyter_server's local-host check) or ignored;
    X-Forwarded-* is never trusted (no trust_xheaders). Either way the provider is told the
    configured redirect URI, and each case asserts what it got."""
    session = browser(jupyter)
    redirected = 0
    for headers, refusable in (({"Host": "evil.example"}, True),
                               ({"X-Forwarded-Host": "evil.example",
                                 "X-Forwarded-Proto": "https"}, False),
                               ({}, False)):
        response = session.get(pending.start_url, headers=headers, allow_redirects=False,
                               timeout=10)
        if refusable and response.status_code == 403:
            assert "Location" not in response.headers
            continue
        assert response.status_code == 303, headers
        location = response.headers["Location"]
        assert "evil.example" not in location
        redirect = parse_qs(urlsplit(location).query)["redirect_uri"]
        assert redirect == [f"{jupyter.url}nbauth/callback"], headers
        redirected += 1
    assert redirected >= 2


EVIL_NEXT = ["//evil.example", "///evil.example", "\\\\evil.example", "/\\evil.example",
             "https:evil.example", "https://evil.example", "%2F%2Fevil.example",
             "%252F%252Fevil.example", "javascript:alert(1)", "/%5Cevil.example"]


@pytest.mark.parametrize("next_url", EVIL_NEXT)
def test_no_open_redirect_after_login_S93(
        jupyter: JupyterServer, pending: PendingLogin, next_url: str) -> None:
    session = browser(jupyter)
    start = f"{pending.start_url}&{urlencode({'next': next_url})}"
    callback = authorization_response(pending, session, start)
    response = session.get(f"{callback}&{urlencode({'next': next_url})}",
                           allow_redirects=False, timeout=30)
    assert response.status_code == 200
    assert "Location" not in response.headers
    links = re.findall(r'href="([^"]*)"', response.text)
    assert links == [urlsplit(jupyter.url).path]
    pending.wait(timeout=30)


def test_a_safe_next_is_linked_after_login(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    session = browser(jupyter)
    target = f"{urlsplit(jupyter.url).path}tree/analysis.ipynb"
    page = complete_login(f"{pending.start_url}&{urlencode({'next': target})}",
                          session=session, timeout=30)
    assert f'href="{target}"' in page
    pending.wait(timeout=30)


def test_server_log_keeps_no_secret_S95(
        jupyter: JupyterServer, route: CallbackRoute, pending: PendingLogin) -> None:
    session = browser(jupyter)
    key = parse_qs(urlsplit(pending.start_url).query)["key"][0]
    callback = authorization_response(pending, session)
    params = parse_qs(urlsplit(callback).query)
    assert session.get(callback, timeout=30).status_code == 200
    pending.wait(timeout=30)
    time.sleep(0.2)  # let the server flush its access log line
    log = jupyter.log_tail(200_000)
    assert "nbauth/callback" in log  # the requests were logged …
    for secret in (key, params["code"][0], params["state"][0]):
        assert secret not in log  # … without their values


def test_jupyter_route_without_the_extension_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="extension is not running"):
        choose_route("jupyter", public_url="https://jupyter.example.org/", environ={},
                     registry_dir=tmp_path)
    fallback = choose_route("auto", public_url="https://jupyter.example.org/", environ={},
                            registry_dir=tmp_path)
    assert fallback.mode == "device" and "extension is not running" in fallback.reason


KERNEL_THAT_DIES = """
import sys, time
from pathlib import Path
from nbauth.flow import start_login
from nbauth.route import choose_route
issuer, client_id, audience, public_url, registry = sys.argv[1:6]
route = choose_route("jupyter", public_url=public_url, environ={}, registry_dir=Path(registry))
pending = start_login(issuer, client_id, audience=audience, route=route, timeout=60)
print(pending.start_url, flush=True)
time.sleep(60)
"""


def test_a_dead_kernel_gets_a_clear_page_and_no_secret_in_the_log(
        jupyter: JupyterServer, routed_provider: ProviderInfo, route: CallbackRoute) -> None:
    """The kernel that started the login is killed (-9) before the provider sends the browser
    back: the page says so (502), and the server's log holds neither code nor state."""
    import subprocess
    import sys

    kernel = subprocess.Popen(
        [sys.executable, "-c", KERNEL_THAT_DIES, routed_provider.issuer,
         routed_provider.exact_client_id, routed_provider.audience, jupyter.url,
         str(route.registry_dir)], stdout=subprocess.PIPE, text=True)
    try:
        start_url = kernel.stdout.readline().strip()  # type: ignore[union-attr]
        session = browser(jupyter)
        callback = complete_login(start_url, session=session, follow_callback=False, timeout=30)
    finally:
        kernel.kill()
        kernel.wait(10)
    response = session.get(callback, timeout=30)
    assert response.status_code == 502
    assert "no longer waiting" in response.text
    params = parse_qs(urlsplit(callback).query)
    time.sleep(0.2)
    log = jupyter.log_tail(500_000)
    for secret in (params["code"][0], params["state"][0]):
        assert secret not in log


def test_the_running_server_records_its_listen_address_for_the_route_choice(
        jupyter: JupyterServer) -> None:
    """A real server (bound to 127.0.0.1 by the tests) leaves its address in its marker; a
    kernel it started (JPY_PARENT_PID = its pid) keeps the loopback route."""
    from nbauth.serverext import server_listen_address

    directory = jupyter.runtime_dir / "nbauth-pending"
    assert server_listen_address(directory, jupyter.process.pid) == "127.0.0.1"
    route = choose_route("auto", environ={"JPY_PARENT_PID": str(jupyter.process.pid)},
                         registry_dir=directory)
    assert route.mode == "loopback"
