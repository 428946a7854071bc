"""%auth0_login and %auth0_logout: thin notebook glue over `nbauth.start_login`.

The magics resolve settings (config → environment → options), show the login widget, and put
the access token and a ready `requests` session into the user's namespace when the login
completes — under names hidden from %who/%whos, whose output would print part of the token.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from .config import LoginSettings, NbauthConfig, parse_ports
from .errors import ConfigurationError

if TYPE_CHECKING:  # imported when a login starts: %load_ext stays light (no widgets, requests, jwt)
    from .credentials import Credentials
    from .notebook import NotebookLogin

__all__ = ["AuthMagics", "nbauth_exception_handler"]

_SECRET_OPTIONS = ("--client-secret", "--client_secret", "--secret", "--password")


_SECRET_PARAMS = ("client_secret", "client_assertion", "password")


def strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` (a ``#`` that starts a word outside quotes), as a shell
    would; a ``#`` inside a word or in quotes stays."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def parse_line(magic: Any, line: str, *, secret_possible: bool = False) -> Any:
    """Parse a magic line as a shell would: quotes group words and are removed.

    (IPython's parse_argstring keeps quotes, so --scope 'openid email' would not work.)
    With `secret_possible`, a parse error does not repeat the line's words (one may be a
    client secret typed where it must not be).
    """
    try:
        argv = shlex.split(strip_comment(line))
    except ValueError as exc:
        raise UsageError(f"Could not read the options: {exc} (check the quotes).") from None
    if not secret_possible:
        return magic.parser.parse_args(argv)
    try:
        return magic.parser.parse_args(argv)
    except UsageError:
        raise UsageError(
            "The options could not be read, and they are not repeated here in case one is a "
            "client secret: never type a secret in a cell (it is saved in the notebook and in "
            "IPython's history). Set AUTH0_CLIENT_SECRET in the kernel's environment, or let "
            "nbauth prompt for it. See %auth0_login? for the options."
        ) from None


def nbauth_exception_handler(shell: Any, etype: type[BaseException], value: BaseException,
                             tb: Any, tb_offset: int | None = None) -> list[str]:
    """Show nbauth errors as one actionable line, without frames (no locals can leak)."""
    stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


def _remembered_hint() -> str:
    """Where remembered logins are kept, and how to forget them, when there are any."""
    from .remember import remembered_keys

    try:
        keys = remembered_keys()
    except Exception:  # a hint only: an unusable store must not turn a logout into an error
        return ""
    if not keys:
        return ""
    first = keys[0]
    example = f"--domain {first.issuer} --client-id {first.client_id}" + (
        f" --audience {first.audience}" if first.audience else "")
    return (f" {len(keys)} remembered login{'s are' if len(keys) > 1 else ' is'} kept on this "
            f"machine; to forget one, name it: %auth0_logout {example}")


@magics_class
class AuthMagics(Magics):
    """Log in to Auth0 or any OpenID Connect provider from a notebook."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.config_defaults = NbauthConfig(parent=shell)
        shell.configurables.append(self.config_defaults)  # so %config NbauthConfig works
        self.logins: dict[str, NotebookLogin] = {}

    @magic_arguments()
    @argument("--domain", help="Auth0 tenant domain (example.eu.auth0.com) or issuer URL "
              "[AUTH0_DOMAIN].")
    @argument("--client-id", dest="client_id", help="Native application's client id "
              "[AUTH0_CLIENT_ID].")
    @argument("--audience", help="API identifier to get an access token for [AUTH0_AUDIENCE].")
    @argument("--scope", nargs="+", help="Scopes to request: --scope openid email (or quoted, "
              "'openid email'); openid is always added.")
    @argument("--port", nargs="+", help="Callback port, or several tried in order (8765,8766 or "
              "8765 8766; each registered as http://127.0.0.1:PORT/callback) [NBAUTH_PORTS].")
    @argument("--var", help="Variable for the access token (default access_token).")
    @argument("--session-var", dest="session_var", help="Variable for the requests session "
              "(default auth0_session).")
    @argument("--timeout", type=float, help="Seconds to wait for the login, in the browser "
              "or with a device code (default 300).")
    @argument("--no-browser", dest="no_browser", action="store_true",
              help="Do not open a browser; click the button or copy the URL instead.")
    @argument("--no-wait", dest="no_wait", action="store_true",
              help="Return at once; the token appears in the namespace when the login ends.")
    @argument("--device", action="store_true",
              help="Use the device authorization grant: enter a short code on the provider's "
              "page from any browser (for kernels the browser cannot reach).")
    @argument("--callback", choices=("auto", "loopback", "jupyter", "device"),
              help="How the browser returns: loopback (127.0.0.1), jupyter (through the "
              "Jupyter server, for JupyterHub/remote servers), device, or auto (default) "
              "[NBAUTH_CALLBACK].")
    @argument("--public-url", dest="public_url", help="The address you open Jupyter (or the "
              "hub) at, for --callback jupyter [NBAUTH_PUBLIC_URL].")
    @argument("--remember", action="store_true",
              help="Keep the refresh token across kernel restarts (OS keyring, else a private "
              "file in the Jupyter data directory): the next --remember login needs no "
              "browser. Off on shared hosts unless the admin allows it.")
    @argument("--client-credentials", dest="client_credentials", action="store_true",
              help="Machine-to-machine login of a confidential client; the secret comes from "
              "AUTH0_CLIENT_SECRET, c.NbauthConfig.client_secret, or a prompt (never this line).")
    @argument("--organization", help="Auth0 organization id or name.")
    @argument("--connection", help="Auth0 connection to use (skips the chooser).")
    @argument("--login-hint", dest="login_hint", help="Email to prefill at the provider.")
    @argument("--prompt", help="OIDC prompt value (login, consent, select_account).")
    @argument("--param", action="append", default=[], metavar="KEY=VALUE",
              help="Another authorize parameter, e.g. --param screen_hint=signup.")
    @line_magic
    def auth0_login(self, line: str = "") -> None:
        """Log in with Authorization Code + PKCE and put the access token in the namespace.

        Shows a login widget; sign in in your browser. By default the cell waits until the
        login ends (so Run All works; interrupt the kernel to cancel). Afterwards
        `access_token` (a str) and `auth0_session` (a requests.Session sending the token and
        refreshing it) are defined. Defaults come from c.NbauthConfig in ipython_config.py,
        then AUTH0_DOMAIN / AUTH0_CLIENT_ID / AUTH0_AUDIENCE, then these options.
        """
        login = self._begin(line)
        if login.settings.wait or login.how:  # waited, or done at once
            self._report(login, login.wait())

    async def await_login(self, line: str = "") -> None:
        """%auth0_login as the login cell runs it where widgets work while it waits.

        (kernelwait rewrites a top-level ``%auth0_login`` line into ``await`` of this.)
        """
        login = self._begin(line, cancel_while_waiting=True)
        if login.settings.wait or login.how:
            self._report(login, await login.wait_async())

    def _begin(self, line: str, *, cancel_while_waiting: bool = False) -> NotebookLogin:
        words = line.split()
        refused = [option for option in _SECRET_OPTIONS
                   if option in words or f"{option}=" in line]
        refused += [f"--param {name}=…" for name in _SECRET_PARAMS
                    if any(word.startswith(f"{name}=") for word in words)]
        if refused:
            raise UsageError(
                f"{refused[0]} is refused: whatever is typed in a cell is saved in the notebook "
                "and in IPython's history. Set AUTH0_CLIENT_SECRET in the environment instead."
            )
        args = parse_line(self.auth0_login, line,
                          secret_possible="--client-credentials" in words)
        settings = self._settings(args)
        from .notebook import NotebookLogin

        previous = self.logins.get(settings.var)
        if previous is not None and previous.pending is not None and not previous.pending.done():
            previous.supersede()  # its widget says so; logged-in credentials stay until replaced
        login = NotebookLogin(self._shell, settings, replaces=previous,
                              cancel_while_waiting=cancel_while_waiting or not settings.wait)
        self.logins[settings.var] = login
        login.widget.attach_display(display(login.widget, display_id=True))
        login.start()
        return login

    @staticmethod
    def _report(login: NotebookLogin, credentials: Credentials) -> None:
        how = f" ({login.how})" if login.how and login.how not in credentials.identity.label \
            else ""
        print(f"Logged in as {credentials.identity.label}{how}. "
              f"{login.settings.var} and {login.settings.session_var} are ready.")
        shortfall = credentials.scope_shortfall()
        if shortfall:
            print(f"Note: {shortfall}")

    @magic_arguments()
    @argument("--var", help="Variable of the login to end (default access_token).")
    @argument("--domain", help="With no login in this kernel: the domain of a remembered "
              "login to revoke and forget [AUTH0_DOMAIN].")
    @argument("--client-id", dest="client_id", help="… its client id [AUTH0_CLIENT_ID].")
    @argument("--audience", help="… its audience [AUTH0_AUDIENCE].")
    @argument("--scope", nargs="+", help="… its scopes (default: the login default).")
    @line_magic
    def auth0_logout(self, line: str = "") -> None:
        """Forget the login: revoke its refresh token, remove its namespace variables and
        clear its widget. In a kernel that holds no login (after a restart), revoke and
        forget a login remembered with --remember for the configured settings."""
        args = parse_line(self.auth0_logout, line)
        var = args.var or self.config_defaults.var
        login = self.logins.pop(var, None)
        if login is not None:
            print(login.logout())
            return None
        print(self._forget_remembered(args, var))
        return None

    def _forget_remembered(self, args: Any, var: str) -> str:
        nothing = f"No login is held under {var} in this kernel"
        try:
            settings = LoginSettings.resolve(self.config_defaults, {
                "domain": args.domain, "client_id": args.client_id, "audience": args.audience,
                "scope": None if args.scope is None else " ".join(args.scope)})
        except ConfigurationError:  # no settings to look a remembered login up by
            return f"{nothing}.{_remembered_hint()}"
        from .remember import forget_remembered_login

        outcome = forget_remembered_login(settings.domain, settings.client_id,
                                          audience=settings.audience, scope=settings.scope,
                                          any_scope=args.scope is None)
        return (f"{nothing}. {outcome}" if outcome
                else f"{nothing}, and none is remembered for {settings.domain}.")

    @magic_arguments()
    @argument("--var", help="Variable of the login to describe (default access_token).")
    @line_magic
    def auth0_token(self, line: str = "") -> None:
        """Describe the current login: user, audience, scopes, expiry, refresh — never a token."""
        args = parse_line(self.auth0_token, line)
        var = args.var or self.config_defaults.var
        login = self.logins.get(var)
        credentials = None if login is None else login.holding_credentials()
        if credentials is None or not credentials.valid:
            if credentials is not None and credentials.end_reason == "refused":
                print(f"The login under `{var}` has ended: the provider no longer accepts its "
                      "refresh token (it expired, was revoked — a logout in another kernel "
                      "sharing a remembered login does that — or was used twice). Run "
                      "%auth0_login to sign in again.")
                return None
            print(f"No login is held under `{var}`. Run %auth0_login first.")
            return None
        for label, value in credentials.describe().items():
            print(f"{label:>10}: {value}")
        return None

    # -- helpers ----------------------------------------------------------------------------
    @property
    def _shell(self) -> Any:
        if self.shell is None:
            raise RuntimeError("nbauth's magics need an IPython shell")
        return self.shell

    def _settings(self, args: Any) -> LoginSettings:
        overrides: dict[str, Any] = {
            "domain": args.domain, "client_id": args.client_id, "audience": args.audience,
            "scope": None if args.scope is None else " ".join(args.scope),
            "var": args.var, "session_var": args.session_var,
            "timeout": args.timeout, "callback": args.callback, "public_url": args.public_url,
        }
        try:
            if args.port is not None:
                overrides["ports"] = parse_ports(",".join(args.port))
            if args.no_browser:
                overrides["open_browser"] = False
            if args.no_wait:
                overrides["wait"] = False
            if args.device:
                overrides["device"] = True
            if args.remember:
                overrides["remember"] = True
            if args.client_credentials:
                overrides["client_credentials"] = True
            extra = {k: v for k in ("organization", "connection", "login_hint", "prompt")
                     if (v := getattr(args, k)) is not None}
            for item in args.param:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise ConfigurationError(f"--param {item!r} is not KEY=VALUE.")
                extra[key.strip()] = value
            overrides["extra_params"] = extra
            return LoginSettings.resolve(self.config_defaults, overrides)
        except ConfigurationError as exc:
            raise UsageError(f"{exc}") from None
