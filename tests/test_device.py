"""The device authorization grant (RFC 8628; S-60 … S-63).

Unit tests drive `DeviceLogin.wait()` against the scripted stand-in with a fake clock and a fake
sleeper that records every wait (nothing really sleeps); the provider tests log in for real on
the bundled provider's /activate pages with the scripted person.
"""

from __future__ import annotations

import copy
import logging
import pickle
import threading
import time
import traceback
from datetime import datetime

import pytest
import requests
from IPython.utils.capture import capture_output
from scripted_provider import ScriptedProvider

from nbauth.device import (
    DEVICE_CODE_GRANT_TYPE,
    MAX_BACKOFF,
    DeviceLogin,
    PollSchedule,
    parse_device_authorization,
    safe_link,
    start_device_login,
)
from nbauth.errors import (
    AccessDeniedError,
    DeviceFlowUnsupportedError,
    DeviceLoginExpiredError,
    IdTokenError,
    InvalidGrantError,
    LoginCancelledError,
    LoginTimeoutError,
    OAuthError,
    ProviderError,
)
from nbauth.http import ProviderClient

DEVICE_CODE = "dc-Sup3rSecretDeviceCode-0123456789abcdef"

S = ScriptedProvider
PENDING = S.oauth_error("authorization_pending")
SLOW_DOWN = S.oauth_error("slow_down")


class FakeTime:
    """A clock that only moves when the code under test sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = time.time()  # near real time: the scripted ID tokens carry real iat/exp
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, seconds
        assert len(self.waits) < 1000, "the poll loop does not end"
        self.waits.append(seconds)
        self.now += seconds


def scripted(*token_answers, device=None, **kwargs) -> ScriptedProvider:
    device = device or S.device_response(device_code=DEVICE_CODE)
    kwargs.setdefault("kid", "k-" + str(time.monotonic_ns()))  # no stale JWKS cache entry
    return ScriptedProvider(device_flow=True, device_answers=[device],
                            token_answers=list(token_answers), **kwargs)


def start(p: ScriptedProvider, fake: FakeTime | None = None, **kwargs) -> DeviceLogin:
    if fake is not None:
        kwargs.update(clock=fake.clock, sleep=fake.sleep)
    return start_device_login(p.issuer, p.client_id, client=ProviderClient(), **kwargs)


def rounded(waits: list[float]) -> list[float]:
    return [round(w, 6) for w in waits]


# -- S-60: interval handling ------------------------------------------------------------------
def test_slow_down_adds_five_seconds_for_this_and_all_later_polls():
    fake = FakeTime()
    with scripted(PENDING, SLOW_DOWN, SLOW_DOWN, PENDING, S.good_tokens()) as p:
        login = start(p, fake)
        creds = login.wait()
        polls = p.calls("/oauth/token")
    assert rounded(fake.waits) == [5, 5, 10, 15, 15]
    assert len(polls) == 5 and login.interval == 15
    for poll in polls:
        assert poll.form == {"grant_type": DEVICE_CODE_GRANT_TYPE, "device_code": DEVICE_CODE,
                             "client_id": p.client_id}
    assert creds.identity.email == "scripted@example.com"
    assert creds.can_refresh and creds.token().startswith("at-")


@pytest.mark.parametrize("interval,first_wait", [(None, 5), (2, 2), ("3", 3), (0, 5), (0.2, 1)])
def test_interval_defaults_to_five_and_is_never_below_one_second(interval, first_wait):
    fake = FakeTime()
    device = S.device_response(device_code=DEVICE_CODE, interval=interval)
    with scripted(PENDING, S.good_tokens(), device=device) as p:
        start(p, fake).wait()
    assert rounded(fake.waits) == [first_wait, first_wait]


def test_a_login_started_long_ago_polls_at_once():
    fake = FakeTime()
    with scripted(S.good_tokens()) as p:
        login = start(p, fake)
        fake.now += 30  # the user read the code and approved before wait() was called
        login.wait()
    assert fake.waits == []


# -- S-61: terminal errors stop polling -------------------------------------------------------
def test_expired_token_stops_polling_and_starts_no_new_login():
    fake = FakeTime()
    with scripted(PENDING, S.oauth_error("expired_token"), S.good_tokens()) as p:
        login = start(p, fake)
        with pytest.raises(DeviceLoginExpiredError) as info:
            login.wait()
        assert len(p.calls("/oauth/token")) == 2
        assert len(p.calls("/oauth/device/code")) == 1
        with pytest.raises(DeviceLoginExpiredError):  # asking again does not poll again
            login.wait()
        assert len(p.calls("/oauth/token")) == 2
    assert info.value.reported_by_provider
    assert isinstance(info.value, LoginTimeoutError)
    assert "Start a new device login" in str(info.value)
    assert login.done() and login.result() is None


def test_access_denied_stops_at_once():
    fake = FakeTime()
    answer = S.oauth_error("access_denied", error_description="End-User aborted interaction")
    with scripted(answer, S.good_tokens()) as p:
        with pytest.raises(AccessDeniedError) as info:
            start(p, fake).wait()
        assert len(p.calls("/oauth/token")) == 1
    assert "denied" in str(info.value) and "Start a new device login" in str(info.value)


@pytest.mark.parametrize("answer,error", [
    (S.oauth_error("invalid_grant"), InvalidGrantError),
    (S.oauth_error("server_error", 500), OAuthError),
    (S.oauth_error("unsupported_grant_type"), OAuthError),
    (S.raw(400, b"<html>bad request</html>"), ProviderError),
    (S.raw(200, b'{"token_type": "Bearer"}', "application/json"), ProviderError),
])
def test_any_other_error_stops_at_once(answer, error):
    fake = FakeTime()
    with scripted(answer, S.good_tokens()) as p:
        with pytest.raises(error):
            start(p, fake).wait()
        assert len(p.calls("/oauth/token")) == 1


def test_expiry_ends_the_login_even_if_the_provider_never_says_so():
    fake = FakeTime()
    device = S.device_response(device_code=DEVICE_CODE, expires_in=12, interval=5)
    with scripted(PENDING, device=device) as p:
        login = start(p, fake)
        with pytest.raises(DeviceLoginExpiredError) as info:
            login.wait()
        assert len(p.calls("/oauth/token")) == 2  # at 5 s and 10 s; none at or after 12 s
    assert rounded(fake.waits) == [5, 5, 2]
    assert not info.value.reported_by_provider
    assert "within 12 s" in str(info.value)


# -- S-62: connection problems lower the poll rate --------------------------------------------
def test_connection_error_doubles_the_wait_then_the_interval_returns():
    fake = FakeTime()
    with scripted(S.disconnect(), S.disconnect(), PENDING, S.good_tokens()) as p:
        start(p, fake).wait()
        assert len(p.calls("/oauth/token")) == 4
    assert rounded(fake.waits) == [5, 10, 20, 5]


def test_backoff_is_capped_and_polling_goes_on_until_expiry():
    fake = FakeTime()
    device = S.device_response(device_code=DEVICE_CODE, expires_in=300)
    with scripted(S.disconnect(), device=device) as p:
        with pytest.raises(DeviceLoginExpiredError):
            start(p, fake).wait()
    assert rounded(fake.waits) == [5, 10, 20, 40, 60, 60, 60, 45]
    assert MAX_BACKOFF == 60


def test_a_timeout_or_an_overloaded_gateway_also_backs_off():
    fake = FakeTime()
    slow = S.raw(200, b"{}", "application/json", delay=1.0)
    gateway = S.raw(503, b"<html>Service Unavailable</html>")
    with scripted(slow, gateway, PENDING, S.good_tokens()) as p:
        login = start_device_login(p.issuer, p.client_id, clock=fake.clock, sleep=fake.sleep,
                                   client=ProviderClient(timeout=(2.0, 0.3)))
        login.wait()
    assert rounded(fake.waits) == [5, 10, 20, 5]


def test_backoff_never_polls_faster_than_the_interval():
    schedule = PollSchedule(50.0, start=0.0)
    schedule.slow_down(0.0)  # 55 s
    schedule.unreachable(0.0)
    assert schedule.backoff == 60
    schedule.slow_down(0.0)  # 60 s
    schedule.slow_down(0.0)  # 65 s, above the cap
    schedule.unreachable(0.0)
    assert schedule.backoff == 65 and schedule.next_poll_at == 65


# -- waiting, cancelling ----------------------------------------------------------------------
def test_wait_with_a_timeout_keeps_the_login_and_its_schedule():
    fake = FakeTime()
    with scripted(S.good_tokens()) as p:
        login = start(p, fake)
        with pytest.raises(TimeoutError):
            login.wait(timeout=3)
        assert login.exception() is None and not login.done()
        assert p.calls("/oauth/token") == []
        creds = login.wait()
    assert rounded(fake.waits) == [3, 2]
    assert login.result() is creds


def test_cancel_from_another_thread_stops_the_real_sleeper_promptly():
    with scripted(PENDING) as p:
        login = start(p)  # the real sleeper: interval 5 s
        threading.Timer(0.2, login.cancel).start()
        began = time.monotonic()
        with pytest.raises(LoginCancelledError):
            login.wait()
        assert time.monotonic() - began < 2
        assert p.calls("/oauth/token") == []
    login.cancel()  # again: harmless
    with pytest.raises(LoginCancelledError):
        login.wait()


def test_cancel_after_success_changes_nothing():
    fake = FakeTime()
    with scripted(S.good_tokens()) as p:
        login = start(p, fake)
        creds = login.wait()
    login.cancel()
    assert login.wait() is creds



def test_a_kernel_interrupt_cancels_the_login_and_leaves_no_frames_behind():
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with scripted(PENDING) as p:
        login = start_device_login(p.issuer, p.client_id, client=ProviderClient(),
                                   sleep=interrupted)
        with pytest.raises(KeyboardInterrupt) as info:
            login.wait()
    assert info.value.__context__ is None and info.value.__cause__ is None
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[1:] == ["wrapper", "wait"]  # nothing below the public method
    assert isinstance(login.exception(), LoginCancelledError)

# -- the start request ------------------------------------------------------------------------
def test_start_sends_client_id_scope_and_audience_and_exposes_what_to_show():
    fake = FakeTime()
    with scripted() as p:
        login = start(p, fake, audience="https://api.example.test/", scope="openid email")
        (call,) = p.calls("/oauth/device/code")
    assert call.form == {"client_id": p.client_id, "scope": "openid email",
                         "audience": "https://api.example.test/"}
    assert login.user_code == "ABCD-EFGH"
    assert login.verification_uri == p.issuer + "activate"
    assert login.verification_uri_complete == p.issuer + "activate?user_code=ABCD-EFGH"
    assert login.expires_at == pytest.approx(fake.now + 600)
    assert login.interval == 5
    assert login.link == login.verification_uri_complete
    assert "ABCD-EFGH" in login.instructions


def test_start_without_audience_sends_none():
    with scripted() as p:
        start(p, FakeTime())
        (call,) = p.calls("/oauth/device/code")
    assert "audience" not in call.form


def test_a_provider_without_a_device_endpoint_is_refused_clearly():
    with ScriptedProvider() as p:
        with pytest.raises(DeviceFlowUnsupportedError) as info:
            start(p, FakeTime())
        assert not [r for r in p.requests if r.method == "POST"]
    assert "device_authorization_endpoint" in str(info.value)
    assert "%auth0_login" in str(info.value)


def test_a_refused_start_raises_the_providers_error():
    with scripted(device=S.oauth_error("unauthorized_client")) as p:
        with pytest.raises(OAuthError, match="Device Code grant"):
            start(p, FakeTime())


@pytest.mark.parametrize("override,needle", [
    ({"device_code": None}, "device_code"),
    ({"device_code": 12}, "device_code"),
    ({"user_code": None}, "user_code"),
    ({"user_code": "AB\x1b[31mCD"}, "user_code"),
    ({"user_code": "X" * 100}, "user_code"),
    ({"verification_uri": None}, "verification_uri"),
    ({"verification_uri": "javascript:alert(1)"}, "verification_uri"),
    ({"verification_uri": "/activate"}, "verification_uri"),
    ({"expires_in": None}, "expires_in"),
    ({"expires_in": 0}, "expires_in"),
    ({"expires_in": "soon"}, "expires_in"),
])
def test_an_unusable_device_authorization_response_is_refused(override, needle):
    with scripted(device=S.device_response(**override)) as p:
        with pytest.raises(ProviderError, match=needle):
            start(p, FakeTime())


@pytest.mark.parametrize("complete", [
    "javascript:alert(1)", "https://evil.test/activate?user_code=ABCD-EFGH", "not a url",
])
def test_an_unusable_verification_uri_complete_is_dropped(complete):
    auth = parse_device_authorization(
        {"device_code": "d", "user_code": "ABCD", "verification_uri": "https://id.test/activate",
         "verification_uri_complete": complete, "expires_in": 600}, now=0.0)
    assert auth.verification_uri_complete is None
    assert auth.interval == 5 and auth.expires_at == 600


# -- S-63: the device code is a secret; links only when safe ----------------------------------
@pytest.mark.parametrize("url,expected", [
    ("https://example.eu.auth0.com/activate", True),
    ("https://example.eu.auth0.com/activate?user_code=ABCD-EFGH", True),
    ("http://127.0.0.1:4000/activate", True),
    ("http://[::1]:4000/activate", True),
    ("http://localhost:4000/activate", True),
    ("http://example.com/activate", False),
    ("javascript:alert(document.cookie)", False),
    ("JavaScript:alert(1)", False),
    ("data:text/html,<script>alert(1)</script>", False),
    ("https://accounts.example.com@evil.test/activate", False),
    ("https:///activate", False),
    ("https://example.com/\nactivate", False),
    ("ftp://example.com/activate", False),
    ("", False),
])
def test_safe_link_only_allows_https_and_loopback_http(url, expected):
    assert safe_link(url) == (url if expected else None)


def test_a_plain_http_verification_page_is_shown_as_text_not_as_a_link():
    with scripted(device=S.device_response(
            verification_uri="http://id.example.com/activate",
            verification_uri_complete="http://id.example.com/activate?user_code=ABCD-EFGH")) as p:
        login = start(p, FakeTime())
    assert login.link is None
    assert "<a " not in login._repr_html_()
    assert "http://id.example.com/activate" in login._repr_html_()


def test_a_hostile_user_code_is_escaped_in_html():
    with scripted(device=S.device_response(user_code="<img src=x onerror=alert(1)>")) as p:
        login = start(p, FakeTime())
    assert "<img" not in login._repr_html_()


def all_text(login: DeviceLogin) -> str:
    return " ".join([repr(login), str(login), login._repr_html_(), login.instructions])


ENDINGS = [
    ("success", [S.good_tokens()], None),
    ("expired", [PENDING, S.oauth_error("expired_token")], DeviceLoginExpiredError),
    ("denied", [S.oauth_error("access_denied")], AccessDeniedError),
    ("invalid_grant", [S.oauth_error("invalid_grant")], InvalidGrantError),
    ("html", [S.raw(500, b"<html>oops</html>")], ProviderError),
    ("bad id token", [S.good_tokens(aud="someone-else")], IdTokenError),
]


@pytest.mark.parametrize("name,answers,error", ENDINGS, ids=[e[0] for e in ENDINGS])
def test_the_device_code_never_appears_in_reprs_errors_or_logs(name, answers, error, caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeTime()
    with scripted(*answers) as p:
        login = start(p, fake)
        assert p.calls("/oauth/device/code")
        assert DEVICE_CODE not in all_text(login)
        if error is None:
            login.wait()
        else:
            with pytest.raises(error) as info:
                login.wait()
            exc = info.value
            assert DEVICE_CODE not in str(exc) + repr(exc) + repr(vars(exc))
            assert exc.__cause__ is None and exc.__context__ is None
            shown = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            assert DEVICE_CODE not in shown
            # --showlocals, %xmode Verbose: no frame below the public entry point survives
            tb = exc.__traceback__.tb_next  # (this test's own frame holds the stand-in)
            while tb is not None:
                assert DEVICE_CODE not in repr(tb.tb_frame.f_locals)
                tb = tb.tb_next
    assert DEVICE_CODE not in all_text(login)
    assert DEVICE_CODE not in caplog.text
    assert any(r.name.startswith("nbauth") for r in caplog.records)


def test_an_error_echoing_the_device_code_is_withheld():
    answer = S.oauth_error("invalid_request", error_description=f"bad device_code {DEVICE_CODE}")
    with scripted(answer) as p:
        with pytest.raises(ProviderError) as info:
            start(p, FakeTime()).wait()
    assert DEVICE_CODE not in str(info.value) + repr(vars(info.value))
    assert "withheld" in str(info.value)


def test_a_device_login_refuses_pickling_and_copying():
    with scripted() as p:
        login = start(p, FakeTime())
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="not picklable"):
            pickle.dumps(login, protocol=protocol)
    with pytest.raises(TypeError):
        copy.deepcopy(login)
    auth = parse_device_authorization(
        {"device_code": DEVICE_CODE, "user_code": "ABCD", "expires_in": 5,
         "verification_uri": "https://id.test/activate"}, now=0.0)
    with pytest.raises(TypeError):
        pickle.dumps(auth)
    assert DEVICE_CODE not in repr(auth)


# -- the ID token is checked as in the code flow (no nonce) -----------------------------------
@pytest.mark.parametrize("overrides", [
    {"aud": "another-client"},
    {"iss": "https://elsewhere.test/"},
    {"exp": time.time() - 3600},
    {"iat": time.time() + 3600},
])
def test_the_id_token_is_validated_before_credentials_exist(overrides):
    with scripted(S.good_tokens(**overrides)) as p:
        login = start(p, FakeTime())
        with pytest.raises(IdTokenError):
            login.wait()
        assert len(p.calls("/oauth/token")) == 1  # the code is spent: no retry
    assert login.result() is None


def test_an_id_token_signed_by_another_key_is_refused():
    import json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    other_key = rsa.generate_private_key(65537, 2048)

    def forged(form, p):
        now = time.time()
        claims = {"iss": p.issuer, "aud": p.client_id, "sub": "scripted|1", "iat": now,
                  "exp": now + 3600}
        body = {"access_token": "at-forged", "token_type": "Bearer", "expires_in": 3600,
                "id_token": jwt.encode(claims, other_key, algorithm="RS256",
                                       headers={"kid": p.kid})}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    with scripted(forged) as p:
        with pytest.raises(IdTokenError, match="signature"):
            start(p, FakeTime()).wait()


# -- against the real provider ----------------------------------------------------------------
@pytest.fixture(scope="module")
def device_provider():
    from devprovider import running_provider

    with running_provider(device_interval=1) as info:
        yield info


def approve_in_thread(url: str, user_code: str | None, **options) -> tuple[threading.Thread,
                                                                            list]:
    from scripted_user import complete_device_login

    outcome: list = []

    def run() -> None:
        try:
            outcome.append(complete_device_login(url, user_code, **options))
        except BaseException as exc:  # asserted by the test
            outcome.append(exc)

    thread = threading.Thread(target=run, name="scripted-device-user", daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.provider
@pytest.mark.parametrize("one_click", [False, True], ids=["typed code", "complete uri"])
def test_real_device_login_calls_the_api(device_provider, one_click, caplog):
    caplog.set_level(logging.DEBUG)
    info = device_provider
    login = start_device_login(info.issuer, info.client_id, audience=info.audience)
    assert login.interval == 1 and safe_link(login.verification_uri)
    url = login.verification_uri_complete if one_click else login.verification_uri
    assert url is not None
    thread, outcome = approve_in_thread(url, None if one_click else login.user_code)
    creds = login.wait(timeout=20)
    thread.join(20)
    assert "Device activated" in outcome[0]
    assert creds.identity.subject == "auth0|demo"
    assert creds.identity.email == "demo@example.com"
    assert creds.can_refresh and "openid" in creds.scopes
    answer = requests.get(info.api_url, headers={"Authorization": f"Bearer {creds.token()}"},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"] == "auth0|demo"
    assert login._device_code not in caplog.text + repr(login) + repr(creds)
    # S-70: logging out of a device login revokes its refresh token at the provider too
    refresh_token = creds._refresh_token
    assert "revoked at the provider" in creds.logout()
    reuse = requests.post(info.issuer + "oauth/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": info.client_id})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"


@pytest.mark.provider
def test_real_device_login_denied(device_provider):
    info = device_provider
    login = start_device_login(info.issuer, info.client_id, audience=info.audience)
    thread, outcome = approve_in_thread(login.verification_uri, login.user_code,
                                        decision="deny")
    with pytest.raises(AccessDeniedError) as denied:
        login.wait(timeout=20)
    thread.join(20)
    assert "cancelled" in outcome[0]
    assert login._device_code not in str(denied.value)


@pytest.mark.provider
def test_real_device_login_expires_when_nobody_approves():
    from devprovider import running_provider

    with running_provider(device_interval=1, device_code_ttl=3) as info:
        login = start_device_login(info.issuer, info.client_id)
        began = time.monotonic()
        with pytest.raises(DeviceLoginExpiredError) as expired:
            login.wait(timeout=20)
        assert time.monotonic() - began < 6
    assert "Start a new device login" in str(expired.value)


@pytest.mark.provider
def test_real_device_login_cancelled_while_waiting(device_provider):
    info = device_provider
    login = start_device_login(info.issuer, info.client_id)
    threading.Timer(1.5, login.cancel).start()
    with pytest.raises(LoginCancelledError):
        login.wait(timeout=20)
    assert login.result() is None and login.done()


@pytest.mark.provider
def test_real_provider_refuses_a_client_without_the_device_grant(device_provider):
    info = device_provider
    with pytest.raises(OAuthError, match="not allowed"):
        start_device_login(info.issuer, info.exact_client_id)


@pytest.mark.provider
def test_real_provider_slow_down_adds_five_seconds_and_the_login_still_completes():
    """The provider enforces 5 s between polls while advertising 1 s: the second poll gets
    slow_down, the next one comes 1 + 5 s later (RFC 8628 §3.5), and the login completes."""
    from devprovider import running_provider

    with running_provider(device_interval=1, device_min_poll=5, device_code_ttl=60,
                          log_path=None) as info:
        login = start_device_login(info.issuer, info.client_id, audience=info.audience)
        result: list = []
        waiter = threading.Thread(target=lambda: result.append(login.wait(timeout=30)),
                                  daemon=True)
        waiter.start()
        deadline = time.monotonic() + 15
        polls: list[str] = []
        while time.monotonic() < deadline and "device poll: slow_down" not in polls:
            time.sleep(0.2)
            with open(info.log_path, encoding="utf-8") as log:
                polls = [line.split("Z ", 1)[-1] for line in log if "device poll:" in line]
        assert polls[:2] == ["device poll: authorization_pending\n", "device poll: slow_down\n"]
        thread, outcome = approve_in_thread(login.verification_uri, login.user_code)
        waiter.join(30)
        thread.join(20)
        assert login.interval == 6  # 1 s advertised + 5 s for the slow_down
        assert result and result[0].identity.subject == "auth0|demo"
        with open(info.log_path, encoding="utf-8") as log:
            lines = log.read().splitlines()
    assert sum("device poll: slow_down" in line for line in lines) == 1  # never too fast again
    # In the provider's own clock: the poll after slow_down came the new interval (6 s) later.
    stamps = [datetime.fromisoformat(line.split()[1].replace("Z", "+00:00")) for line in lines
              if "POST /oauth/token" in line or "device poll:" in line]
    polls = [line for line in lines if "POST /oauth/token" in line or "device poll:" in line]
    slowed = next(i for i, line in enumerate(polls) if "slow_down" in line)
    own_request = next(i for i in range(slowed + 1, len(polls))  # logged after its answer
                       if "POST /oauth/token" in polls[i])
    following = next(i for i in range(own_request + 1, len(polls))
                     if "POST /oauth/token" in polls[i])
    assert (stamps[following] - stamps[slowed]).total_seconds() >= 5.8


@pytest.mark.provider
def test_real_device_login_with_an_unknown_audience_says_to_check_the_audience(device_provider):
    info = device_provider
    with pytest.raises(OAuthError) as caught:
        start_device_login(info.issuer, info.client_id, audience=info.audience.rstrip("/"))
    assert "Check --audience" in str(caught.value) and "approve" not in str(caught.value)


@pytest.mark.provider
def test_real_device_login_sends_a_normalised_scope_with_openid(device_provider):
    info = device_provider
    login = start_device_login(info.issuer, info.client_id, audience=info.audience,
                               scope="  profile   email offline_access ")
    try:
        assert login.scope == "openid profile email offline_access"
    finally:
        login.cancel()


def test_auth0s_service_not_found_at_the_device_endpoint_keeps_the_audience_hint():
    from nbauth.device import _device_oauth_error
    from nbauth.errors import oauth_error

    error = _device_oauth_error(oauth_error(
        "access_denied", "Service not found: https://api.example.com", status=403))
    assert "Check --audience" in str(error) and "approve" not in str(error)
    denied = _device_oauth_error(oauth_error("access_denied", "User cancelled", status=403))
    assert "Start a new device login" in str(denied)


def test_verification_url_is_read_where_a_provider_names_it_so():
    # Google's and Azure AD v1's device answers say verification_url (openid-client #478)
    auth = parse_device_authorization(
        {"device_code": "d", "user_code": "ABCD", "verification_url": "https://id.test/activate",
         "expires_in": 600}, now=0.0)
    assert auth.verification_uri == "https://id.test/activate"


def test_a_timeout_ends_the_login_before_the_code_expires():
    fake = FakeTime()
    with scripted(*[PENDING] * 20, device=S.device_response(device_code=DEVICE_CODE,
                                                            expires_in=600)) as p:
        login = start(p, fake, timeout=12)
        assert login.expires_in() == 12  # what the widget counts down
        with pytest.raises(LoginTimeoutError, match="within 12 s") as info:
            login.wait()
        polls = len(p.calls("/oauth/token"))
    assert not isinstance(info.value, DeviceLoginExpiredError)  # the code itself was still good
    assert sum(fake.waits) == pytest.approx(12) and polls == 2  # at 5 s and 10 s, then the end


def test_the_magics_timeout_applies_to_the_device_login(ip, magics, provider):
    with capture_output():
        result = ip.run_cell(f"%auth0_login --device --timeout 2 --domain {provider.issuer} "
                             f"--client-id {provider.client_id}")
    assert type(result.error_in_exec).__name__ == "LoginTimeoutError"
    assert "within 2 s" in magics.logins["access_token"].widget.status_text
