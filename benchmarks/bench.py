"""nbauth's benchmark suite: what a user waits for and what nbauth adds, next to its peers.

Run through `benchmarks/run` (which sets up the environment). Every measurement is repeated and
reported as median [min … max]; everything runs in one process against one local provider in
one run, so ratios between rows are comparable even on a noisy shared machine.

A benchmark is a function `ctx -> None` registered with `@benchmark(number, title)`; it adds
rows with `ctx.row(...)`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "provider"), str(HERE), str(ROOT / "tests")]

import requests  # noqa: E402
from devprovider import ProviderInfo, running_provider  # noqa: E402
from scripted_user import complete_login  # noqa: E402

# -- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    number: str
    name: str
    samples: list[float]
    unit: str  # "ms", "us", "MB", "KiB", "%" (a difference), "pct" (a share), "x", "count"
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


@dataclass
class Context:
    provider: ProviderInfo
    quick: bool
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def row(self, number: str, name: str, samples: Sequence[float], unit: str, *,
            target: str = "", met: bool | None = None, note: str = "") -> Row:
        row = Row(number, name, list(samples), unit, target, met, note)
        self.rows.append(row)
        print("  " + format_row(row), flush=True)
        return row

    @property
    def metadata(self) -> dict[str, Any]:
        if "metadata" not in self.raw:
            self.raw["metadata"] = requests.get(
                self.provider.issuer + ".well-known/openid-configuration", timeout=10).json()
        return dict(self.raw["metadata"])


BENCHMARKS: list[tuple[str, str, Callable[[Context], None]]] = []


def benchmark(number: str, title: str) -> Callable[[Callable[[Context], None]],
                                                     Callable[[Context], None]]:
    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        BENCHMARKS.append((number, title, fn))
        return fn
    return register


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "–"
    if unit == "count":
        return f"{value:g}"
    if unit == "pct":
        return f"{value:.0f} %"
    if unit == "%":
        return f"{value:+.1f} %"
    if unit == "x":
        return f"{value:.2f}×"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def format_row(row: Row) -> str:
    if row.samples:
        spread = f"{fmt(min(row.samples), row.unit)} … {fmt(max(row.samples), row.unit)}"
    else:
        spread = ""
    verdict = {True: "yes", False: "NO", None: ""}[row.met]
    return (f"| {row.number:<3} | {row.name:<72} | {fmt(row.median, row.unit):>10} | "
            f"{spread:<23} | {len(row.samples):>3} | {row.target:<12} | {verdict:<3} |")


def print_table(rows: list[Row]) -> None:
    print()
    print(f"| {'#':<3} | {'measurement (median of n runs)':<72} | {'median':>10} | "
          f"{'min … max':<23} | {'n':>3} | {'target':<12} | met |")
    print(f"|{'-' * 5}|{'-' * 74}|{'-' * 12}|{'-' * 25}|{'-' * 5}|{'-' * 14}|-----|")
    for row in rows:
        print(format_row(row))
    notes = [(r.number, r.name, r.note) for r in rows if r.note]
    if notes:
        print()
        for number, name, note in notes:
            print(f"- {number} {name}: {note}")


# -- helpers -----------------------------------------------------------------------------------

def ms(seconds: float) -> float:
    return seconds * 1000.0


def python() -> str:
    return sys.executable


def interleaved(variants: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """Round-robin order, rotated every round, so drift on a shared machine hits all alike."""
    for r in range(rounds):
        shift = r % len(variants)
        for name in list(variants[shift:]) + list(variants[:shift]):
            yield r, name


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    from IPython.utils.capture import capture_output

    with capture_output():
        yield


_shell: Any = None


def shell() -> Any:
    """One IPython InteractiveShell with nbauth loaded, for the in-process benchmarks."""
    global _shell
    if _shell is None:
        from IPython.core.interactiveshell import InteractiveShell

        _shell = InteractiveShell.instance()
        _shell.run_line_magic("load_ext", "nbauth")
    return _shell


def login_line(provider: ProviderInfo, extra: str = "") -> str:
    return (f"--domain {provider.issuer} --client-id {provider.client_id} "
            f"--audience {provider.audience} --port 0 --no-browser --no-wait {extra}")


def magic_login(provider: ProviderInfo) -> Any:
    """`%auth0_login --no-wait` in the shell; returns the NotebookLogin."""
    ip = shell()
    with quiet():
        ip.run_line_magic("auth0_login", login_line(provider))
    return ip.magics_manager.registry["AuthMagics"].logins["access_token"]


def deliver_callback(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET the callback like a browser would, on a fresh connection (http.client: little
    client-side overhead, so the time measured is the listener's)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- 1. extension load cost --------------------------------------------------------------------

LOAD_PROBE = r"""
import json, os, sys, time
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
variant, traced = sys.argv[1], sys.argv[2] == "1"
if traced:
    import tracemalloc
    tracemalloc.start()
t_shell = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
t_shell = time.perf_counter() - t_shell
before_mods = set(sys.modules)
r0 = rss(); m0 = tracemalloc.get_traced_memory()[0] if traced else 0
t0 = time.perf_counter()
if variant == "nbauth":
    sh.run_line_magic("load_ext", "nbauth")
elif variant == "google-auth-oauthlib":
    import google_auth_oauthlib.flow
elif variant == "authlib":
    import authlib.integrations.requests_client
elif variant == "import nbauth (API)":
    import nbauth
dt = time.perf_counter() - t0
out = {"seconds": dt, "rss_mb": rss() - r0, "shell_seconds": t_shell, "shell_rss_mb": r0,
       "traced_mb": (tracemalloc.get_traced_memory()[0] - m0) / 2**20 if traced else None,
       "heavy": sorted(m for m in ("ipywidgets", "jwt", "requests", "cryptography", "http.server")
                       if m in sys.modules and m not in before_mods)}
if variant == "nbauth" and os.environ.get("BENCH_FIRST_LOGIN"):
    from IPython.utils.capture import capture_output
    t0 = time.perf_counter()
    with capture_output():
        sh.run_line_magic("auth0_login", os.environ["BENCH_FIRST_LOGIN"])
    out["first_login_seconds"] = time.perf_counter() - t0
    login = sh.magics_manager.registry["AuthMagics"].logins["access_token"]
    assert login.widget._url.value.startswith("http://127.0.0.1:"), "no link in the widget"
    login.cancel()
print(json.dumps(out))
"""


def load_probe(variant: str, traced: bool, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(  # noqa: S603 - this interpreter, our own probe
        [python(), "-c", LOAD_PROBE, variant, "1" if traced else "0"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise RuntimeError(f"load probe {variant} failed:\n{result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


KERNEL_LOAD_CELL = r"""
import json as _json, os as _os, sys as _sys, time as _time
def _rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _os.sysconf("SC_PAGE_SIZE") / 2**20
_before = set(_sys.modules)
_r0 = _rss(); _t0 = _time.perf_counter()
get_ipython().run_line_magic("load_ext", "nbauth")
_dt = _time.perf_counter() - _t0
print("BENCH-RESULT " + _json.dumps({"seconds": _dt, "rss_mb": _rss() - _r0, "heavy": sorted(
    m for m in ("ipywidgets", "jwt", "requests", "cryptography", "http.server")
    if m in _sys.modules and m not in _before)}))
"""


class FreshKernel:
    """A new ipykernel with provider/ and benchmarks/ on its path, driven as a frontend does."""

    def __init__(self) -> None:
        from kernel_frontend import FrontendKernel

        # quiet: ipykernel warns that its (loopback) ports are unencrypted, once per kernel.
        self._kernel = FrontendKernel({"PYTHONPATH": os.pathsep.join(
            [str(ROOT / "provider"), str(HERE)])}, quiet=True)

    def run(self, code: str, *, cell_id: str | None = None, timeout: float = 600) -> str:
        """Execute one cell (with `cell_id` in the request's metadata, as JupyterLab, Notebook 7
        and VS Code send it); return its text output, raising if the cell failed."""
        try:
            result = self._kernel.execute(code, cell_id=cell_id, timeout=timeout)
        except TimeoutError as exc:
            raise RuntimeError(f"the kernel cell failed: {exc}") from None
        if result.errors:
            raise RuntimeError("the kernel cell failed:\n"
                               + (result.text + "".join(result.tracebacks))[-3000:])
        return result.text

    def result(self, code: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON a cell printed after 'BENCH-RESULT '."""
        out = self.run(code, **kwargs)
        line = next(x for x in out.splitlines() if x.startswith("BENCH-RESULT "))
        return dict(json.loads(line[len("BENCH-RESULT "):]))

    def close(self) -> None:
        self._kernel.close()


def run_in_fresh_kernel(code: str, timeout: float = 600) -> dict[str, Any]:
    """Run `code` as one cell in a new ipykernel; return the JSON it printed after
    'BENCH-RESULT '."""
    kernel = FreshKernel()
    try:
        return kernel.result(code, timeout=timeout)
    finally:
        kernel.close()


@benchmark("1", "extension load cost (fresh `python -c` processes, fresh kernels)")
def bench_load(ctx: Context) -> None:
    variants = ["bare", "nbauth", "google-auth-oauthlib", "authlib", "import nbauth (API)"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    rss: dict[str, list[float]] = {v: [] for v in variants}
    heavy: set[str] = set()
    first_login: list[float] = []
    shell_ms: list[float] = []
    shell_rss: list[float] = []
    env = {"BENCH_FIRST_LOGIN": login_line(ctx.provider)}
    for _, variant in interleaved(variants, ctx.n(7, 1)):
        out = load_probe(variant, traced=False, env=env)
        times[variant].append(ms(out["seconds"]))
        rss[variant].append(out["rss_mb"])
        if variant == "bare":
            shell_ms.append(ms(out["shell_seconds"]))
            shell_rss.append(out["shell_rss_mb"])
        if variant == "nbauth":
            heavy.update(out["heavy"])
            first_login.append(ms(out["first_login_seconds"]))
    traced = [load_probe("nbauth", traced=True)["traced_mb"] for _ in range(ctx.n(3, 1))]
    base = statistics.median(times["bare"])
    ctx.row("1a", "%load_ext nbauth: time added to a fresh IPython shell", times["nbauth"], "ms",
            target="< 50 ms", met=statistics.median(times["nbauth"]) < 50)
    ctx.row("1b", "%load_ext nbauth: RSS added", rss["nbauth"], "MB", target="< 5 MB",
            met=statistics.median(rss["nbauth"]) < 5)
    ctx.row("1c", "%load_ext nbauth: Python memory allocated (tracemalloc)", traced, "MB",
            target="< 5 MB", met=statistics.median(traced) < 5)
    ctx.row("1d", "heavy modules imported by %load_ext (ipywidgets, jwt, requests, ...)",
            [len(heavy)], "count", target="0", met=not heavy,
            note=("none: they are imported when a login starts" if not heavy
                  else "imported at load: " + ", ".join(sorted(heavy))))
    ctx.row("1e", "(reference) bare IPython: import + InteractiveShell()", shell_ms, "ms")
    ctx.row("1e'", "(reference) bare IPython process RSS", shell_rss, "MB")
    ctx.row("1f", "(peer) import google_auth_oauthlib.flow", times["google-auth-oauthlib"], "ms")
    ctx.row("1g", "(peer) RSS of import google_auth_oauthlib.flow",
            rss["google-auth-oauthlib"], "MB")
    ctx.row("1h", "(peer) import authlib.integrations.requests_client", times["authlib"], "ms")
    ctx.row("1i", "(peer) RSS of import authlib.integrations.requests_client", rss["authlib"], "MB")
    ctx.row("1j", "import nbauth (Python API, lazy)", times["import nbauth (API)"], "ms")
    kernel_runs = [run_in_fresh_kernel(KERNEL_LOAD_CELL, timeout=120)
                   for _ in range(ctx.n(5, 1))]
    kernel_ms = [ms(r["seconds"]) for r in kernel_runs]
    kernel_mb = [r["rss_mb"] for r in kernel_runs]
    kernel_heavy = sorted({m for r in kernel_runs for m in r["heavy"]})
    ctx.row("1k", "%load_ext nbauth in a fresh ipykernel: time added", kernel_ms, "ms",
            target="< 50 ms", met=statistics.median(kernel_ms) < 50,
            note="heavy modules imported: " + (", ".join(kernel_heavy) or "none"))
    ctx.row("1l", "%load_ext nbauth in a fresh ipykernel: RSS added", kernel_mb, "MB",
            target="< 5 MB", met=statistics.median(kernel_mb) < 5)
    ctx.row("2a", "first %auth0_login in a fresh process → link (imports + discovery)",
            first_login, "ms",
            note="pays the deferred imports (requests, PyJWT/cryptography, ipywidgets) once")
    ctx.raw["load"] = {"times_ms": times, "rss_mb": rss, "traced_mb": traced,
                       "bare_median_ms": base}


# -- 2. time to a clickable login --------------------------------------------------------------

@benchmark("2", "time to a clickable login (in-process, real provider)")
def bench_clickable(ctx: Context) -> None:
    from nbauth import start_login
    from nbauth.discovery import clear_metadata_cache

    provider = ctx.provider
    magic_login(provider).cancel()  # imports and first-use costs out of the way
    series: dict[str, list[float]] = {"magic cold": [], "magic warm": [], "api cold": [],
                                      "api warm": []}
    for _, variant in interleaved(list(series), ctx.n(30, 3)):
        if "cold" in variant:
            clear_metadata_cache()
        if variant.startswith("magic"):
            t0 = time.perf_counter()
            login = magic_login(provider)
            dt = time.perf_counter() - t0
            assert login.widget._url.value.startswith("http://127.0.0.1:")
            login.cancel()
        else:
            t0 = time.perf_counter()
            pending = start_login(provider.issuer, provider.client_id,
                                  audience=provider.audience, port=0)
            dt = time.perf_counter() - t0
            assert pending.start_url.startswith("http://127.0.0.1:")
            pending.cancel()
        series[variant].append(ms(dt))
    ctx.row("2b", "%auth0_login --no-wait → link in the widget, cold (discovery fetched)",
            series["magic cold"], "ms")
    ctx.row("2c", "%auth0_login --no-wait → link in the widget, warm (discovery cached)",
            series["magic warm"], "ms")
    ctx.row("2d", "start_login() → start_url, cold", series["api cold"], "ms")
    ctx.row("2e", "start_login() → start_url, warm", series["api warm"], "ms")


# -- 3. login overhead -------------------------------------------------------------------------

@contextlib.contextmanager
def token_post_timer() -> Iterator[list[float]]:
    """Record how long each token POST to the provider takes (a timing hook on the one place
    that talks to the provider)."""
    from nbauth.http import ProviderClient

    durations: list[float] = []
    original = ProviderClient.post_form

    def timed(self: Any, url: str, data: dict[str, str], **kwargs: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            return original(self, url, data, **kwargs)
        finally:
            if kwargs.get("what") == "token":
                durations.append(time.perf_counter() - t0)

    ProviderClient.post_form = timed  # type: ignore[method-assign]
    try:
        yield durations
    finally:
        ProviderClient.post_form = original  # type: ignore[method-assign]


def bare_token_post(ctx: Context) -> float:
    """The provider's token round trip from plain requests, with a fresh code (reference)."""
    from authlib.common.security import generate_token

    from nbauth.pkce import Pkce

    md = ctx.metadata
    pkce = Pkce()
    verifier, challenge = pkce.verifier, pkce.challenge
    redirect_uri = "http://127.0.0.1:9/callback"
    from urllib.parse import parse_qs, urlencode

    url = md["authorization_endpoint"] + "?" + urlencode({
        "response_type": "code", "client_id": ctx.provider.client_id,
        "redirect_uri": redirect_uri, "scope": "openid profile email offline_access",
        "state": generate_token(20), "nonce": generate_token(20),
        "code_challenge": challenge, "code_challenge_method": "S256",
        "audience": ctx.provider.audience})
    callback = complete_login(url, follow_callback=False)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    t0 = time.perf_counter()
    response = requests.post(md["token_endpoint"], data={
        "grant_type": "authorization_code", "client_id": ctx.provider.client_id, "code": code,
        "redirect_uri": redirect_uri, "code_verifier": verifier}, timeout=20)
    dt = time.perf_counter() - t0
    response.raise_for_status()
    return dt


@contextlib.contextmanager
def namespace_timer(ip: Any) -> Iterator[list[float]]:
    """Record when `access_token` is put into the user's namespace (a hook on shell.push)."""
    pushed: list[float] = []
    original = ip.push

    def timed_push(variables: Any, interactive: bool = True) -> None:
        original(variables, interactive=interactive)
        if isinstance(variables, dict) and "access_token" in variables:
            pushed.append(time.perf_counter())

    ip.push = timed_push
    try:
        yield pushed
    finally:
        del ip.push  # back to the class's method


@benchmark("3", "login overhead: callback → token in the namespace, minus the token POST")
def bench_overhead(ctx: Context) -> None:
    provider = ctx.provider
    ip = shell()
    totals, posts, overheads, bare, in_ns = [], [], [], [], []
    with token_post_timer() as durations, namespace_timer(ip) as pushed:
        for i in range(ctx.n(30, 3) + 2):
            login = magic_login(provider)
            callback = complete_login(login.widget._url.value, follow_callback=False)
            before = len(durations)
            t0 = time.perf_counter()
            status, _ = deliver_callback(callback)
            dt = time.perf_counter() - t0
            if status != 200 or login.credentials is None:
                raise RuntimeError(f"the callback failed (HTTP {status})")
            # The token is in the namespace before the listener answers the browser.
            assert ip.user_ns["access_token"] is login.credentials.current_token
            if i < 2:
                continue  # the first logins fetch the JWKS and warm caches
            post = durations[before]
            totals.append(ms(dt))
            posts.append(ms(post))
            overheads.append(ms(pushed[-1] - t0 - post))
            in_ns.append(ms(pushed[-1] - t0))
            if i % 3 == 0 or ctx.quick:
                bare.append(ms(bare_token_post(ctx)))
    ctx.row("3a", "callback GET sent → access_token in the namespace (hook on push)", in_ns,
            "ms")
    ctx.row("3b", "  of which the provider's token POST (timing hook in nbauth.http)", posts, "ms")
    ctx.row("3c", "  nbauth's overhead (3a − 3b, per login)", overheads, "ms", target="≤ 5 ms",
            met=statistics.median(overheads) <= 5)
    ctx.row("3e", "callback GET sent → browser has the page (widget updated too)", totals, "ms")
    ctx.row("3d", "(reference) token POST from plain requests, fresh code", bare, "ms")
    ctx.raw["overhead_ms"] = overheads


# -- 4. whole scripted login vs peers ----------------------------------------------------------

def login_nbauth_no_hop(provider: ProviderInfo, browser: Any) -> str:
    """Attribution only: nbauth with the browser sent straight to the authorization URL,
    skipping the /start/<token> redirect that keeps the login's state out of outputs."""
    import peers

    from nbauth import start_login

    pending = start_login(provider.issuer, provider.client_id, audience=provider.audience,
                          scope=peers.SCOPE, port=0, timeout=60)
    browser(pending.url)
    credentials = pending.wait()
    browser.join()
    return str(credentials.token())


@contextlib.contextmanager
def id_token_unchecked() -> Iterator[None]:
    """Attribution only: nbauth reads the ID token's claims without validating it (no
    signature check against the JWKS, no iss/aud/azp/exp/iat/nonce checks), as the peers do
    (they do not even decode it; decoding is ~20 us)."""
    import jwt

    import nbauth.flow as flow

    original = flow.validate_id_token

    def unchecked(id_token: str, **_: Any) -> dict[str, Any]:
        return dict(jwt.decode(id_token, options={"verify_signature": False}))

    flow.validate_id_token = unchecked  # type: ignore[attr-defined]
    try:
        yield
    finally:
        flow.validate_id_token = original  # type: ignore[attr-defined]


@contextlib.contextmanager
def id_token_timer() -> Iterator[list[float]]:
    """Record how long each ID-token validation inside the callback takes (a timing hook)."""
    import nbauth.flow as flow

    durations: list[float] = []
    original = flow.validate_id_token

    def timed(id_token: str, **kwargs: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            return original(id_token, **kwargs)
        finally:
            durations.append(time.perf_counter() - t0)

    flow.validate_id_token = timed  # type: ignore[attr-defined]
    try:
        yield durations
    finally:
        flow.validate_id_token = original  # type: ignore[attr-defined]


@benchmark("4", "whole scripted login: nbauth vs google-auth-oauthlib vs Authlib")
def bench_whole(ctx: Context) -> None:
    import gc

    import peers

    provider, md = ctx.provider, ctx.metadata
    validations: list[float] = []

    def nbauth_timed(b: peers.ScriptedBrowser) -> str:
        with id_token_timer() as durations:
            token = peers.login_nbauth(provider, b)
        validations.extend(durations)
        return token

    def nbauth_unchecked(b: peers.ScriptedBrowser) -> str:
        with id_token_unchecked():
            return peers.login_nbauth(provider, b)

    def nbauth_like_peers(b: peers.ScriptedBrowser) -> str:
        with id_token_unchecked():
            return login_nbauth_no_hop(provider, b)

    runners: dict[str, Callable[[peers.ScriptedBrowser], str]] = {
        "nbauth": nbauth_timed,
        "google-auth-oauthlib": lambda b: peers.login_google(provider, md, b),
        "authlib": lambda b: peers.login_authlib(provider, md, b),
        "nbauth-no-hop": lambda b: login_nbauth_no_hop(provider, b),
        "nbauth-no-idtoken": nbauth_unchecked,
        "nbauth-like-peers": nbauth_like_peers,
    }
    results: dict[str, list[float]] = {name: [] for name in runners}
    rounds = ctx.n(60, 2)
    warmup = ctx.n(2, 1)
    for r, name in interleaved(list(runners), rounds + warmup):
        browser = peers.ScriptedBrowser(complete_login)
        # As timeit does: no garbage collection inside a timed run (the heap left by the
        # earlier benchmarks would otherwise land a full collection on whichever login
        # happens to trigger it); collected before each run instead.
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            token = runners[name](browser)
            dt = time.perf_counter() - t0
        finally:
            gc.enable()
        if not token:
            raise RuntimeError(f"{name} returned no token")
        if r >= warmup:
            results[name].append(ms(dt))
        elif name == "nbauth":
            validations.clear()  # the warm-up login fetched the JWKS
    for letter, name, label in (
            ("a", "nbauth", "nbauth.login()"),
            ("b", "google-auth-oauthlib", "(peer) InstalledAppFlow.run_local_server"),
            ("c", "authlib", "(peer) Authlib OAuth2Session + http.server")):
        ctx.row("4" + letter, label, results[name], "ms")
    fastest = min(("google-auth-oauthlib", "authlib"),
                  key=lambda n: statistics.median(results[n]))

    def per_round(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(results[a], results[b], strict=True)]

    def of_medians(a: str, b: str) -> float:
        return statistics.median(results[a]) / statistics.median(results[b])

    for letter, peer in (("d", "google-auth-oauthlib"), ("e", "authlib")):
        ctx.row("4" + letter, f"ratio nbauth / {peer}, per round", per_round("nbauth", peer),
                "x", target="≤ 1.00" if peer == fastest else "",
                met=(statistics.median(per_round("nbauth", peer)) <= 1.0)
                if peer == fastest else None,
                note=f"ratio of the medians {of_medians('nbauth', peer):.2f}×"
                + (" (the faster peer in this run)" if peer == fastest else ""))
    for letter, name, label in (
            ("f", "nbauth-no-hop", "(attribution) nbauth without the /start/<token> hop"),
            ("g", "nbauth-no-idtoken", "(attribution) nbauth without ID-token validation"),
            ("h", "nbauth-like-peers", "(attribution) nbauth without both: the peers' work")):
        ctx.row("4" + letter, label, results[name], "ms",
                note=f"per round {statistics.median(per_round(name, 'nbauth')):.3f}× of 4a "
                     f"(ratio of the medians {of_medians(name, 'nbauth'):.3f}×)")
    like = per_round("nbauth-like-peers", fastest)
    ctx.row("4i", f"like-for-like ratio: 4h / {fastest}, per round", like, "x",
            note=f"ratio of the medians {of_medians('nbauth-like-peers', fastest):.2f}×;"
                 " what remains is the listener on its own threads (see RESULTS.md)")
    ctx.row("4j", "ID-token validation inside 4a's callbacks (JWKS cached; timing hook)",
            [ms(d) for d in validations], "ms",
            note="signature (RS256) against the cached JWKS, then the claim checks")
    ctx.raw["whole_ms"] = results


# -- 5. API-call overhead ----------------------------------------------------------------------

class _FixedServer:
    """A stdlib HTTP/1.1 keep-alive server in another process answering 200 {} (low noise)."""

    CODE = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own server
            [python(), "-c", self.CODE], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        return f"http://127.0.0.1:{port}/api"

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def one_login_credentials(provider: ProviderInfo) -> Any:
    from nbauth import start_login

    pending = start_login(provider.issuer, provider.client_id, audience=provider.audience,
                          port=0)
    complete_login(pending.start_url)
    return pending.wait(timeout=30)


@benchmark("5", "API-call overhead: auth0_session vs requests.Session with a fixed header")
def bench_session(ctx: Context) -> None:
    from nbauth.credentials import BearerAuth

    provider = ctx.provider
    credentials = one_login_credentials(provider)
    bearer = credentials.session()
    plain = requests.Session()
    plain.headers["Authorization"] = f"Bearer {credentials.token()}"
    calls = ctx.n(100, 10)
    rounds = ctx.n(15, 2)
    with _FixedServer() as local_url:
        for target_name, url in (("provider /api/private", provider.api_url),
                                 ("local stdlib server", local_url)):
            per_call: dict[str, list[float]] = {"plain": [], "bearer": []}
            for _ in range(3):  # open keep-alive connections, warm caches
                plain.get(url, timeout=10).raise_for_status()
                bearer.get(url, timeout=10).raise_for_status()
            for _, kind in interleaved(["plain", "bearer"], rounds):
                session = plain if kind == "plain" else bearer
                t0 = time.perf_counter()
                for _ in range(calls):
                    session.get(url, timeout=10).raise_for_status()
                per_call[kind].append(ms(time.perf_counter() - t0) / calls)
            overhead = [100 * (b - p) / p
                        for p, b in zip(per_call["plain"], per_call["bearer"], strict=True)]
            median_overhead = 100 * (statistics.median(per_call["bearer"])
                                     / statistics.median(per_call["plain"]) - 1)
            letter = "a" if target_name.startswith("provider") else "d"
            ctx.row(f"5{letter}", f"requests.Session + fixed header → {target_name}, per call",
                    per_call["plain"], "ms")
            ctx.row(f"5{chr(ord(letter) + 1)}", f"auth0_session (refresh check) → {target_name}",
                    per_call["bearer"], "ms")
            row = ctx.row(f"5{chr(ord(letter) + 2)}",
                          f"  overhead vs plain, per round → {target_name}",
                          overhead, "%", target="< 5 %", met=median_overhead < 5)
            row.note = f"ratio of medians {median_overhead:+.1f} %" if not ctx.quick else ""
    # The hook itself, without a network: what BearerAuth adds to each request.
    auth = BearerAuth(credentials)
    prepared = requests.Request("GET", provider.api_url).prepare()
    reps = ctx.n(20000, 2000)
    samples = []
    for _ in range(ctx.n(7, 2)):
        t0 = time.perf_counter()
        for _ in range(reps):
            auth(prepared)
        samples.append((time.perf_counter() - t0) / reps * 1e6)
    ctx.row("5g", "BearerAuth hook alone (token() + refresh check + header)", samples, "us")
    bearer.close()
    plain.close()


# -- 6. listener under a junk flood ------------------------------------------------------------

def flood_process(port: int, mode: str, count: int, seconds: float,
                  concurrency: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own flood script
        [python(), str(HERE / "flood.py"), str(port), mode, str(count), str(seconds),
         str(concurrency)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "started":
        raise RuntimeError("the flood process did not start")
    return proc


@benchmark("6", "listener under a junk-request flood from another process")
def bench_flood(ctx: Context) -> None:
    from nbauth import start_login

    provider = ctx.provider
    modes = ["none", "junk", "idle", "mixed"] if not ctx.quick else ["none", "junk"]
    latencies: dict[str, list[float]] = {m: [] for m in modes}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    seconds = 3.0 if not ctx.quick else 1.5
    count = 200_000
    for _, mode in interleaved(modes, ctx.n(6, 1)):
        pending = start_login(provider.issuer, provider.client_id, audience=provider.audience,
                              port=0, timeout=60)
        callback = complete_login(pending.start_url, follow_callback=False)
        proc = None
        try:
            if mode != "none":
                proc = flood_process(pending.port, mode, count, seconds, 64)
                time.sleep(0.5 if not ctx.quick else 0.3)  # the flood is in full swing
            t0 = time.perf_counter()
            status, _ = deliver_callback(callback, timeout=30)
            pending.wait(timeout=30)
            dt = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"the real callback failed under {mode} (HTTP {status})")
            latencies[mode].append(ms(dt))
        finally:
            pending.cancel()
            if proc is not None:
                out, _ = proc.communicate(timeout=seconds + 20)
                summary = json.loads(out.strip().splitlines()[-1])
                rates[mode].append(summary["per_second"])
    labels = {"none": "no flood (baseline)",
              "junk": "64 clients sending junk requests back to back",
              "idle": "64 idle connections (slowloris), reopened when dropped",
              "mixed": "32 junk + 32 idle"}
    for i, mode in enumerate(modes):
        lat = latencies[mode]
        row = ctx.row(f"6{'abcd'[i]}", f"callback → login done; {labels[mode]}", lat, "ms",
                      target="< 1000 ms" if mode != "none" else "",
                      met=(max(lat) < 1000) if mode != "none" else None)
        if rates[mode]:
            row.note = (f"flood ran at {statistics.median(rates[mode]):.0f} connections/s "
                        "answered "
                        "(median, measured just before the callback); target judged on the max")
    ctx.raw["flood_ms"] = latencies
    ctx.raw["flood_rates"] = rates


# -- 7. leaks ----------------------------------------------------------------------------------

def growth_per_login(result: dict[str, Any]) -> float:
    """KiB kept per login over the second half of the run (first-use caches and dict tables
    fill up early; a leak keeps growing)."""
    series = result["series"]
    (x0, y0), (x1, y1) = series[len(series) // 2], series[-1]
    return float((y1 - y0) / (x1 - x0)) if x1 > x0 else float(y1 / max(x1, 1))


def _leak_rows(ctx: Context, where: str, letter0: int, result: dict[str, Any], *,
               judge_memory: bool = True) -> None:
    base, after = result["baseline"], result["after"]
    n = result["logins"]
    letters = "abcdefghijklmnop"
    for i, key, label in ((0, "threads", "threads"), (1, "fds", "open file descriptors"),
                          (2, "listening", "listening sockets")):
        delta = after[key] - base[key]
        ctx.row(f"7{letters[letter0 + i]}",
                f"{where}: {label}, {n} logins later − baseline ({base[key]:g})",
                [delta], "count", target="0", met=delta <= 0)
    per_login = growth_per_login(result)
    ctx.row(f"7{letters[letter0 + 3]}", f"{where}: memory kept per further login (tracemalloc)",
            [per_login], "KiB", target="≈ 0" if judge_memory else "",
            met=per_login < 1.0 if judge_memory else None,
            note=f"{result['traced_growth_kib']:.0f} KiB in all; largest growth: " + "; ".join(
                f"{t['where'].replace(str(ROOT) + '/', '')} {t['kib']:+.1f} KiB"
                for t in result["top"][:3]))
    ctx.row(f"7{letters[letter0 + 4]}", f"{where}: RSS after − baseline",
            [after["rss_mb"] - base["rss_mb"]], "MB")


def provider_dict(provider: ProviderInfo) -> dict[str, Any]:
    return {"issuer": provider.issuer, "client_id": provider.client_id,
            "audience": provider.audience}


@benchmark("7", "leaks after many logins (in-process shell and a real kernel)")
def bench_leaks(ctx: Context) -> None:
    import leakcheck

    count = ctx.n(200, 6)
    in_process = leakcheck.run_logins(shell(), provider_dict(ctx.provider), count,
                                      settle=ctx.n(15, 2), warmup=ctx.n(5, 2))
    _leak_rows(ctx, "IPython shell", 0, in_process)
    rerun = kernel_rerun_logins(ctx, count)
    _leak_rows(ctx, "ipykernel, cell re-run", 5, rerun, judge_memory=False)  # judged on 7m
    # Every execute request leaves a little behind whatever the cell does (IPython's input
    # history, jupyter_client's digest history): the same cells without the login.
    control = kernel_rerun_logins(ctx, count, control=True)
    net = growth_per_login(rerun) - growth_per_login(control)
    ctx.row("7l", "  (control) the same re-runs without logging in: memory per run",
            [growth_per_login(control)], "KiB", note="what the execute requests themselves keep")
    ctx.row("7m", "  memory kept per re-run login, net of the control (7i − 7l)", [net], "KiB",
            target="≈ 0", met=net < 1.0)
    one_cell = run_in_fresh_kernel(
        "%load_ext nbauth\n"
        "import json, leakcheck\n"
        f"_r = leakcheck.run_logins(get_ipython(), {provider_dict(ctx.provider)!r}, {count}, "
        f"settle={ctx.n(15, 2)}, warmup={ctx.n(5, 2)})\n"
        "print('BENCH-RESULT ' + json.dumps(_r))\n")
    per_login = growth_per_login(one_cell)
    ctx.row("7k", f"ipykernel, {count} logins in one cell run: memory per login",
            [per_login], "KiB",
            note=f"{one_cell['traced_growth_kib']:.0f} KiB in all: each login's widget, kept "
            "registered because nothing says its output was cleared (one execution, no cell id, "
            "as nbclient runs a notebook); largest: "
            + "; ".join(f"{t['where'].replace(str(ROOT) + '/', '')} {t['kib']:+.1f} KiB"
                        for t in one_cell["top"][:3]))
    ctx.raw["leaks"] = {"shell": in_process, "kernel, one cell re-run": rerun,
                        "kernel, one cell run": one_cell}


def kernel_rerun_logins(ctx: Context, count: int, *, control: bool = False) -> dict[str, Any]:
    """`count` re-runs of one `%auth0_login` cell in a real kernel, each its own execute
    request carrying the cell's id, as a person re-running the cell in JupyterLab sends it
    (with `control`, the same cells log in only during the warm-up)."""
    kernel = FreshKernel()
    try:
        kernel.run("%load_ext nbauth\nimport json, leakcheck\n"
                   f"_run = leakcheck.LoginRun(get_ipython(), {provider_dict(ctx.provider)!r}, "
                   f"{count}, settle={ctx.n(15, 2)}, control={control})", timeout=60)
        for _ in range(ctx.n(5, 2)):
            kernel.run("_run.login()", cell_id="nbauth-login-cell", timeout=60)
        kernel.run("_run.begin()", timeout=60)
        for _ in range(count):
            kernel.run("_run.counted_login()", cell_id="nbauth-login-cell", timeout=60)
        return kernel.result("print('BENCH-RESULT ' + json.dumps(_run.finish()))", timeout=120)
    finally:
        kernel.close()


# -- main --------------------------------------------------------------------------------------

def machine_notes() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{platform.platform()}; Python {platform.python_version()}; {os.cpu_count()} CPUs "
            f"({cpu}); load average {load_average()} at start")


def load_average() -> str:
    load = os.getloadavg()
    return f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


# -- 8. JupyterHub ------------------------------------------------------------------------------

@benchmark("8", "JupyterHub: users logging in at once through the one hub-wide callback")
def bench_hub(ctx: Context) -> None:
    import hub_logins

    result = hub_logins.measure(ctx.n(20, 3))
    users = result["users"]

    def spread(values: list[float]) -> str:
        return (f"p50 {hub_logins.percentile(values, 50):.1f} ms, p90 "
                f"{hub_logins.percentile(values, 90):.1f} ms, p99 "
                f"{hub_logins.percentile(values, 99):.1f} ms")

    ctx.row("8a", f"{users} hub users at once: logins completed", [100 * result["ok"] / users],
            "pct", target="100 %", met=result["ok"] == users == result["with_token"],
            note=f"{result['ok']}/{users} pages said Logged in; {result['with_token']}/{users} "
                 f"kernels held their token; servers spawned in {result['spawn_seconds']:.0f} s"
                 + "".join(f"; a page was {failure}" for failure in result["failures"]))
    ctx.row("8b", "hub callback → nbauth's page, end to end (incl. the code exchange)",
            result["latency_ms"], "ms",
            note=f"{spread(result['latency_ms'])}; all {users} callbacks sent at the same moment")
    ctx.row("8c", "  of which the provider's token POST (timed in each user's kernel)",
            result["token_post_ms"], "ms", note=spread(result["token_post_ms"]))
    ctx.row("8d", "  callback relay (8b − 8c, per login, as 3c)", result["relay_ms"], "ms",
            note=spread(result["relay_ms"]) + " (with p99 = the slowest of the logins)")
    ctx.row("8e", "  of 8d, outside the kernel (hub redirect, proxy, server relay, page)",
            result["relay_outside_kernel_ms"], "ms",
            note=spread(result["relay_outside_kernel_ms"]) + "; 8b minus the kernel listener's "
            "whole handling of the callback (exchange, ID-token check, credentials)")
    ctx.raw["hub"] = {k: v for k, v in result.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few iterations of everything (proves the suite works)")
    parser.add_argument("--only", default="", help="comma list of benchmark numbers (1-8)")
    parser.add_argument("--json", metavar="PATH", help="write rows and raw samples as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write the flood/leak plot (PNG)")
    args = parser.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    started = time.perf_counter()
    # Read once: the JSON and the printed header carry the same line (the load at the start).
    machine = machine_notes()
    print(f"nbauth benchmarks ({'quick' if args.quick else 'full'}) — {machine}", flush=True)
    with running_provider() as provider:
        ctx = Context(provider, args.quick)
        for number, title, fn in BENCHMARKS:
            if only and number not in only:
                continue
            print(f"\n[{number}] {title}", flush=True)
            t0 = time.perf_counter()
            fn(ctx)
            print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    print_table(ctx.rows)
    elapsed = time.perf_counter() - started
    load_at_end = load_average()
    print(f"\n{len(ctx.rows)} rows in {elapsed:.0f} s (load average {load_at_end} at the end). "
          "Medians over repeated runs in one process and one provider; compare rows and ratios, "
          "not absolute times across machines.")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine, "load_average_at_end": load_at_end,
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "quick": args.quick, "seconds": elapsed,
            "rows": [row.__dict__ for row in ctx.rows], "raw": ctx.raw}, indent=1, default=str))
    if args.plot:
        import plot

        plot.write(ctx.raw, Path(args.plot))
        print(f"plot written to {args.plot}")
    failed = [r for r in ctx.rows if r.met is False]
    if failed:
        print("targets not met: " + ", ".join(r.number for r in failed))
    return 0


if __name__ == "__main__":
    # Leftover listener threads of a failed benchmark must not keep the process alive.
    code = main()
    sys.stdout.flush()
    os._exit(code) if threading.active_count() > 1 else sys.exit(code)
