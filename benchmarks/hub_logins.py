"""Benchmark 8: N users log in at once through a real JupyterHub's one hub-wide callback.

A hub on loopback (tests/hubs.py: configurable-http-proxy, DummyAuthenticator,
SimpleLocalProcessSpawner) runs N single-user servers with nbauth's extension. For each user a
process of its own (standing in for the user's kernel, with that kernel's environment) starts
the login with the Jupyter route, and a person's browser (a requests session logged in to the
hub) signs in at the provider; all N callbacks are then delivered at the same moment.
Printed: success rate, and the callback latency percentiles — from the browser's GET of
`/hub/user-redirect/nbauth/callback` to nbauth's page (hub redirect + server relay + the
kernel's code exchange and ID-token check) — beside the provider's token round trip alone.

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

#: What each user's "kernel" runs: start the routed login, print its link, wait, print who.
KERNEL = """
import json, sys
from nbauth.flow import start_login
from nbauth.route import choose_route
issuer, client_id, audience, public_url = sys.argv[1:5]
route = choose_route("auto", public_url=public_url)
assert route.mode == "jupyter", route.reason
pending = start_login(issuer, client_id, audience=audience, route=route, timeout=300)
print(json.dumps({"start": pending.start_url}), flush=True)
credentials = pending.wait(timeout=300)
t0 = __import__("time").perf_counter()
credentials.refresh()
rtt = __import__("time").perf_counter() - t0
print(json.dumps({"sub": credentials.identity.subject, "token_rtt": rtt}), flush=True)
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
            gate = threading.Barrier(len(users), timeout=60)

            def deliver(user: str) -> None:
                gate.wait()
                t0 = time.perf_counter()
                page = browsers[user].get(callbacks[user], timeout=120)
                latencies[user] = time.perf_counter() - t0
                ok[user] = page.status_code == 200 and "Logged in" in page.text

            threads = [threading.Thread(target=deliver, args=(u,)) for u in users]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(180)
            right_token, token_rtt = 0, []
            for user in users:
                line = kernels[user].stdout.readline()  # type: ignore[union-attr]
                kernels[user].wait(60)
                if line:
                    result = json.loads(line)
                    right_token += result["sub"] == "auth0|demo"
                    token_rtt.append(result["token_rtt"])
    return {"users": len(users), "spawn_seconds": spawn_seconds, "ok": sum(ok.values()),
            "with_token": right_token, "latency_ms": [v * 1000 for v in latencies.values()],
            "token_rtt_ms": [v * 1000 for v in token_rtt]}


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
    print(f"  callback latency (ms)         p50 {percentile(ms, 50):7.1f}  p90 "
          f"{percentile(ms, 90):7.1f}  p99 {percentile(ms, 99):7.1f}  max {max(ms):7.1f}")
    if result["token_rtt_ms"]:
        print(f"  provider token round trip     median "
              f"{statistics.median(result['token_rtt_ms']):7.1f} ms (a refresh grant)")
    return 0 if result["ok"] == count else 1


if __name__ == "__main__":
    raise SystemExit(main())
