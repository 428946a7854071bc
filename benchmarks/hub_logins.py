"""Benchmark 8: N users log in at once through a real JupyterHub's one hub-wide callback.

A hub on loopback (tests/hubs.py: configurable-http-proxy, DummyAuthenticator,
SimpleLocalProcessSpawner) runs N single-user servers with nbauth's extension. For each user a
process of its own (standing in for the user's kernel, with that kernel's environment) starts
the login with the Jupyter route, and a person's browser (a requests session logged in to the
hub) signs in at the provider; all N callbacks are then delivered at the same moment.
Printed: success rate, and the callback latency percentiles — from the browser's GET of
`/hub/user-redirect/nbauth/callback` to nbauth's page (hub redirect + server relay + the
kernel's code exchange and ID-token check) — and, per login, the same minus that login's own
token POST (timed inside its kernel, as benchmark 3c does): the callback relay itself.

    .venv/bin/python benchmarks/hub_logins.py [--users 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "provider")]

from devprovider import running_provider  # noqa: E402
from hubs import running_hub  # noqa: E402
from scripted_user import complete_login  # noqa: E402

#: What each user's "kernel" runs: start the routed login, print its link, wait, print who,
#: with how long its token POST to the provider took and how long its listener spent on the
#: relayed callback (timing hooks on the one place that talks to the provider, and on the
#: listener's dispatch: code exchange + ID-token check + credentials).
KERNEL = """
import json, sys, time
from nbauth.flow import start_login
from nbauth.http import ProviderClient
from nbauth.loopback import CallbackListener
from nbauth.route import choose_route
posts, handled = [], []
post_form, dispatch = ProviderClient.post_form, CallbackListener.dispatch
def timed_post(self, url, data, **kwargs):
    t0 = time.perf_counter()
    try:
        return post_form(self, url, data, **kwargs)
    finally:
        if kwargs.get("what") == "token":
            posts.append(time.perf_counter() - t0)
def timed_dispatch(self, params):
    t0 = time.perf_counter()
    try:
        return dispatch(self, params)
    finally:
        handled.append(time.perf_counter() - t0)
ProviderClient.post_form, CallbackListener.dispatch = timed_post, timed_dispatch
issuer, client_id, audience, public_url = sys.argv[1:5]
route = choose_route("auto", public_url=public_url)
assert route.mode == "jupyter", route.reason
pending = start_login(issuer, client_id, audience=audience, route=route, timeout=300)
print(json.dumps({"start": pending.start_url}), flush=True)
credentials = pending.wait(timeout=300)
print(json.dumps({"sub": credentials.identity.subject, "token_post": posts[-1],
                  "handled": handled[-1]}), flush=True)
# wait() returns as soon as the login is decided, while the listener's request thread (a
# daemon) still sends the page back; a real kernel lives on, this one would exit and cut it off.
import threading
for thread in threading.enumerate():
    if "process_request" in thread.name:
        thread.join(10)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(count: int) -> dict[str, Any]:
    """Run the scenario with `count` users; return the figures (latencies in ms)."""
    users = [f"user{i:02d}" for i in range(count)]
    with tempfile.TemporaryDirectory() as base, \
            running_hub(Path(base) / "hub", environment={"NBAUTH_PUBLIC_URL": "{hub_url}"}) as hub:
        began = time.monotonic()
        spawners = [threading.Thread(target=hub.start_server, args=(u,)) for u in users]
        for thread in spawners:
            thread.start()
        for thread in spawners:
            thread.join(300)
        spawn_seconds = time.monotonic() - began
        callback_url = f"{hub.url}hub/user-redirect/nbauth/callback"
        with running_provider(redirect_uris=[callback_url]) as provider:
            kernels, callbacks, browsers = {}, {}, {}
            for user in users:
                home = hub.home(user)
                env = {**os.environ, "HOME": str(home), "JUPYTERHUB_SERVICE_PREFIX":
                       f"/user/{user}/", "JUPYTERHUB_USER": user, "JUPYTERHUB_BASE_URL": "/"}
                env.pop("JUPYTER_RUNTIME_DIR", None)
                kernels[user] = subprocess.Popen(
                    [sys.executable, "-c", KERNEL, provider.issuer, provider.exact_client_id,
                     provider.audience or "", hub.url], env=env, stdout=subprocess.PIPE,
                    text=True)
            for user in users:
                line = kernels[user].stdout.readline()  # type: ignore[union-attr]
                start_url = json.loads(line)["start"]
                browsers[user] = hub.browser(user)
                callbacks[user] = complete_login(start_url, session=browsers[user],
                                                 follow_callback=False, timeout=60)
            latencies: dict[str, float] = {}
            ok: dict[str, bool] = {}
            failures: list[str] = []
            gate = threading.Barrier(len(users), timeout=60)

            def deliver(user: str) -> None:
                gate.wait()
                t0 = time.perf_counter()
                page = browsers[user].get(callbacks[user], timeout=120)
                latencies[user] = time.perf_counter() - t0
                ok[user] = page.status_code == 200 and "Logged in" in page.text
                if not ok[user]:  # nbauth's or the hub's page: no code or state in it
                    failures.append(f"HTTP {page.status_code} {_title(page.text)!r}")

            threads = [threading.Thread(target=deliver, args=(u,)) for u in users]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(180)
            right_token = 0
            latency, token_post, relay, in_kernel = [], [], [], []
            for user in users:
                line = kernels[user].stdout.readline()  # type: ignore[union-attr]
                kernels[user].wait(60)
                if not line:
                    continue
                result = json.loads(line)
                right_token += result["sub"] == "auth0|demo"
                if user in latencies:
                    # Per login, as benchmark 3c: the browser's wait minus this login's own
                    # token POST (and, for the relay alone, minus all the kernel's handling).
                    latency.append(latencies[user] * 1000)
                    token_post.append(result["token_post"] * 1000)
                    relay.append((latencies[user] - result["token_post"]) * 1000)
                    in_kernel.append((latencies[user] - result["handled"]) * 1000)
    return {"users": len(users), "spawn_seconds": spawn_seconds, "ok": sum(ok.values()),
            "with_token": right_token, "latency_ms": latency, "token_post_ms": token_post,
            "relay_ms": relay, "relay_outside_kernel_ms": in_kernel, "failures": failures}


def _title(html: str) -> str:
    start, end = html.find("<title>"), html.find("</title>")
    return html[start + 7:end].strip()[:80] if 0 <= start < end else html[:80]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    result = measure(parser.parse_args().users)
    ms, count = result["latency_ms"], result["users"]
    print(f"JupyterHub logins through one hub-wide callback: {count} users at once")
    print(f"  servers spawned in            {result['spawn_seconds']:8.1f} s")
    print(f"  logins completed              {result['ok']:4d}/{count} "
          f"({100 * result['ok'] / count:.0f} %), kernels holding their token "
          f"{result['with_token']}/{count}")
    for label, values in (("callback → page (ms)", ms),
                          ("  of which the token POST", result["token_post_ms"]),
                          ("  callback relay (− POST)", result["relay_ms"]),
                          ("  outside the kernel", result["relay_outside_kernel_ms"])):
        if values:
            print(f"  {label:<29} p50 {percentile(values, 50):7.1f}  p90 "
                  f"{percentile(values, 90):7.1f}  p99 {percentile(values, 99):7.1f}  max "
                  f"{max(values):7.1f}  median {statistics.median(values):7.1f}")
    return 0 if result["ok"] == count else 1


if __name__ == "__main__":
    raise SystemExit(main())
