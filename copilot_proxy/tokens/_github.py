"""
The GitHub control plane: the device flow, the Copilot token exchange and the
account calls (C{/user}, C{/copilot_internal/user}).

These are a few small JSON calls every half hour, so they go through treq,
unlike the proxied traffic (see L{copilot_proxy.upstream}).  Redirects are
never followed: a redirect must not carry a GitHub token to another place.

Every failure is one of two exceptions whose message is one line for a
person and never holds a token: L{GitHubUnavailable} (transient: try again
later) and L{GitHubRefused} (this GitHub token will not work: log in again).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from ..settings import ConfigError, upstream_base
from ..upstream import EndpointPerOrigin, QuietPool
from ..wire import ForwardProxy, Secret

# The OAuth app of the Copilot editor plugins: the only client id whose
# tokens the Copilot token exchange accepts.
CLIENT_ID = "Iv1.b507a08c87ecfe98"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# What the Copilot service expects an editor to say about itself (see
# notes/copilot-api.md); stale versions get refused upstream, so they are kept
# in one place.
EDITOR_HEADERS: Mapping[str, str] = {
    "editor-version": "vscode/1.104.3",
    "editor-plugin-version": "copilot-chat/0.26.7",
    "user-agent": "GitHubCopilotChat/0.26.7",
    "x-github-api-version": "2025-04-01",
}

_T = TypeVar("_T")


class GitHubError(Exception):
    """A control-plane call failed; the message is one secret-free line."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached or failed: the same call may work later."""


class GitHubRefused(GitHubError):
    """
    GitHub refused this GitHub token (revoked, expired, or no Copilot access):
    retrying with the same token is pointless.
    """


@dataclass(frozen=True)
class CopilotToken:
    """
    A Copilot session token as the exchange handed it out.

    @ivar expires_at: POSIX time after which the Copilot API refuses it.
    @ivar refresh_in: seconds after the exchange at which GitHub suggests
        getting a new one, or L{None} when it did not say.
    @ivar api: the Copilot API base URL for this account (checked, without a
        trailing slash), or L{None} when the answer named none.
    """

    token: Secret
    expires_at: float
    refresh_in: float | None
    api: bytes | None

    @property
    def authorization(self) -> bytes:
        """The C{Authorization} header value that carries this token."""
        return b"Bearer " + self.token.reveal().encode("ascii")


@dataclass(frozen=True)
class DeviceCode:
    """What the device flow's first step returns (RFC 8628 section 3.2)."""

    device_code: Secret
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float


def parse_copilot_token(body: Any) -> CopilotToken:
    """
    Read the token exchange's JSON answer.

    @raise GitHubUnavailable: when the answer lacks a usable token or expiry.
    """
    if not isinstance(body, dict):
        raise GitHubUnavailable("the Copilot token exchange answered something that is not JSON")
    token, expires_at = body.get("token"), body.get("expires_at")
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        raise GitHubUnavailable("the Copilot token exchange answered without a usable token")
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
        raise GitHubUnavailable("the Copilot token exchange answered without expires_at")
    refresh_in = body.get("refresh_in")
    if not isinstance(refresh_in, (int, float)) or isinstance(refresh_in, bool) or refresh_in <= 0:
        refresh_in = None
    api: bytes | None = None
    endpoints = body.get("endpoints")
    if isinstance(endpoints, dict) and isinstance(endpoints.get("api"), str):
        try:
            api = upstream_base(endpoints["api"])
        except ConfigError:
            api = None
    expiry = _finite(expires_at)
    if expiry is None:
        raise GitHubUnavailable("the Copilot token exchange answered an absurd expiry")
    hint = None if refresh_in is None else _finite(refresh_in)
    return CopilotToken(Secret(token), expiry, hint, api)


def _finite(number: float) -> float | None:
    """C{number} as a finite float, or L{None} (JSON allows 1e999 and NaN)."""
    try:
        value = float(number)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else ""


class GitHubAPI:
    """
    The calls this project makes to GitHub, with their errors sorted into
    L{GitHubUnavailable} and L{GitHubRefused}.

    @param github_url: the web root (device flow), e.g. C{https://github.com}.
    @param api_url: the REST root, e.g. C{https://api.github.com} or a GitHub
        Enterprise Server's C{https://ghe.example/api/v3}.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        github_url: str = "https://github.com",
        api_url: str = "https://api.github.com",
        timeout: float = 30.0,
        proxy_for: Callable[[str], ForwardProxy | None] | None = None,
    ) -> None:
        """
        @param proxy_for: the HTTP proxy to tunnel through for a URL (from
            C{HTTPS_PROXY} and C{NO_PROXY}), or L{None} to connect directly.
        """
        import treq.client

        self._reactor = reactor
        self.github_url = github_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self._timeout = timeout
        # A call every half hour does not need idle connections kept open.
        pool = QuietPool(reactor, persistent=False)  # type: ignore[no-untyped-call]
        if proxy_for is None:
            agent = Agent(reactor, pool=pool, connectTimeout=timeout)
        else:
            endpoints = EndpointPerOrigin(reactor, BrowserLikePolicyForHTTPS(), timeout, proxy_for)
            agent = Agent.usingEndpointFactory(reactor, endpoints, pool=pool)
        self._http = treq.client.HTTPClient(agent)

    def __repr__(self) -> str:
        return f"GitHubAPI({self.github_url!r}, {self.api_url!r})"

    def _deferred(self, coroutine: Coroutine[Any, Any, _T]) -> Deferred[_T]:
        d = Deferred.fromCoroutine(coroutine)
        d.addTimeout(self._timeout, self._reactor)
        seconds = self._timeout

        def timed_out(failure: Failure) -> Failure:
            if failure.check(TimeoutError):
                return Failure(GitHubUnavailable(f"GitHub did not answer within {seconds:g} s"))
            return failure

        return d.addErrback(timed_out)

    async def _call(
        self,
        method: str,
        url: str,
        what: str,
        headers: Mapping[str, str],
        body: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """
        One request; returns the status and the decoded JSON body (L{None}
        when the body is not JSON).
        """
        all_headers: dict[bytes | str, bytes | str] = {"accept": "application/json"}
        all_headers.update(headers.items())
        try:
            if body is None:
                response = await self._http.request(
                    method, url, headers=all_headers, allow_redirects=False
                )
            else:
                response = await self._http.request(
                    method, url, headers=all_headers, json=dict(body), allow_redirects=False
                )
            raw = await response.content()
        except CancelledError:
            raise
        except Exception as e:
            reason = _describe(e)
            raise GitHubUnavailable(f"GitHub is unreachable ({what}): {reason}") from None
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = None
        return response.code, decoded

    def _github_headers(self, github_token: Secret) -> dict[str, str]:
        return {"authorization": "token " + github_token.reveal(), **EDITOR_HEADERS}

    # The Copilot token ------------------------------------------------

    def exchange(self, github_token: Secret) -> Deferred[CopilotToken]:
        """
        Trade a GitHub OAuth token for a Copilot session token.

        Fails with L{GitHubRefused} when GitHub says the GitHub token is bad
        (401) or its account has no Copilot (403, 404), with
        L{GitHubUnavailable} for anything that may pass.
        """
        return self._deferred(self._exchange(github_token))

    async def _exchange(self, github_token: Secret) -> CopilotToken:
        what = "to the Copilot token exchange"
        code, body = await self._call(
            "GET",
            self.api_url + "/copilot_internal/v2/token",
            what,
            self._github_headers(github_token),
        )
        if code == 401:
            raise GitHubRefused(
                "GitHub refused the GitHub token (revoked or expired): run `copilot-proxy login`"
            )
        if code in (403, 404):
            raise GitHubRefused(
                f"GitHub answered {code} {what}: this GitHub account has no Copilot access; "
                "check the subscription or run `copilot-proxy login` with another account"
            )
        if code != 200:
            raise GitHubUnavailable(f"GitHub answered {code} {what}")
        return parse_copilot_token(body)

    # Account information ----------------------------------------------

    def user(self, github_token: Secret) -> Deferred[dict[str, Any]]:
        """The account behind a GitHub token (C{GET /user}); C{login} names it."""
        return self._deferred(self._get_json("/user", "to /user", github_token))

    def copilot_user(self, github_token: Secret) -> Deferred[dict[str, Any]]:
        """The account's Copilot plan and quotas (C{GET /copilot_internal/user})."""
        return self._deferred(
            self._get_json("/copilot_internal/user", "to the Copilot quota call", github_token)
        )

    async def _get_json(self, path: str, what: str, github_token: Secret) -> dict[str, Any]:
        code, body = await self._call(
            "GET", self.api_url + path, what, self._github_headers(github_token)
        )
        if code == 401:
            raise GitHubRefused("GitHub refused the GitHub token: run `copilot-proxy login`")
        if code != 200 or not isinstance(body, dict):
            raise GitHubUnavailable(f"GitHub answered {code} {what}")
        return body

    # The device flow (RFC 8628) ---------------------------------------

    def device_code(self) -> Deferred[DeviceCode]:
        """Start a device login: a code for the user to enter on GitHub."""
        return self._deferred(self._device_code())

    async def _device_code(self) -> DeviceCode:
        what = "to the device code request"
        code, body = await self._call(
            "POST",
            self.github_url + "/login/device/code",
            what,
            {"user-agent": EDITOR_HEADERS["user-agent"]},
            {"client_id": CLIENT_ID, "scope": "read:user"},
        )
        if code != 200 or not isinstance(body, dict):
            raise GitHubUnavailable(f"GitHub answered {code} {what}")
        try:
            return DeviceCode(
                device_code=Secret(str(body["device_code"])),
                user_code=str(body["user_code"]),
                verification_uri=str(body["verification_uri"]),
                expires_in=float(body.get("expires_in", 900)),
                interval=float(body.get("interval", 5)),
            )
        except (KeyError, TypeError, ValueError):
            raise GitHubUnavailable(f"GitHub answered {what} without a device code") from None

    def poll_device(self, device: DeviceCode) -> Deferred[Secret | str]:
        """
        Ask once whether the user has approved the device login.

        @return: a Deferred firing with the GitHub token once approved, else
            with the RFC 8628 error code (C{authorization_pending},
            C{slow_down}, C{expired_token}, C{access_denied}, ...).
        """
        return self._deferred(self._poll_device(device))

    async def _poll_device(self, device: DeviceCode) -> Secret | str:
        what = "to the device login poll"
        code, body = await self._call(
            "POST",
            self.github_url + "/login/oauth/access_token",
            what,
            {"user-agent": EDITOR_HEADERS["user-agent"]},
            {
                "client_id": CLIENT_ID,
                "device_code": device.device_code.reveal(),
                "grant_type": DEVICE_GRANT,
            },
        )
        if isinstance(body, dict):
            token = body.get("access_token")
            if isinstance(token, str) and token:
                return Secret(token)
            error = body.get("error")
            if isinstance(error, str) and error:
                return error
        raise GitHubUnavailable(f"GitHub answered {code} {what} with neither token nor error")


def _describe(error: BaseException) -> str:
    """A short, secret-free reason for a failed HTTP call."""
    # Twisted's client errors (ResponseFailed, ResponseNeverReceived...) wrap
    # the real causes, as Failures, in a "reasons" list of no declared type.
    reasons = getattr(error, "reasons", None)
    if reasons:
        first = reasons[0]
        value = first.value if isinstance(first, Failure) else first
        if isinstance(value, BaseException):
            return _describe(value)
    return _one_line(str(error)) or type(error).__name__
