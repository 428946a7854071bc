"""A real JupyterHub on loopback for the tests: configurable-http-proxy (npm), DummyAuthenticator,
SimpleLocalProcessSpawner, everything bound to 127.0.0.1, in a sandbox directory.

Users are people with a browser (a requests session carrying the hub's cookies, logged in
through the HTML form at /hub/login) and kernels on their own single-user servers, driven
through jupyter_client with the connection file the server wrote in the user's home.
Ports: the hub, the proxy and its API are picked at random and the hub started again if one is
taken (the hub binds them itself; nothing here binds and hands over a port).

Everything the hub runs writes to one file, `Hub.log_path`: the hub's own log and the output of
the proxy and of every single-user server (the local spawners start them with the hub's stdout
and stderr), so a test can read all of them there.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import requests
from jupyter_client import BlockingKernelClient

if TYPE_CHECKING:
    from devprovider import ProviderInfo

ROOT = Path(__file__).resolve().parents[1]
#: What README tells hub admins to add for nbauth (keeps codes and states out of the hub log).
NBAUTH_HUB_CONFIG = """
from nbauth.hubhook import user_redirect_hook
c.JupyterHub.user_redirect_hook = user_redirect_hook
"""
PROXY_BIN = ROOT / "tests" / "hub" / "node_modules" / ".bin"
START_TIMEOUT = 90.0
SPAWN_TIMEOUT = 90.0


class HubError(RuntimeError):
    """The hub, a user's server or a kernel did not do what the test needs."""


def proxy_available() -> bool:
    return (PROXY_BIN / "configurable-http-proxy").exists() and shutil.which("node") is not None


@dataclass
class Hub:
    url: str  # http://127.0.0.1:PORT/ and the hub's base_url (public, through the proxy)
    api_token: str = field(repr=False)
    base_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        headers = {"Authorization": f"token {self.api_token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}hub/api/{path}", headers=headers, **kwargs)

    def home(self, user: str) -> Path:
        return self.base_dir / "home" / user

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, limit: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    def browser(self, user: str, *, opened: Sequence[str] = ()) -> requests.Session:
        """A person's browser logged in to the hub as `user` (the login form, with its _xsrf),
        that has opened the servers of `opened` ("bob", or "alice/gpu" for a named server; its
        own default server is always opened: a person clicks the widget's link from
        JupyterLab, so the server's own OAuth cookie is already set)."""
        session = requests.Session()
        session.trust_env = False
        page = session.get(f"{self.url}hub/login", timeout=15)
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
        form = {"username": user, "password": "nbauth-hub-test"}
        if xsrf:
            form["_xsrf"] = xsrf.group(1)
        response = session.post(f"{self.url}hub/login?next=", data=form, timeout=15,
                                allow_redirects=False)
        if response.status_code not in (302, 303):
            raise HubError(f"hub login for {user} answered {response.status_code}")
        for owner in dict.fromkeys([user, *opened]):
            page = session.get(f"{self.url}user/{owner}/lab", timeout=30)
            if "/hub/api/oauth2/authorize" in page.url:
                # Another user's server: the hub asks this person to confirm the access.
                fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                    page.text)
                page = session.post(page.url, data=fields, timeout=30)
            if page.status_code != 200 or f"/user/{owner}/" not in page.url:
                raise HubError(f"{user} could not open {owner}'s server: {page.status_code}")
        return session

    def start_server(self, user: str, server: str = "") -> None:
        """Spawn `user`'s default server (or the named `server`: the hub must allow named
        servers) and wait until the proxy routes to it."""
        if self.api("GET", f"users/{user}").status_code == 404:
            created = self.api("POST", f"users/{user}")
            if created.status_code != 201:
                raise HubError(f"creating {user}: {created.status_code} {created.text[:300]}")
        try:
            response = self.api("POST", f"users/{user}/servers/{server}" if server
                                else f"users/{user}/server")
            if response.status_code not in (201, 202, 400):  # 400: already running
                raise HubError(f"spawning {user}: {response.status_code} "
                               f"{response.text[:300]}")
        except requests.Timeout:
            pass  # a busy hub answers late; the spawn goes on, and the polling below sees it
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                model = self.api("GET", f"users/{user}").json()
            except requests.Timeout:
                continue
            if model.get("servers", {}).get(server, {}).get("ready"):
                return
            time.sleep(0.25)
        raise HubError(f"{user}'s server {server!r} did not become ready; hub log:\n"
                       f"{self.log_tail()}")

    def share(self, owner: str, with_user: str) -> None:
        """JupyterHub sharing: `with_user` may now use `owner`'s default server."""
        response = self.api("POST", f"shares/{owner}/", json={"user": with_user})
        if response.status_code not in (200, 201):
            raise HubError(f"sharing {owner}'s server: {response.status_code} "
                           f"{response.text[:300]}")

    def user_token(self, user: str) -> str:
        response = self.api("POST", f"users/{user}/tokens", json={"note": "nbauth tests",
                                                                    "expires_in": 3600})
        if response.status_code != 201:
            raise HubError(f"token for {user}: {response.status_code} {response.text[:300]}")
        return str(response.json()["token"])

    @contextlib.contextmanager
    def kernel(self, user: str, server: str = "") -> Iterator[KernelSession]:
        """A kernel on `user`'s default (or named) server, started through the server's REST
        API, and a client for it."""
        token = self.user_token(user)
        base = f"{self.url}user/{user}/{server + '/' if server else ''}api/"
        headers = {"Authorization": f"token {token}"}
        response = requests.post(f"{base}kernels", headers=headers, json={"name": "python3"},
                                 timeout=30)
        if response.status_code != 201:
            raise HubError(f"kernel for {user}: {response.status_code} {response.text[:300]}")
        kernel_id = response.json()["id"]
        try:
            connection = self._connection_file(user, kernel_id)
            client = BlockingKernelClient(connection_file=str(connection))
            client.load_connection_file()
            client.start_channels()
            try:
                client.wait_for_ready(timeout=60)
                yield KernelSession(client)
            finally:
                client.stop_channels()
        finally:
            with contextlib.suppress(requests.RequestException):
                requests.delete(f"{base}kernels/{kernel_id}", headers=headers, timeout=15)

    def _connection_file(self, user: str, kernel_id: str) -> Path:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = list(self.home(user).rglob(f"kernel-{kernel_id}.json"))
            if found:
                return found[0]
            time.sleep(0.1)
        raise HubError(f"no connection file for {user}'s kernel {kernel_id}")

    def wait_for_log(self, text: str, timeout: float = 10) -> str:
        """The whole log once it contains `text` (each process writes its own lines)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if text in log:
                return log
            if time.monotonic() >= deadline:
                raise HubError(f"{text!r} not in the hub's log; tail:\n{self.log_tail()}")
            time.sleep(0.1)

    def assert_not_logged(self, values: Mapping[str, str]) -> None:
        """None of `values` (what → secret) is in the log, as is or percent-encoded once or
        twice (as inside a `next` parameter)."""
        log = self.log_text()
        for what, value in values.items():
            assert len(value) >= 16, f"{what} is too short to search for: {value!r}"
            once = quote(value, safe="")
            for form in {value, once, quote(once, safe="")}:
                assert form not in log, f"{what} is in {self.log_path}"


def login_secrets(user: str, start_url: str, callback_url: str) -> dict[str, str]:
    """The start key of a login and the code and state of its authorization response."""
    key = parse_qs(urlsplit(start_url).query)["key"][0]
    query = parse_qs(urlsplit(callback_url).query)
    return {f"{user}'s start key": key, f"{user}'s code": query["code"][0],
            f"{user}'s state": query["state"][0]}


class KernelSession:
    """Run code in a kernel; return what it printed (raise on an error)."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client

    def run(self, code: str, timeout: float = 60) -> str:
        out: list[str] = []
        errors: list[str] = []

        def hook(message: dict[str, Any]) -> None:
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=hook)
        if errors or reply["content"]["status"] != "ok":
            raise HubError(f"kernel error: {errors or reply['content']}")
        return "".join(out)


def start_login_cell(kernel: KernelSession, provider: ProviderInfo) -> dict[str, str]:
    """What a user runs: %load_ext nbauth, then %auth0_login (not waiting, so the test can
    read the link the widget shows, as a person reads it on screen)."""
    output = kernel.run(
        "%load_ext nbauth\n"
        f"%auth0_login --no-wait --domain {provider.issuer} "
        f"--client-id {provider.exact_client_id} --audience {provider.audience}\n"
        "import json as _j\n"
        "_login = get_ipython().magics_manager.registry['AuthMagics'].logins['access_token']\n"
        "print(_j.dumps({'start': _login.pending.start_url,\n"
        "                'redirect_uri': _login.pending.redirect_uri,\n"
        "                'status': _login.widget.status_text}))\n"
    )
    return dict(json.loads(output.strip().splitlines()[-1]))


def api_call_cell(kernel: KernelSession, provider: ProviderInfo) -> dict[str, object]:
    """Wait (at most 30 s) for the login to finish, then call the provider's API with it."""
    output = kernel.run(
        "import time as _t, json as _j\n"
        "for _ in range(300):\n"
        "    if 'access_token' in globals(): break\n"
        "    _t.sleep(0.1)\n"
        f"_r = auth0_session.get({provider.api_url!r}, timeout=10)\n"
        "print(_j.dumps({'status': _r.status_code, 'sub': _r.json().get('sub')}))\n",
        timeout=90,
    )
    return dict(json.loads(output.strip().splitlines()[-1]))


def _config(base_dir: Path, ports: Mapping[str, int], api_token: str,
            environment: Mapping[str, str], roles: Sequence[Mapping[str, Any]],
            base_url: str) -> str:
    singleuser = Path(sys.executable).with_name("jupyterhub-singleuser")
    return f"""
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{ports['public']}{base_url}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{ports['hub']}/"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports['proxy_api']}"
c.ConfigurableHTTPProxy.command = [{str(PROXY_BIN / 'configurable-http-proxy')!r}]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = "sqlite:///{base_dir / 'hub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(base_dir / 'cookie_secret')!r}
c.JupyterHub.pid_file = {str(base_dir / 'hub.pid')!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "nbauth-hub-test"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(base_dir / 'home' / '{username}')!r}
c.Spawner.cmd = [{str(singleuser)!r}]
c.Spawner.args = ["--allow-root", "--ServerApp.shutdown_no_activity_timeout=900"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {dict(environment)!r}
c.JupyterHub.services = [{{"name": "nbauth-tests", "api_token": {api_token!r}}}]
c.JupyterHub.load_roles = {[
    {"name": "nbauth-tests-admin", "services": ["nbauth-tests"],
     "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:users",
                "shares"]},
    *roles,
]!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.last_activity_interval = 3600
"""


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig) if sig == signal.SIGKILL else process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30 if sig == signal.SIGTERM else 10)


def _wait_ready(hub: Hub, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            return False
        with contextlib.suppress(requests.RequestException):
            if hub.api("GET", "", timeout=2).status_code == 200:
                return True
        time.sleep(0.25)
    raise HubError(f"JupyterHub did not become ready; log:\n{hub.log_tail()}")


@contextlib.contextmanager
def running_hub(base_dir: Path, *, environment: Mapping[str, str] | None = None,
                roles: Sequence[Mapping[str, Any]] = (), extra_config: str = "",
                base_url: str = "/", attempts: int = 3) -> Iterator[Hub]:
    """Start JupyterHub (and its proxy) in `base_dir`; stop it and every server at exit.

    `environment` is given to every user's server (and so their kernels). `extra_config` is
    appended to jupyterhub_config.py. "{hub_url}" in either becomes the hub's public URL, with
    `base_url` (the hub's `c.JupyterHub.base_url`, e.g. "/jhub/"): `Hub.url`.
    """
    if not (base_url.startswith("/") and base_url.endswith("/")):
        raise ValueError(f"base_url must start and end with '/': {base_url!r}")
    if not proxy_available():
        raise HubError("configurable-http-proxy is missing: run `npm ci --prefix tests/hub` "
                       "(make setup does)")
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTH0_", "NBAUTH_", "JUPYTER", "JPY_"))}
    env["PATH"] = f"{PROXY_BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}" \
                  f"{env.get('PATH', '')}"
    env["CONFIGPROXY_AUTH_TOKEN"] = secrets.token_hex(16)
    for _attempt in range(attempts):
        base = random.randrange(31000, 39000)  # noqa: S311 - not security relevant
        ports = {"public": base, "hub": base + 1, "proxy_api": base + 2}
        api_token = secrets.token_hex(24)
        for stale in ("hub.sqlite", "hub.pid"):
            with contextlib.suppress(OSError):
                (base_dir / stale).unlink()
        config = base_dir / "jupyterhub_config.py"
        hub_url = f"http://127.0.0.1:{ports['public']}{base_url}"
        user_env = {k: v.replace("{hub_url}", hub_url) for k, v in (environment or {}).items()}
        config.write_text(_config(base_dir, ports, api_token, user_env, roles, base_url)
                          + extra_config.replace("{hub_url}", hub_url))
        log_path = base_dir / "hub.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=base_dir, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        hub = Hub(hub_url, api_token, base_dir, log_path, process)
        try:
            ready = _wait_ready(hub, time.monotonic() + START_TIMEOUT)
        except BaseException:
            _stop(process)
            raise
        if not ready:
            _stop(process)
            continue  # most likely a port was taken: try others
        try:
            yield hub
        except BaseException:
            print(f"--- hub log {log_path} (tail) ---\n{hub.log_tail()}")  # shown on failure
            raise
        finally:
            _stop(process)
        return
    raise HubError(f"JupyterHub did not start; log:\n{(base_dir / 'hub.log').read_text()[-6000:]}")


def dump(value: object) -> str:
    return json.dumps(value)
