"""
The C{copilot-proxy} command: C{login}, C{status} and C{logout}.

Like the tap module, this is an entry point: it alone reads its argv and the
environment, and passes values down.  Every failure ends with one line on
stderr and a non-zero exit, never a traceback; no token is ever printed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any, NoReturn, TextIO

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react
from twisted.python import usage

from .._version import __version__
from ..settings import ConfigError, upstream_base
from ..tokens import (
    Credential,
    CredentialKind,
    CredentialSettings,
    GitHubAPI,
    GitHubError,
    GitHubUnavailable,
    find_credential,
    remove_token,
    store_token,
    stored_token_path,
    token_expiry,
)
from ..wire import ProxySettingError, Secret, proxy_chooser

# RFC 8628 section 3.5: on slow_down, poll this many seconds less often.
SLOW_DOWN_STEP = 5.0


class CommandFailed(Exception):
    """A command cannot go on; the message is the one line the user sees."""


class _GitHubOptions(usage.Options):
    optParameters = [
        [
            "github-url",
            None,
            "https://github.com",
            "GitHub web root (GitHub Enterprise Server: your own).",
        ],
        [
            "github-api-url",
            None,
            "https://api.github.com",
            "GitHub REST API root (GitHub Enterprise Server: https://HOST/api/v3).",
        ],
        [
            "state-dir",
            None,
            None,
            "Directory of the stored login. [else $STATE_DIRECTORY, else "
            "$XDG_CONFIG_HOME/copilot-proxy, default ~/.config/copilot-proxy]",
        ],
    ]


class LoginOptions(_GitHubOptions):
    synopsis = "[options]"
    longdesc = (
        "Log in with a GitHub account through the device flow and store its token "
        "(mode 0600) for the proxy."
    )


class LogoutOptions(_GitHubOptions):
    synopsis = "[options]"
    longdesc = "Forget the stored login."


class StatusOptions(_GitHubOptions):
    synopsis = "[options]"
    longdesc = (
        "Show which credential the proxy would use and where it comes from, the "
        "GitHub account, the Copilot token's expiry, the API base URL, the plan and "
        "the premium request quota left."
    )
    optParameters = [
        ["token-file", None, None, "As for twistd copilot-proxy."],
        ["github-token-file", None, None, "As for twistd copilot-proxy."],
        ["upstream", None, None, "As for twistd copilot-proxy."],
    ]


class CommandOptions(usage.Options):
    synopsis = "login | status | logout [options]"
    longdesc = (
        "Manage the GitHub login of copilot-proxy.  Run the proxy itself with "
        "`twistd -n copilot-proxy`."
    )
    subCommands = [
        ["login", None, LoginOptions, "Log in with a GitHub account (device flow)."],
        ["status", None, StatusOptions, "Show the credential, token expiry and quota."],
        ["logout", None, LogoutOptions, "Forget the stored login."],
    ]

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        print(f"copilot-proxy {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("give a command: login, status or logout (see --help)")


def _settings(options: usage.Options, env: Mapping[str, str]) -> CredentialSettings:
    return CredentialSettings.from_options(
        env,
        token_file=options.get("token-file"),
        github_token_file=options.get("github-token-file"),
        state_dir=options["state-dir"],
        github_url=options["github-url"],
    )


def _api(reactor: Any, options: usage.Options, env: Mapping[str, str]) -> GitHubAPI:
    try:
        web = upstream_base(options["github-url"]).decode()
        api = upstream_base(options["github-api-url"]).decode()
        proxies = proxy_chooser(env, web, api)
    except (ConfigError, ProxySettingError) as e:
        raise CommandFailed(str(e)) from None
    return GitHubAPI(reactor, web, api, proxy_for=proxies)


def _when(seconds: float, now: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
    left = seconds - now
    if left <= 0:
        return f"expired at {stamp}"
    return f"valid until {stamp} (in {_duration(left)})"


def _duration(seconds: float) -> str:
    if seconds < 120 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


# login -----------------------------------------------------------------


async def login(reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO) -> None:
    """
    The device flow (RFC 8628): show the code, poll at the given interval
    (5 s slower after each C{slow_down}), store the token.
    """
    api = _api(reactor, options, env)
    settings = _settings(options, env)
    try:
        device = await api.device_code()
    except GitHubError as e:
        raise CommandFailed(str(e)) from None
    out.write("To log in, open this page:\n")
    out.write(f"{device.verification_uri}\n")
    out.write("and enter this code:\n")
    out.write(f"{device.user_code}\n")
    out.write("Waiting for GitHub...\n")
    out.flush()
    interval = max(device.interval, 0.0)
    deadline = reactor.seconds() + device.expires_in
    token: Secret | None = None
    while token is None:
        if reactor.seconds() + interval > deadline:
            raise CommandFailed("the code expired before it was entered: run login again")
        await deferLater(reactor, interval, lambda: None)
        try:
            answer = await api.poll_device(device)
        except GitHubUnavailable:
            continue  # a blip: the code is still good until the deadline
        if isinstance(answer, Secret):
            token = answer
        elif answer == "slow_down":
            interval += SLOW_DOWN_STEP
        elif answer == "expired_token":
            raise CommandFailed("the code expired before it was entered: run login again")
        elif answer == "access_denied":
            raise CommandFailed("the login was denied on GitHub")
        elif answer != "authorization_pending":
            raise CommandFailed(f"GitHub refused the device login: {answer}")
    try:
        path = store_token(settings.state_dir, token)
    except OSError as e:
        raise CommandFailed(
            f"cannot store the login in {settings.state_dir}: {e.strerror}"
        ) from None
    try:
        who = (await api.user(token)).get("login")
    except GitHubError:
        who = None
    account = f" as {who}" if isinstance(who, str) else ""
    out.write(f"Logged in{account}; the GitHub token is stored in {path}\n")
    credential = _find(settings)
    if credential is not None and not credential.stored_login:
        out.write(f"Note: {credential.origin} comes first, so the proxy uses that instead.\n")


def _find(settings: CredentialSettings) -> Credential | None:
    try:
        return find_credential(settings)
    except ConfigError:
        return None


# logout ----------------------------------------------------------------


async def logout(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
    """Remove the stored login; say which credential, if any, still applies."""
    settings = _settings(options, env)
    path = stored_token_path(settings.state_dir)
    try:
        removed = remove_token(settings.state_dir)
    except OSError as e:
        raise CommandFailed(f"cannot remove {path}: {e.strerror}") from None
    if removed:
        out.write(f"Logged out: removed {path}\n")
        out.write(
            "The token itself stays valid on GitHub until revoked there "
            "(Settings > Applications).\n"
        )
    else:
        out.write(f"Not logged in: there is no stored login at {path}\n")
    remaining = _find(settings)
    if remaining is not None:
        out.write(f"Note: the proxy would still use {remaining.origin}.\n")


# status ----------------------------------------------------------------


async def status(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
    """Show the credential in use and what GitHub says about it."""
    settings = _settings(options, env)
    try:
        credential = find_credential(settings)
    except ConfigError as e:
        raise CommandFailed(str(e)) from None
    chosen = options["upstream"] or env.get("COPILOT_UPSTREAM")
    now = reactor.seconds()
    if credential.kind is CredentialKind.STATIC:
        out.write(f"credential: {credential.origin} (a static Copilot token, never renewed)\n")
        expiry = token_expiry(credential.secret.reveal())
        if expiry is None:
            out.write("Copilot token: no expiry in the token\n")
        else:
            out.write(f"Copilot token: {_when(expiry, now)}\n")
        out.write(f"API base: {chosen or 'https://api.individual.githubcopilot.com'}\n")
        out.write("plan and quota: unknown (they need a GitHub login)\n")
        return
    assert credential.kind is CredentialKind.GITHUB
    out.write(f"credential: {credential.origin} (a GitHub token)\n")
    api = _api(reactor, options, env)
    try:
        user = await api.user(credential.secret)
        if isinstance(user.get("login"), str):
            out.write(f"GitHub account: {user['login']}\n")
        token = await api.exchange(credential.secret)
    except GitHubError as e:
        raise CommandFailed(str(e)) from None
    out.write(f"Copilot token: {_when(token.expires_at, now)}; the proxy renews it\n")
    api_base = chosen or (token.api.decode() if token.api else None)
    out.write(f"API base: {api_base or 'https://api.individual.githubcopilot.com'}\n")
    try:
        usage_info = await api.copilot_user(credential.secret)
    except GitHubError as e:
        out.write(f"plan and quota: unknown ({e})\n")
        return
    for line in _quota_lines(usage_info):
        out.write(line + "\n")


def _quota_lines(info: Mapping[str, Any]) -> list[str]:
    """The plan and quota lines of C{status}, from C{copilot_internal/user}."""
    lines = []
    plan = info.get("copilot_plan")
    sku = info.get("access_type_sku")
    if isinstance(plan, str):
        lines.append(f"plan: {plan}" + (f" ({sku})" if isinstance(sku, str) else ""))
    snapshots = info.get("quota_snapshots")
    reset = info.get("quota_reset_date")
    resets = f", resets {reset}" if isinstance(reset, str) else ""
    if isinstance(snapshots, dict):
        for key, label in (("premium_interactions", "premium requests"), ("chat", "chat")):
            quota = snapshots.get(key)
            if not isinstance(quota, dict):
                continue
            if quota.get("unlimited"):
                lines.append(f"{label}: unlimited")
                continue
            remaining, entitlement = quota.get("remaining"), quota.get("entitlement")
            if isinstance(remaining, (int, float)) and isinstance(entitlement, (int, float)):
                percent = quota.get("percent_remaining")
                share = f" ({percent:.0f}%)" if isinstance(percent, (int, float)) else ""
                lines.append(f"{label}: {remaining:g} of {entitlement:g} left{share}{resets}")
    return lines


# running ---------------------------------------------------------------

_COMMANDS = {"login": login, "status": status, "logout": logout}


async def _run(reactor: Any, options: CommandOptions, env: Mapping[str, str]) -> None:
    command = _COMMANDS[str(options.subCommand)]
    try:
        await command(reactor, options.subOptions, env, sys.stdout)
    except CommandFailed as e:
        _exit_with(str(e))
    except Exception as e:  # the promise is one line, never a traceback
        first = (str(e).strip().splitlines() or [""])[0][:200]
        _exit_with(f"unexpected error: {type(e).__name__}: {first}")
    sys.stdout.flush()


def _exit_with(message: str) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(f"copilot-proxy: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def main(argv: list[str] | None = None) -> NoReturn:
    """The console script C{copilot-proxy}."""
    options = CommandOptions()  # type: ignore[no-untyped-call]
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)  # type: ignore[no-untyped-call]
    except usage.UsageError as e:
        _exit_with(str(e))

    def run(reactor: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(_run(reactor, options, os.environ))

    react(run)


if __name__ == "__main__":
    main()
