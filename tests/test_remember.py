"""Remembered logins: the private file store and the keyring store (unit), and logins that
resume without a browser against the real provider (the kernel-restart test is in
test_remember_kernel.py)."""

from __future__ import annotations

import json
import os
import stat
import warnings

import pytest
import requests
from provider_log import refresh_refused

import nbauth
from nbauth import remember
from nbauth.errors import NbauthWarning, TokenStoreError
from nbauth.tokenstore import (
    FileStore,
    KeyringStore,
    RememberedEntry,
    StoreKey,
    _check_private,
    default_store,
    store_directory,
    usable_keyring,
)

KEY = StoreKey("https://tenant.example/", "client-1", "https://api.example/",
               "openid offline_access")
ENTRY = RememberedEntry("rt-secret-value-123456", "auth0|demo", "Demo User", "demo@example.com")


@pytest.fixture(autouse=True)
def private_stores(tmp_path, monkeypatch):
    """Every test gets its own Jupyter data directory, and no real OS keyring is touched."""
    import keyring
    from keyring.backends import null

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    previous = keyring.get_keyring()
    keyring.set_keyring(null.Keyring())
    yield
    keyring.set_keyring(previous)


def files_in(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- the file store ---------------------------------------------------------------------------

def test_without_a_usable_keyring_the_file_store_under_the_jupyter_data_dir_is_used(tmp_path):
    store = default_store()
    assert isinstance(store, FileStore)
    assert store.directory == tmp_path / "jupyter-data" / "nbauth" == store_directory()


def test_file_is_0600_in_a_0700_directory_whatever_the_umask(tmp_path):
    store = FileStore()
    old = os.umask(0)
    try:
        store.save(KEY, ENTRY)
    finally:
        os.umask(old)
    path = store.path_for(KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert store.load(KEY).refresh_token == ENTRY.refresh_token
    data = json.loads(path.read_text())  # plain JSON, never a pickle
    assert data["issuer"] == KEY.issuer and data["refresh_token"] == ENTRY.refresh_token


def test_saving_replaces_the_file_atomically_and_leaves_no_temporary_files():
    store = FileStore()
    store.save(KEY, ENTRY)
    first = store.path_for(KEY).stat().st_ino
    store.save(KEY, RememberedEntry("rt-rotated-654321", "auth0|demo"))
    assert store.path_for(KEY).stat().st_ino != first  # a new file renamed over the old one
    assert files_in(store.directory) == [store.path_for(KEY).name]
    assert store.load(KEY).refresh_token == "rt-rotated-654321"


def test_entries_are_keyed_by_issuer_client_audience_and_scopes():
    store = FileStore()
    store.save(KEY, ENTRY)
    same = StoreKey(KEY.issuer, KEY.client_id, KEY.audience, "offline_access openid")
    assert store.load(same).refresh_token == ENTRY.refresh_token  # scope order does not matter
    for other in (StoreKey("https://other.example/", *list(vars(KEY).values())[1:]),
                  StoreKey(KEY.issuer, "client-2", KEY.audience, KEY.scope),
                  StoreKey(KEY.issuer, KEY.client_id, "https://reports.example/", KEY.scope),
                  StoreKey(KEY.issuer, KEY.client_id, KEY.audience, "openid")):
        assert store.load(other) is None


def test_a_loosened_file_mode_is_refused_with_what_to_do():
    store = FileStore()
    store.save(KEY, ENTRY)
    path = store.path_for(KEY)
    path.chmod(0o644)
    with pytest.raises(TokenStoreError) as info:
        store.load(KEY)
    message = str(info.value)
    assert str(path) in message and "644" in message and "chmod 600" in message
    assert ENTRY.refresh_token not in message


def test_a_loosened_directory_mode_is_refused():
    store = FileStore()
    store.save(KEY, ENTRY)
    store.directory.chmod(0o755)
    with pytest.raises(TokenStoreError, match="chmod 700"):
        store.load(KEY)
    with pytest.raises(TokenStoreError):
        store.save(KEY, ENTRY)


def test_another_owner_is_refused_by_the_check():
    other_uid = os.getuid() + 1
    fake = os.stat_result((stat.S_IFREG | 0o600, 0, 0, 1, other_uid, 0, 10, 0, 0, 0))
    with pytest.raises(TokenStoreError, match="belongs to another user"):
        _check_private(fake, store_directory() / "x.json", directory=False)


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root (the check "
                    "itself is tested above)")
def test_a_file_owned_by_another_user_is_refused():
    store = FileStore()
    store.save(KEY, ENTRY)
    os.chown(store.path_for(KEY), 65534, 65534)
    with pytest.raises(TokenStoreError, match="belongs to another user"):
        store.load(KEY)


def test_a_symbolic_link_is_refused(tmp_path):
    store = FileStore()
    store.save(KEY, ENTRY)
    target = tmp_path / "elsewhere.json"
    store.path_for(KEY).rename(target)
    store.path_for(KEY).symlink_to(target)
    with pytest.raises(TokenStoreError, match="could not be opened"):
        store.load(KEY)


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b'{"format": 1}',
                                     b'{"format": 1, "refresh_token": 5}', b"\x80\x81" * 10,
                                     b'{"format": 99, "refresh_token": "x"}'])
def test_a_corrupt_file_is_ignored_with_a_warning(content):
    store = FileStore()
    store.save(KEY, ENTRY)
    store.path_for(KEY).write_bytes(content)
    with pytest.warns(NbauthWarning, match="corrupt"):
        assert store.load(KEY) is None


def test_delete_and_missing_entries():
    store = FileStore()
    assert store.load(KEY) is None  # no directory yet
    store.save(KEY, ENTRY)
    store.delete(KEY)
    store.delete(KEY)
    assert store.load(KEY) is None


def test_the_entry_repr_shows_no_token():
    assert ENTRY.refresh_token not in repr(ENTRY)


# -- the keyring store ------------------------------------------------------------------------

def memory_keyring(name="MemoryKeyring"):
    from keyring.backend import KeyringBackend
    from keyring.errors import PasswordDeleteError

    class Backend(KeyringBackend):
        priority = 1

        def __init__(self):
            super().__init__()
            self.items = {}

        def get_password(self, service, username):
            return self.items.get((service, username))

        def set_password(self, service, username, password):
            self.items[(service, username)] = password

        def delete_password(self, service, username):
            if self.items.pop((service, username), None) is None:
                raise PasswordDeleteError(username)

    Backend.__name__ = name
    return Backend()


def test_a_real_keyring_backend_is_preferred_to_the_file():
    import keyring

    backend = memory_keyring()
    keyring.set_keyring(backend)
    store = default_store()
    assert isinstance(store, KeyringStore)
    store.save(KEY, ENTRY)
    assert [service for service, _ in backend.items] == ["nbauth"]
    assert store.load(KEY).refresh_token == ENTRY.refresh_token
    store.delete(KEY)
    store.delete(KEY)  # nothing left to delete is fine
    assert store.load(KEY) is None and not store_directory().exists()


def test_fail_null_and_plaintext_keyrings_are_not_used():
    import keyring
    from keyring.backends import chainer, fail, null

    for backend in (fail.Keyring(), null.Keyring(), memory_keyring("PlaintextKeyring")):
        keyring.set_keyring(backend)
        assert usable_keyring() is None
    good = memory_keyring()

    class Chain(chainer.ChainerBackend):
        backends = [good, null.Keyring()]

    keyring.set_keyring(Chain())
    assert usable_keyring() is good
    Chain.backends = [memory_keyring("PlaintextKeyring"), good]
    assert usable_keyring() is None  # the chainer would write to the plaintext one


def test_a_failing_keyring_becomes_a_store_error():
    import keyring

    backend = memory_keyring()
    backend.get_password = lambda *a: (_ for _ in ()).throw(RuntimeError("locked"))
    keyring.set_keyring(backend)
    with pytest.raises(TokenStoreError, match="RuntimeError"):
        default_store().load(KEY)


# -- the shared-host policy -------------------------------------------------------------------

def test_remembering_is_off_on_shared_hosts_unless_an_admin_allows_it():
    assert remember.remember_refusal(environ={}) is None
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"}
    refusal = remember.remember_refusal(environ=hub)
    assert "JupyterHub" in refusal and "allow_remember_on_shared_hosts" in refusal
    assert remember.remember_refusal(True, environ=hub) is None
    assert remember.remember_refusal(environ={**hub, remember.ALLOW_ON_SHARED_HOSTS_ENV: "1"}) \
        is None
    assert "Binder" in remember.remember_refusal(environ={"BINDER_SERVICE_HOST": "x"})


# -- logins against the real provider --------------------------------------------------------

pytest_provider = pytest.mark.provider


def browser_login(provider, browser, **kwargs):
    person = browser()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                             audience=provider.audience, port=0, timeout=60, open_browser=person,
                             remember=True, **kwargs)
    person.join()
    assert not person.errors
    return creds, person, [str(w.message) for w in caught if w.category is NbauthWarning]


def no_browser_login(provider):
    opened = []
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                         audience=provider.audience, port=0, timeout=15,
                         open_browser=opened.append, remember=True)
    assert opened == []
    return creds


def stored_token(provider):
    key = StoreKey(provider.issuer, provider.client_id, provider.audience,
                   nbauth.flow.DEFAULT_SCOPE)
    entry = FileStore().load(key)
    return None if entry is None else entry.refresh_token


def call_api(provider, creds):
    return creds.session().get(provider.api_url, timeout=10).status_code


@pytest_provider
def test_a_remembered_login_needs_no_browser_and_the_stored_token_follows_rotation(
        provider, browser):
    first, person, notes = browser_login(provider, browser)
    assert len(person.urls) == 1 and notes == []
    assert stored_token(provider) == first._refresh_token
    first.clear()  # the kernel ends (the token stays valid at the provider)
    second = no_browser_login(provider)
    assert second.identity.email == "demo@example.com" and call_api(provider, second) == 200
    assert stored_token(provider) == second._refresh_token != first._refresh_token
    second.refresh()  # rotation: the stored copy follows
    assert stored_token(provider) == second._refresh_token
    text = repr(second) + str(second.describe())
    assert second._refresh_token not in text
    # logout revokes the token at the provider and forgets the entry
    last = second._refresh_token
    second.logout()
    assert stored_token(provider) is None and refresh_refused(provider, last)


@pytest_provider
def test_a_refused_remembered_token_is_forgotten_and_the_browser_is_used(provider, browser):
    first, _, _ = browser_login(provider, browser)
    revoked = requests.post(provider.issuer + "oauth/revoke", data={
        "token": first._refresh_token, "client_id": provider.client_id}, timeout=10)
    assert revoked.status_code == 200
    first.clear()
    second, person, notes = browser_login(provider, browser)
    assert len(person.urls) == 1
    assert any("no longer accepts the remembered login" in n for n in notes)
    assert stored_token(provider) == second._refresh_token  # the new login replaced it
    second.logout()


@pytest_provider
def test_a_corrupt_file_gives_a_warning_and_a_browser_login(provider, browser):
    first, _, _ = browser_login(provider, browser)
    first.clear()
    path = next(store_directory().glob("login-*.json"))
    path.write_text("{ this is not json")
    second, person, notes = browser_login(provider, browser)
    assert len(person.urls) == 1 and any("corrupt" in n for n in notes)
    assert stored_token(provider) == second._refresh_token
    second.logout()


@pytest_provider
@pytest.mark.parametrize("spoil", ["mode", "owner"])
def test_an_unsafe_file_is_refused_and_the_browser_is_used(provider, browser, spoil):
    if spoil == "owner" and os.getuid() != 0:
        pytest.skip("changing a file's owner needs root (the check is unit-tested above)")
    first, _, _ = browser_login(provider, browser)
    kept = first._refresh_token
    first.clear()
    path = next(store_directory().glob("login-*.json"))
    if spoil == "mode":
        path.chmod(0o644)
    else:
        os.chown(path, 65534, 65534)
    second, person, notes = browser_login(provider, browser)
    assert len(person.urls) == 1
    expected = "other users" if spoil == "mode" else "belongs to another user"
    assert any(expected in n and "browser" in n for n in notes), notes
    assert all(kept not in n for n in notes)
    second.logout()


@pytest_provider
def test_on_jupyterhub_nothing_is_remembered_by_default(provider, browser, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/demo/")
    creds, person, notes = browser_login(provider, browser)
    assert any("off on this shared host (JupyterHub)" in n for n in notes)
    assert not store_directory().exists()
    creds.logout()


@pytest_provider
def test_the_magic_remembers_on_jupyterhub_only_when_the_admin_allows_it(ip, provider,
                                                                         monkeypatch):
    from IPython.utils.capture import capture_output
    from scripted_user import complete_login

    magics = ip.magics_manager.registry["AuthMagics"]
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/demo/")
    line = (f"--domain {provider.issuer} --client-id {provider.client_id} --audience "
            f"{provider.audience} --port 0 --no-browser --no-wait --remember --callback loopback "
            "--var hub_token --session-var hub")

    def magic_login(expect_browser):
        with capture_output() as out:
            ip.run_line_magic("auth0_login", line)
        login = magics.logins["hub_token"]
        if expect_browser:
            complete_login(login.widget._url.value)
            login.pending.wait(timeout=30)
        for _ in range(100):
            if login.credentials is not None:
                break
            __import__("time").sleep(0.05)
        assert login.credentials is not None and login.credentials.valid
        return out, login

    try:
        out, _ = magic_login(expect_browser=True)
        assert "--remember is off on this shared host (JupyterHub)" in out.stderr
        assert "allow_remember_on_shared_hosts" in out.stderr
        assert not store_directory().exists()
        magics.config_defaults.allow_remember_on_shared_hosts = True
        out, first = magic_login(expect_browser=True)
        assert "off on this shared host" not in out.stderr
        assert stored_token(provider) == first.credentials._refresh_token
        # running the cell again takes over the remembered login without a browser
        out, second = magic_login(expect_browser=False)
        assert "remembered login, no browser needed" in out.stdout, out.stdout + out.stderr
        assert not first.credentials or not first.credentials.valid
        assert ip.user_ns["hub"].get(provider.api_url, timeout=10).status_code == 200
        assert stored_token(provider) == second.credentials._refresh_token
        with capture_output():
            ip.run_line_magic("auth0_logout", "--var hub_token")
        assert stored_token(provider) is None
    finally:
        magics.config_defaults.allow_remember_on_shared_hosts = False
        if "hub_token" in magics.logins:
            with capture_output():
                ip.run_line_magic("auth0_logout", "--var hub_token")


@pytest_provider
def test_a_refresh_the_provider_refuses_forgets_the_remembered_login(provider, browser):
    creds, _, _ = browser_login(provider, browser)
    spent = creds._refresh_token
    creds.refresh()
    assert stored_token(provider) == creds._refresh_token != spent
    assert refresh_refused(provider, spent)  # reuse of a rotated-out token revokes the whole login
    with pytest.raises(nbauth.LoginRequiredError):
        creds.refresh()
    assert stored_token(provider) is None and creds.end_reason == "refused"


def test_the_login_lock_excludes_other_holders_for_a_bounded_time():
    import time

    from nbauth.tokenstore import _exclusive

    store = FileStore()
    with store.lock(KEY) as held:
        assert held
        started = time.monotonic()
        with _exclusive(store.directory, KEY, timeout=0.3) as other:
            assert not other  # another open of the lock (another kernel) has to wait
        assert 0.25 < time.monotonic() - started < 5
        with _exclusive(store.directory, StoreKey("i", "c", None, "s"), timeout=0.3) as unrelated:
            assert unrelated  # other logins are not held up
    with _exclusive(store.directory, KEY, timeout=0.3) as again:
        assert again
    lock_files = [p for p in store.directory.iterdir() if p.name.startswith(".lock-")]
    assert lock_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in lock_files)


@pytest_provider
def test_logout_also_forgets_a_login_remembered_by_an_earlier_kernel(ip, provider, browser):
    from IPython.utils.capture import capture_output
    from scripted_user import complete_login

    earlier, _, _ = browser_login(provider, browser)
    remembered = earlier._refresh_token
    earlier.clear()  # that kernel ended; its login stays remembered
    magics = ip.magics_manager.registry["AuthMagics"]
    with capture_output():
        ip.run_line_magic("auth0_login", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --audience {provider.audience} --port 0 "
                          "--no-browser --no-wait --callback loopback --var plain_token "
                          "--session-var plain")
    login = magics.logins["plain_token"]
    complete_login(login.widget._url.value)
    login.pending.wait(timeout=30)
    assert stored_token(provider) == remembered  # a login without --remember leaves it alone
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", "--var plain_token")
    assert "A remembered login was forgotten too" in out.stdout
    assert remembered not in out.stdout
    assert stored_token(provider) is None and refresh_refused(provider, remembered)


@pytest_provider
def test_a_scope_remembered_without_openid_is_the_same_login_as_with_it(provider, browser):
    first, _, _ = browser_login(provider, browser, scope="profile  email offline_access")
    first.clear()
    opened = []
    second = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                          audience=provider.audience, port=0, timeout=15,
                          scope="openid profile email offline_access",
                          open_browser=opened.append, remember=True)
    assert opened == [] and call_api(provider, second) == 200
    second.logout()


@pytest_provider
def test_logout_in_a_kernel_that_never_logged_in_revokes_the_remembered_login(
        ip, provider, browser, monkeypatch):
    """After a kernel restart, %auth0_logout needs no login first to end a remembered one."""
    from IPython.utils.capture import capture_output

    earlier, _, _ = browser_login(provider, browser)
    remembered = earlier._refresh_token
    earlier.clear()  # that kernel ended
    monkeypatch.setenv("AUTH0_DOMAIN", provider.issuer)
    monkeypatch.setenv("AUTH0_CLIENT_ID", provider.client_id)
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", f"--audience {provider.audience}")
    assert "The remembered login was forgotten. The refresh token was revoked" in out.stdout
    assert remembered not in out.stdout
    assert stored_token(provider) is None and refresh_refused(provider, remembered)
    with capture_output() as again:
        ip.run_line_magic("auth0_logout", f"--audience {provider.audience}")
    assert "none is remembered" in again.stdout


@pytest_provider
def test_logout_without_the_scope_forgets_a_login_remembered_with_another_scope(
        ip, provider, browser, monkeypatch):
    """A login remembered with --scope … read:messages, then %auth0_logout after a restart
    without the scope: it is found all the same (before: "none is remembered")."""
    from IPython.utils.capture import capture_output

    scope = "openid profile email offline_access read:messages"
    earlier, _, _ = browser_login(provider, browser, scope=scope)
    remembered = earlier._refresh_token
    earlier.clear()
    with capture_output() as hint:  # nothing configured: where the remembered login is
        ip.run_line_magic("auth0_logout", "")
    assert "1 remembered login is kept" in hint.stdout
    assert f"%auth0_logout --domain {provider.issuer} --client-id {provider.client_id} " \
        f"--audience {provider.audience}" in hint.stdout
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", f"--domain {provider.issuer} --client-id "
                          f"{provider.client_id} --audience {provider.audience}")
    assert "The remembered login was forgotten. The refresh token was revoked" in out.stdout
    assert refresh_refused(provider, remembered) and remember.remembered_keys() == []
    assert remembered not in hint.stdout + out.stdout


def test_logout_forgets_a_remembered_login_even_when_the_provider_is_unreachable():
    dead = "http://127.0.0.1:9/"  # discard port: nothing answers there
    key = StoreKey(dead, "client", None, "openid profile email offline_access")
    FileStore().save(key, RememberedEntry("rt-remembered-secret", "auth0|demo", None, None))
    outcome = remember.forget_remembered_login(
        dead, "client", audience=None, scope="profile email offline_access",
        client=nbauth.http.ProviderClient(timeout=(0.5, 0.5)))
    assert outcome is not None and "forgotten here, but not revoked" in outcome
    assert "rt-remembered-secret" not in outcome
    assert FileStore().load(key) is None
