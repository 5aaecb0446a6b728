"""
The C{copilot-proxy} command: C{login}, C{status}, C{logout} and C{usage}.

C{login}, C{logout} and C{status} also manage seats: with C{--seat NAME} the
first two act on that seat's GitHub login (C{seats/NAME} in the state
directory) instead of the default one, and C{status} lists every seat after
the default credential (C{status --seat NAME}: that seat alone).

Like the tap module, this is an entry point: it alone reads its argv and the
environment, and passes values down.  Every failure ends with one line on
stderr and a non-zero exit, never a traceback; no token is ever printed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit, urlunsplit

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.task import react
from twisted.python import usage
from twisted.web.client import Agent, ResponseFailed, ResponseNeverReceived

from .._version import __version__
from ..settings import DEFAULT_REDIS_PREFIX, ConfigError, redis_prefix, upstream_base
from ..shared import COUNTERS, DEFAULT_USAGE_DAYS, Ledger
from ..tokens import (
    Credential,
    CredentialKind,
    CredentialSettings,
    DeviceLoginFailed,
    GitHubAPI,
    GitHubError,
    GitHubRefused,
    check_seat_name,
    find_credential,
    read_seat_token,
    remove_seat_token,
    remove_token,
    seat_token_path,
    state_dir,
    store_seat_token,
    store_token,
    stored_seats,
    stored_token_path,
    token_expiry,
    wait_for_approval,
)
from ..upstream import QuietPool
from ..wire import ProxySettingError, proxy_chooser
from ._ledger_store import open_ledger_store


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


class _SeatOptions(_GitHubOptions):
    """Options of the commands that can act on one seat (C{--seat NAME})."""

    def postOptions(self) -> None:
        if self["seat"] is not None:
            try:
                check_seat_name(self["seat"])
            except ValueError as e:
                raise usage.UsageError(str(e)) from None


class LoginOptions(_SeatOptions):
    synopsis = "[options]"
    longdesc = (
        "Log in with a GitHub account through the device flow and store its token "
        "(mode 0600) for the proxy: as the default login, or with --seat as the "
        "login of that seat (for the client keys bound to it with seat=NAME)."
    )
    optParameters = [
        ["seat", None, None, "Log in this seat instead of the default login."],
    ]


class LogoutOptions(_SeatOptions):
    synopsis = "[options]"
    longdesc = "Forget the stored login (with --seat, that seat's login)."
    optParameters = [
        ["seat", None, None, "Forget this seat's login instead of the default one."],
    ]


class StatusOptions(_SeatOptions):
    synopsis = "[options]"
    longdesc = (
        "Show which credential the proxy would use and where it comes from, the "
        "GitHub account, the Copilot token's expiry, the API base URL, the plan and "
        "the premium request quota left, then the same for each seat.  With --seat, "
        "only that seat.  With --proxy, also the quotas a running proxy's latest "
        "upstream answers showed (session and weekly limits included)."
    )
    optParameters = [
        ["seat", None, None, "Show only this seat."],
        ["token-file", None, None, "As for twistd copilot-proxy."],
        ["github-token-file", None, None, "As for twistd copilot-proxy."],
        ["upstream", None, None, "As for twistd copilot-proxy."],
        [
            "proxy",
            None,
            None,
            "URL of a running proxy (e.g. http://127.0.0.1:8080) whose health page "
            "shows the quotas; a URL with a path names its admin prefix instead "
            "of /_proxy/.",
        ],
    ]


class UsageOptions(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Show what each client key used, per model, over the last days (UTC), "
        "from the proxy's usage ledger."
    )
    optFlags = [["json", None, "Print the usage document of GET /_proxy/usage instead."]]
    optParameters = [
        ["days", None, DEFAULT_USAGE_DAYS, "Days to cover, today included.", int],
        ["key", None, None, "Only this client key (its label)."],
        [
            "state-dir",
            None,
            None,
            "The proxy's state directory, which holds the ledger. [as for login]",
        ],
        ["redis", None, None, "The ledger is in this Redis. [else $COPILOT_PROXY_REDIS]"],
        ["redis-prefix", None, DEFAULT_REDIS_PREFIX, "The deployment's --redis-prefix."],
    ]

    def postOptions(self) -> None:
        if self["days"] < 1:
            raise usage.UsageError("--days must be at least 1")


class CommandOptions(usage.Options):
    synopsis = "login | status | logout | usage [options]"
    longdesc = (
        "Manage the GitHub login of copilot-proxy.  Run the proxy itself with "
        "`twistd -n copilot-proxy`."
    )
    subCommands = [
        ["login", None, LoginOptions, "Log in with a GitHub account (device flow)."],
        ["status", None, StatusOptions, "Show the credential, seats, token expiry and quota."],
        ["logout", None, LogoutOptions, "Forget the stored login or a seat's."],
        ["usage", None, UsageOptions, "Show the usage per client key and model."],
    ]

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        print(f"copilot-proxy {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("give a command: login, status, logout or usage (see --help)")


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
    (5 s slower after each C{slow_down}), store the token as the default
    login or, with C{--seat NAME}, as that seat's.
    """
    api = _api(reactor, options, env)
    settings = _settings(options, env)
    seat: str | None = options["seat"]
    try:
        device = await api.device_code()
    except GitHubError as e:
        raise CommandFailed(str(e)) from None
    whom = "" if seat is None else f" seat {seat}"
    out.write(f"To log in{whom}, open this page:\n")
    out.write(f"{device.verification_uri}\n")
    out.write("and enter this code:\n")
    out.write(f"{device.user_code}\n")
    out.write("Waiting for GitHub...\n")
    out.flush()
    try:
        token = await wait_for_approval(reactor, api, device)
    except DeviceLoginFailed as e:
        message = str(e).replace("log in again", "run login again")
        raise CommandFailed(message) from None
    try:
        if seat is None:
            path = store_token(settings.state_dir, token)
        else:
            path = store_seat_token(settings.state_dir, seat, token)
    except OSError as e:
        raise CommandFailed(
            f"cannot store the login in {settings.state_dir}: {e.strerror}"
        ) from None
    try:
        who = (await api.user(token)).get("login")
    except GitHubError:
        who = None
    account = f" as {who}" if isinstance(who, str) else ""
    if seat is not None:
        out.write(f"Seat {seat} logged in{account}; the GitHub token is stored in {path}\n")
        out.write(f"Client keys with seat={seat} in the keys file spend this account's seat.\n")
        return
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
    """
    Remove the stored login (or with C{--seat}, that seat's); say which
    credential, if any, still applies.
    """
    settings = _settings(options, env)
    if options["seat"] is not None:
        _logout_seat(settings, options["seat"], out)
        return
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


def _logout_seat(settings: CredentialSettings, seat: str, out: TextIO) -> None:
    path = seat_token_path(settings.state_dir, seat)
    try:
        removed = remove_seat_token(settings.state_dir, seat)
    except OSError as e:
        raise CommandFailed(f"cannot remove {path}: {e.strerror}") from None
    if removed:
        out.write(f"Seat {seat} logged out: removed {path}\n")
        out.write(
            "The token itself stays valid on GitHub until revoked there "
            "(Settings > Applications).\n"
        )
    else:
        out.write(f"Seat {seat} is not logged in: there is no login at {path}\n")


# status ----------------------------------------------------------------


async def status(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
    """
    Show the credential in use and what GitHub says about it, then each
    seat; with C{--proxy}, then what a running proxy saw of the quotas.
    The seats and the proxy's quotas are shown even when the credential
    part failed (a proxy may run with seats only, or a credential of its
    own).  A seat GitHub refuses is a line of the report; with C{--seat},
    it is the command's failure.
    """
    proxy = options["proxy"]
    health = None if proxy is None else health_url(proxy)
    try:
        if options["seat"] is not None:
            await _one_seat_status(reactor, options, env, out)
            return
        try:
            await _credential_status(reactor, options, env, out)
        finally:
            await _seats_status(reactor, options, env, out)
    finally:
        if health is not None:
            await _proxy_status(reactor, health, out)
        else:
            await _saved_quota(reactor, options, env, out)


async def _credential_status(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
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


async def _seats_status(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
    """The C{Seats:} section: nothing when no seat is logged in."""
    directory = state_dir(options["state-dir"], env)
    seats = stored_seats(directory)
    if not seats:
        return
    api = _api(reactor, options, env)
    chosen = options["upstream"] or env.get("COPILOT_UPSTREAM")
    out.write("Seats:\n")
    for seat in seats:
        lines, _ = await _seat_lines(reactor, api, directory, seat, chosen)
        for line in lines:
            out.write(f"  {line}\n")


async def _one_seat_status(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
    seat: str = options["seat"]
    directory = state_dir(options["state-dir"], env)
    if seat not in stored_seats(directory):
        raise CommandFailed(
            f"seat {seat} is not logged in: run `copilot-proxy login --seat {seat}`"
        )
    api = _api(reactor, options, env)
    chosen = options["upstream"] or env.get("COPILOT_UPSTREAM")
    lines, failed = await _seat_lines(reactor, api, directory, seat, chosen)
    for line in lines[:-1] if failed else lines:
        out.write(line + "\n")
    if failed:
        raise CommandFailed(lines[-1])


async def _seat_lines(
    reactor: Any, api: GitHubAPI, directory: Path, seat: str, chosen: str | None
) -> tuple[list[str], bool]:
    """
    What C{status} says of one seat: its account, Copilot token expiry,
    API base, plan and quota, the details indented under the first line.

    @return: the lines, and whether the seat cannot be used as it is (then
        the last line says why and what to do).
    """
    again = f"run `copilot-proxy login --seat {seat}`"
    github_token = read_seat_token(directory, seat)
    if github_token is None:
        return [f"seat {seat}: its login file is unreadable or empty: {again}"], True
    try:
        user = await api.user(github_token)
    except GitHubRefused:
        return [f"seat {seat}: GitHub refused its login: {again}"], True
    except GitHubError as e:
        return [f"seat {seat}: unknown ({e})"], True
    who = user.get("login")
    account = who if isinstance(who, str) else "unknown"
    lines = [f"seat {seat}: GitHub account {account}"]
    try:
        token = await api.exchange(github_token)
    except GitHubRefused:
        lines.append(
            f"seat {seat}: GitHub gives account {account} no Copilot token: check its "
            f"Copilot subscription, or {again} with another account"
        )
        return lines, True
    except GitHubError as e:
        lines.append(f"seat {seat}: Copilot token unknown ({e})")
        return lines, True
    details = [f"Copilot token: {_when(token.expires_at, reactor.seconds())}; the proxy renews it"]
    api_base = chosen or (token.api.decode() if token.api else None)
    details.append(f"API base: {api_base or 'https://api.individual.githubcopilot.com'}")
    try:
        details += _quota_lines(await api.copilot_user(github_token))
    except GitHubError as e:
        details.append(f"plan and quota: unknown ({e})")
    return lines + [f"  {line}" for line in details], False


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


# The health page's upstream quota, for status --proxy.

_HEALTH_LIMIT = 1 << 20
_HEALTH_TIMEOUT = 10.0

# Quota names as people say them, in the order they matter to a user: the
# limits that stop work within hours first.
_QUOTA_LABELS = {
    "session": "session limit",
    "weekly": "weekly limit",
    "premium_interactions": "premium requests",
    "premium_models": "premium models",
    "chat": "chat",
    "completions": "completions",
}
_MAX_QUOTA_LINES = 16
_QUOTA_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def health_url(proxy: str) -> str:
    """
    The health page of the proxy at C{proxy}: C{<proxy>/_proxy/healthz}, or
    C{<proxy>/healthz} when C{proxy} has a path (a custom admin prefix).

    @raise CommandFailed: when C{proxy} is no http or https URL.
    """
    parts = urlsplit(proxy)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandFailed(f"--proxy needs an http:// or https:// URL, not {proxy!r}")
    path = parts.path if parts.path not in ("", "/") else "/_proxy/"
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((parts.scheme, parts.netloc, path + "healthz", "", ""))


async def _saved_quota(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
    """
    The quotas as the proxy last saw them, from the store it keeps them in
    (the state directory's ledger, or C{COPILOT_PROXY_REDIS}'s); nothing
    when no proxy ever kept any.
    """
    redis = env.get("COPILOT_PROXY_REDIS", "").strip() or None
    try:
        store = open_ledger_store(reactor, redis, _settings(options, env).state_dir, create=False)
        try:
            saved, seen = await store.load_quota()
        finally:
            store.close()
        board = json.loads(saved.get("board", "{}"))
    except Exception:
        return
    if not isinstance(board, dict) or seen is None:
        return
    now = reactor.seconds()
    for quota in board.values():
        if isinstance(quota, dict):
            # Written then: the countdowns are from then.
            for field in ("resets_in_s", "seen_s_ago"):
                value = _finite(quota.get(field))
                if value is not None:
                    quota[field] = value + (now - seen) * (-1 if field == "resets_in_s" else 1)
    lines = quota_lines(board)
    if lines:
        out.write(
            f"quota as the proxy's upstream answers showed it {_countdown(now - seen)} ago:\n"
        )
        for line in lines:
            out.write(f"  {line}\n")


async def _proxy_status(reactor: Any, health: str, out: TextIO) -> None:
    """The quota lines of the proxy whose health page is C{health}."""
    try:
        document = await _health_document(reactor, health)
    except Exception as e:
        out.write(f"proxy quota: unknown (cannot read {health}: {_reason(e)})\n")
        return
    board = document.get("upstream_quota") if isinstance(document, dict) else None
    if not isinstance(board, dict):
        out.write(f"proxy quota: unknown ({health} does not show it)\n")
        return
    lines = quota_lines(board)
    if not lines:
        out.write("proxy quota: none seen yet (no upstream answer since the proxy started)\n")
        return
    out.write(f"quota as the proxy's latest upstream answers showed ({health}):\n")
    for line in lines:
        out.write(f"  {line}\n")


async def _health_document(reactor: Any, url: str) -> object:
    """GET a health page and decode it (a 503 health page is still one)."""
    import treq.client

    pool = QuietPool(reactor, persistent=False)  # type: ignore[no-untyped-call]
    http = treq.client.HTTPClient(Agent(reactor, pool=pool, connectTimeout=_HEALTH_TIMEOUT))
    accept: dict[bytes | str, bytes | str] = {"accept": "application/json"}
    body = bytearray()

    def keep(data: bytes) -> None:
        body.extend(data)
        if len(body) > _HEALTH_LIMIT:
            raise ValueError("the answer is too large for a health page")

    async def get() -> None:
        response = await http.get(url, headers=accept)
        await treq.collect(response, keep)

    d = Deferred.fromCoroutine(get())
    d.addTimeout(_HEALTH_TIMEOUT, reactor)
    await d
    return json.loads(body)


def _reason(error: BaseException) -> str:
    """One short line for a failed GET: the cause Twisted wraps, if any."""
    if isinstance(error, TimeoutError):
        return f"no answer within {_HEALTH_TIMEOUT:g} s"
    if isinstance(error, (ResponseFailed, ResponseNeverReceived)) and error.reasons:
        cause = error.reasons[0].value
        if isinstance(cause, BaseException):
            return _reason(cause)
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def quota_lines(board_document: Mapping[str, Any]) -> list[str]:
    """
    The health page's C{upstream_quota} for people, one line per quota, such
    as C{session limit: 63.0% left, resets in 2 h 10 min}.

    The document comes from the network: whatever is not as a proxy writes
    it is left out (names outside C{[a-z0-9_.-]}, fields of the wrong type),
    and never more than a few lines come out.
    """
    names = [
        name
        for name in board_document
        if isinstance(name, str)
        and 0 < len(name) <= 48
        and _QUOTA_NAME_CHARACTERS.issuperset(name)
        and isinstance(board_document[name], Mapping)
    ]
    order = list(_QUOTA_LABELS)
    names.sort(key=lambda n: (order.index(n) if n in _QUOTA_LABELS else len(order), n))
    return [
        _quota_line(_QUOTA_LABELS.get(name, name.replace("_", " ")), board_document[name])
        for name in names[:_MAX_QUOTA_LINES]
    ]


def _quota_line(label: str, quota: Mapping[str, Any]) -> str:
    percent = _finite(quota.get("percent_remaining"))
    if quota.get("entitlement") == -1 and not isinstance(quota.get("entitlement"), bool):
        line = f"{label}: unlimited"
    elif percent is not None:
        line = f"{label}: {percent:.1f}% left"
    else:
        line = f"{label}: share left unknown"
    overage = _finite(quota.get("overage"))
    if overage:
        line += f", {overage:g} over the quota"
    resets_in = _finite(quota.get("resets_in_s"))
    if resets_in is not None:
        line += f", resets in {_countdown(resets_in)}" if resets_in > 0 else ", reset due"
    seen = _finite(quota.get("seen_s_ago"))
    if seen is not None and seen >= 60:
        line += f" (seen {_countdown(seen)} ago)"
    return line


def _finite(value: object) -> float | None:
    """A JSON number that is one (no C{true}, no C{NaN}), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _countdown(seconds: float) -> str:
    """C{2 h 10 min}: a span to the minute, in the two largest units."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"


# usage -----------------------------------------------------------------

# The table's columns after key and model: (heading, counter).
_USAGE_COLUMNS = (
    ("requests", "requests"),
    ("refused", "refused"),
    ("errors", "errors"),
    ("input", "input_tokens"),
    ("cached", "cached_tokens"),
    ("output", "output_tokens"),
    ("reasoning", "reasoning_tokens"),
    ("credits", "nano_aiu"),
)


async def show_usage(
    reactor: Any, options: usage.Options, env: Mapping[str, str], out: TextIO
) -> None:
    """
    Print the ledger's usage document: as a table, or as JSON with
    C{--json}.  A ledger that was never written reads as empty.
    """
    redis_url = options["redis"] or env.get("COPILOT_PROXY_REDIS") or None
    directory = state_dir(options["state-dir"], env)
    try:
        store = open_ledger_store(
            reactor,
            redis_url,
            directory,
            create=False,
            prefix=redis_prefix(options["redis-prefix"]),
        )
    except ConfigError as e:
        raise CommandFailed(str(e)) from None
    ledger = Ledger(reactor, store)
    try:
        document = await ledger.usage(options["days"], options["key"])
    except Exception as e:
        raise CommandFailed(f"cannot read the usage ledger: {e}") from None
    finally:
        await ledger.stop()
    if options["json"]:
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        for line in usage_table(document, options["key"]):
            out.write(line + "\n")


def usage_table(document: Mapping[str, Any], key: str | None = None) -> list[str]:
    """
    The lines C{copilot-proxy usage} prints for a usage document: a heading,
    one row per key and model, a total, then a row per seat and model (the
    same usage, by seat); one line when there is nothing.

    @param key: the one key the document was asked for, if any.
    """
    span = f"{document['since']} to {document['until']} (UTC)"
    keys: Mapping[str, Mapping[str, Mapping[str, int]]] = document["keys"]
    if not keys:
        whose = "" if key is None else f" for key {key}"
        return [f"No usage recorded{whose} from {span}."]
    totals = dict.fromkeys(COUNTERS, 0)
    table = [["key", "model", *(heading for heading, _ in _USAGE_COLUMNS)]]
    for key, models in keys.items():
        for model, counts in models.items():
            table.append([key, model, *_usage_cells(counts)])
            for name in COUNTERS:
                totals[name] += counts[name]
    table.append(["total", "", *_usage_cells(totals)])
    # The same usage again, by the seat that spent it (not added to the total).
    seats: Mapping[str, Mapping[str, Mapping[str, int]]] = document.get("seats", {})
    for seat, models in seats.items():
        for model, counts in models.items():
            table.append([f"seat {seat}", model, *_usage_cells(counts)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [f"Usage from {span}:"]
    for row in table:
        text = [cell.ljust(width) for cell, width in zip(row[:2], widths[:2], strict=True)]
        text += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(text).rstrip())
    return lines


def _usage_cells(counts: Mapping[str, int]) -> list[str]:
    cells = [f"{counts[name]:,}" for _, name in _USAGE_COLUMNS[:-1]]
    return [*cells, f"{counts['nano_aiu'] / 1e9:,.2f}"]


# running ---------------------------------------------------------------

_COMMANDS = {"login": login, "status": status, "logout": logout, "usage": show_usage}


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
