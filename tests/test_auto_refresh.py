"""Background refresh before expiry (`Credentials.start_auto_refresh`, on for notebook logins).

First against the scripted provider (rotation, single flight, transient errors retried a
bounded number of times, a refused token is final, the timer is cancelled and never leaks),
then against the real provider with 4-second tokens in a real IPython shell, where a cell that
only uses the `access_token` string keeps getting 200 from the API for three lifetimes, and
the provider's log shows every refresh came before the previous token expired.
Every wait is bounded by count and by time.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from datetime import datetime
from itertools import pairwise

import pytest
import requests
import waiting
from IPython.utils.capture import capture_output
from provider_log import log_lines, settled, token_requests
from scripted_provider import ScriptedProvider
from scripted_user import complete_login

from nbauth.credentials import AUTO_REFRESH_ATTEMPTS, Credentials, Identity
from nbauth.errors import LoginRequiredError
from nbauth.tokens import TokenResponse

#: Access-token lifetime in seconds of this module's short_provider (tests/conftest.py).
TTL = 4

TIMER = "nbauth-auto-refresh"


def wait_for(predicate, seconds):
    return waiting.wait_for(predicate, seconds, step=0.02)


def timer_threads():
    return [t for t in threading.enumerate() if t.name == TIMER and t.is_alive()]


def rotating(expires_in, count=50, delay=0.0):
    """Token answers rotating the refresh token rt-1 → rt-2 → …, each living `expires_in` s."""
    def make(i):
        def answer(form, p):
            if delay:
                time.sleep(delay)
            body = {"access_token": f"at-{i}", "token_type": "Bearer", "expires_in": expires_in,
                    "refresh_token": f"rt-{i}"}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return answer
    return [make(i) for i in range(2, count + 2)]


def unavailable(form, p):
    return 503, {"Content-Type": "text/html"}, b"<h1>Service Unavailable</h1>"


def credentials(p, *, expires_in=1.0, refresh_token="rt-1"):
    response = TokenResponse(access_token="at-1", token_type="Bearer",
                             expires_at=time.time() + expires_in, scope="openid offline_access",
                             refresh_token=refresh_token)
    creds = Credentials(response, identity=Identity(subject="s"), issuer=p.issuer,
                        client_id=p.client_id, token_endpoint=p.issuer + "oauth/token")
    creds.auto_refresh_backoff = 0.05
    return creds


def refreshes(p):
    return [r for r in p.calls("/oauth/token") if r.form.get("grant_type") == "refresh_token"]


@pytest.fixture(autouse=True)
def no_timer_outlives_a_test():
    before = set(timer_threads())
    yield
    assert wait_for(lambda: not set(timer_threads()) - before, 5), timer_threads()


# -- the timer, against the scripted provider ------------------------------------------------
def test_the_token_is_refreshed_before_expiry_without_anyone_asking_and_rotation_is_kept():
    with ScriptedProvider(token_answers=rotating(1.0)) as p:
        creds = credentials(p, expires_in=1.0)
        expiries, arrivals = [creds.expires_at], []
        creds.on_change(lambda c: (arrivals.append(time.time()), expiries.append(c.expires_at)))
        started = time.monotonic()
        creds.start_auto_refresh()
        # A 1 s token is STALE in its second half: refreshed about every 0.5 s.
        assert wait_for(lambda: creds.refresh_count >= 3, 5)
        creds.stop_auto_refresh()
        assert time.monotonic() - started < 5
        sent = [r.form["refresh_token"] for r in refreshes(p)]
        assert sent == [f"rt-{i}" for i in range(1, len(sent) + 1)]  # rotation: each one once
        assert len(sent) == creds.refresh_count
        # every new token arrived while the one before it was still valid
        assert all(arrived < expiry for arrived, expiry in zip(arrivals, expiries[:-1], strict=True))
        assert creds.next_refresh_at is None


def test_refresh_happens_while_the_old_token_is_still_valid():
    with ScriptedProvider(token_answers=rotating(2.0)) as p:
        creds = credentials(p, expires_in=2.0)
        first_expiry = creds.expires_at
        seen = []
        creds.on_change(lambda c: seen.append(time.time()))
        creds.start_auto_refresh()
        assert creds.next_refresh_at is not None
        assert abs(creds.next_refresh_at - (first_expiry - 1.0)) < 0.2  # expiry − threshold
        assert wait_for(lambda: seen, 4)
        assert seen[0] < first_expiry and creds.current_token == "at-2"
        creds.stop_auto_refresh()


def test_calling_start_again_keeps_one_timer_and_stop_cancels_it():
    with ScriptedProvider(token_answers=rotating(3600)) as p:
        creds = credentials(p, expires_in=3600)
        try:
            for _ in range(5):
                creds.start_auto_refresh()
            # each call cancels the timer before; a cancelled one may take a moment to end
            assert wait_for(lambda: len(timer_threads()) == 1, 2), timer_threads()
        finally:
            creds.stop_auto_refresh()
        assert wait_for(lambda: not timer_threads(), 2)
        assert refreshes(p) == []


def test_logout_and_clear_cancel_the_timer():
    with ScriptedProvider(token_answers=rotating(3600)) as p:
        for end in ("logout", "clear"):
            creds = credentials(p, expires_in=3600)
            creds.start_auto_refresh()
            assert wait_for(lambda: len(timer_threads()) == 1, 2), timer_threads()
            getattr(creds, end)()
            assert wait_for(lambda: not timer_threads(), 2), end
            assert creds.next_refresh_at is None


def test_no_timer_without_a_refresh_token_or_an_expiry():
    with ScriptedProvider() as p:
        creds = credentials(p, refresh_token=None)
        creds.start_auto_refresh()
        response = TokenResponse(access_token="at-1", token_type="Bearer", expires_at=None,
                                 scope=None, refresh_token="rt-1")
        unknown = Credentials(response, identity=Identity(), issuer=p.issuer,
                              client_id=p.client_id, token_endpoint=p.issuer + "oauth/token")
        unknown.start_auto_refresh()
        assert not timer_threads()
        assert creds.next_refresh_at is None and unknown.next_refresh_at is None


def test_credentials_nobody_holds_any_more_stop_refreshing():
    with ScriptedProvider(token_answers=rotating(3600)) as p:
        creds = credentials(p, expires_in=0.6)  # due at 0.3 s
        creds.start_auto_refresh()
        (timer,) = timer_threads()
        del creds
        gc.collect()
        # The timer holds the credentials weakly: when it fires there is nothing to refresh.
        assert wait_for(lambda: not timer.is_alive(), 3)
        assert refreshes(p) == []


def test_the_timer_and_twenty_callers_at_once_cause_one_refresh():
    with ScriptedProvider(token_answers=rotating(3600, delay=0.4)) as p:
        creds = credentials(p, expires_in=0.4)  # due at 0.2 s, while the callers ask
        creds.start_auto_refresh()
        barrier = threading.Barrier(20)
        results = []

        def ask():
            barrier.wait(timeout=10)
            time.sleep(0.3)
            results.append(str(creds.token()))

        threads = [threading.Thread(target=ask) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert results == ["at-2"] * 20
        assert len(refreshes(p)) == 1 and creds.refresh_count == 1
        creds.stop_auto_refresh()


def test_a_transient_error_is_retried_with_backoff_then_succeeds():
    answers = [unavailable, unavailable, *rotating(3600, count=1)]
    with ScriptedProvider(token_answers=answers) as p:
        creds = credentials(p, expires_in=2.0)
        creds.start_auto_refresh()
        assert wait_for(lambda: creds.refresh_count == 1, 6)
        assert len(refreshes(p)) == 3  # two 503s, then the refresh
        assert creds.refresh_error is None and creds.valid
        # re-armed for the new token (an hour, less the threshold)
        assert creds.next_refresh_at is not None and creds.next_refresh_at > time.time() + 3000
        creds.stop_auto_refresh()


def test_a_provider_that_stays_down_gets_a_bounded_number_of_attempts():
    with ScriptedProvider(token_answers=[unavailable]) as p:
        creds = credentials(p, expires_in=2.0)
        started = time.monotonic()
        creds.start_auto_refresh()
        assert wait_for(lambda: len(refreshes(p)) >= AUTO_REFRESH_ATTEMPTS, 8)
        assert wait_for(lambda: not timer_threads(), 3)
        time.sleep(1.0)  # nothing more is tried in the background
        assert len(refreshes(p)) == AUTO_REFRESH_ATTEMPTS
        assert time.monotonic() - started < 8
        assert creds.valid and "HTTP 503" in (creds.refresh_error or "")
        assert "the last background refresh failed" in creds.describe()["refresh"]
        calls = [r.form for r in refreshes(p)]
        assert all(form["refresh_token"] == "rt-1" for form in calls)


def test_invalid_grant_in_the_background_is_final_without_a_retry_loop():
    refused = ScriptedProvider.raw(400, b'{"error": "invalid_grant"}', "application/json")
    with ScriptedProvider(token_answers=[refused]) as p:
        creds = credentials(p, expires_in=1.0)
        ended = []
        creds.on_change(lambda c: ended.append(c.end_reason))
        creds.start_auto_refresh()
        assert wait_for(lambda: not creds.valid, 4)
        assert wait_for(lambda: not timer_threads(), 2)
        time.sleep(0.7)  # past the old token's expiry: nothing more is sent
        assert len(refreshes(p)) == 1
        assert ended == ["refused"] and creds.end_reason == "refused"
        with pytest.raises(LoginRequiredError, match="Log in again"):
            creds.token()


# -- a notebook login, against the real provider ------------------------------------------------


def notebook_login(ip, magics, info, var="access_token"):
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {info.issuer} --client-id {info.client_id} "
                          f"--audience {info.audience} --port 0 --no-browser --no-wait "
                          f"--var {var}")
    login = magics.logins[var]
    complete_login(login.widget._url.value)
    login.pending.wait(timeout=30)
    assert wait_for(lambda: login.credentials is not None and var in ip.user_ns, 10)
    return login


def issue_times(info, skip):
    """When the provider issued tokens (any grant), from its log lines after the first `skip`."""
    times = []
    for line in log_lines(info)[skip:]:
        if "token issued: grant_type=" in line:
            stamp = line.split()[1]  # [nbauth-provider] 2026-…Z token issued: …
            times.append((datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp(),
                          line.split("grant_type=")[1].split()[0]))
    return times


@pytest.mark.provider
def test_access_token_alone_keeps_working_for_three_lifetimes(ip, magics, short_provider):
    skip = len(log_lines(short_provider))
    login = notebook_login(ip, magics, short_provider)
    ip.push({"_nbauth_api": short_provider.api_url}, interactive=False)
    statuses, tokens = [], set()
    started = time.monotonic()
    for _ in range(200):  # three lifetimes of the access token, and never more than 30 s
        if time.monotonic() - started > 3 * TTL + 1:
            break
        with capture_output():
            result = ip.run_cell(
                "import requests\n"
                "_nbauth_status = requests.get(_nbauth_api, timeout=10, headers={"
                "'Authorization': f'Bearer {access_token}'}).status_code")
        assert result.success
        statuses.append(ip.user_ns["_nbauth_status"])
        tokens.add(str(ip.user_ns["access_token"]))
        time.sleep(0.2)
    assert time.monotonic() - started < 30
    assert statuses and set(statuses) == {200}, statuses
    with capture_output() as out:
        ip.run_line_magic("auth0_token", "")
    assert "next in the background" in out.stdout
    credentials = login.credentials
    assert credentials.next_refresh_at is not None
    credentials.stop_auto_refresh()  # so the counts below hold still
    assert credentials.refresh_count >= 3 and len(tokens) >= 3
    # The provider's own log: after the login, each token came before the last one expired.
    issued = settled(lambda: issue_times(short_provider, skip))
    assert [grant for _, grant in issued][:1] == ["authorization_code"]
    refreshed = [grant for _, grant in issued[1:]]
    assert refreshed and set(refreshed) == {"refresh_token"}
    assert len(refreshed) == credentials.refresh_count
    gaps = [later - earlier for (earlier, _), (later, _) in pairwise(issued)]
    assert all(gap < TTL - 0.5 for gap in gaps), gaps


@pytest.mark.provider
def test_a_revoked_refresh_token_ends_the_login_in_the_widget_without_retrying(
        ip, magics, short_provider):
    login = notebook_login(ip, magics, short_provider)
    credentials = login.credentials
    revoked = requests.post(short_provider.issuer + "oauth/revoke", data={
        "token": credentials._refresh_token, "token_type_hint": "refresh_token",
        "client_id": short_provider.client_id}, timeout=10)
    assert revoked.status_code == 200
    before = settled(lambda: token_requests(short_provider))
    assert wait_for(lambda: not credentials.valid, TTL + 2)
    assert credentials.end_reason == "refused"
    assert "Click Log in to sign in again" in login.widget.status_text
    assert login.widget._retry.layout.display != "none"  # the widget's Log in button is back
    assert wait_for(lambda: not timer_threads(), 3)
    time.sleep(TTL / 2)  # past the old token's expiry: no retry loop
    assert settled(lambda: token_requests(short_provider)) - before == 1


@pytest.mark.provider
def test_a_newer_login_and_logout_cancel_the_timer(ip, magics, short_provider):
    first = notebook_login(ip, magics, short_provider)
    old = first.credentials
    second = notebook_login(ip, magics, short_provider)
    assert not old.valid and old.next_refresh_at is None
    assert second.credentials.next_refresh_at is not None
    assert second.credentials._timer in timer_threads()
    assert old._timer is None
    count = old.refresh_count
    with capture_output():
        ip.run_line_magic("auth0_logout", "")
    assert wait_for(lambda: not timer_threads(), 3)
    time.sleep(TTL / 2)
    assert old.refresh_count == count and second.credentials is None


# -- answers real providers give (bug reports of other OAuth clients) -------------------------
def answers(*bodies):
    """Token answers with these JSON bodies, in order (HTTP 200)."""
    def make(body):
        def answer(form, p):
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return answer
    return [make(body) for body in bodies]


@pytest.mark.parametrize("expires_in", [
    0,     # Authlib-based servers' "does not expire" (authlib #312): an unknown expiry
    0.01,  # a token issued already due: the background refresh stops, and says so
])
def test_a_refresh_answer_due_at_once_never_starts_a_refresh_loop(expires_in, caplog):
    # Taken as a lifetime, every refresh would be due at once, in a loop against the provider.
    with ScriptedProvider(token_answers=rotating(expires_in)) as p:
        creds = credentials(p, expires_in=1.0)
        creds.start_auto_refresh()
        try:
            assert wait_for(lambda: creds.refresh_count >= 1, 5)
            time.sleep(1.5)  # a loop would have sent hundreds by now
            assert len(refreshes(p)) == 1 and creds.next_refresh_at is None
            if expires_in == 0:
                assert creds.expires_at is None
                assert creds.token() == "at-2"  # usable, without a refresh on every call
                assert len(refreshes(p)) == 1
            else:
                assert "no longer renewed in the background" in caplog.text
        finally:
            creds.stop_auto_refresh()


def test_a_rotated_refresh_token_is_kept_when_the_rest_of_the_answer_is_refused():
    # The new refresh token came with an answer nbauth refuses (no token_type, see
    # oauthenticator #225): the one sent is spent all the same, and must never be sent again.
    refused = {"access_token": "at-2", "expires_in": 3600, "refresh_token": "rt-2"}
    good = {"access_token": "at-3", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-3"}
    with ScriptedProvider(token_answers=answers(refused, good)) as p:
        creds = credentials(p, expires_in=1.0)
        creds.start_auto_refresh()
        try:
            assert wait_for(lambda: creds.refresh_error, 5)
            assert "token_type" in creds.refresh_error
            time.sleep(1.0)  # no background retry of an answer that would be refused again
            assert [r.form["refresh_token"] for r in refreshes(p)] == ["rt-1"]
            creds.refresh()
            assert [r.form["refresh_token"] for r in refreshes(p)] == ["rt-1", "rt-2"]
            assert creds.current_token == "at-3"
        finally:
            creds.stop_auto_refresh()


def test_an_oauth_error_sent_with_http_200_is_reported_as_the_providers_error():
    error = {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
    with ScriptedProvider(token_answers=answers(error)) as p:
        creds = credentials(p, expires_in=3600)
        with pytest.raises(LoginRequiredError, match="no longer accepts the refresh token"):
            creds.refresh()
        assert not creds.valid
