"""
Waiting for a device login (RFC 8628) to be approved: the loop that both
C{copilot-proxy login} and the self-service seat login run.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import deferLater

from ..wire import Secret
from ._github import DeviceCode, GitHubAPI, GitHubError, GitHubUnavailable

# RFC 8628 section 3.5: on slow_down, poll this many seconds less often.
SLOW_DOWN_STEP = 5.0


class DeviceLoginFailed(GitHubError):
    """The device login ended without a token; the message says why, for a user."""


async def wait_for_approval(reactor: Any, api: GitHubAPI, device: DeviceCode) -> Secret:
    """
    Poll at the interval GitHub gave (5 s slower after each C{slow_down})
    until the user approves C{device}'s code, and return the GitHub token.

    @raise DeviceLoginFailed: when the code expires or the login is denied.
    """
    interval = max(device.interval, 0.0)
    deadline = reactor.seconds() + device.expires_in
    while True:
        if reactor.seconds() + interval > deadline:
            raise DeviceLoginFailed("the code expired before it was entered: log in again")
        await deferLater(reactor, interval, lambda: None)
        try:
            answer = await api.poll_device(device)
        except GitHubUnavailable:
            continue  # a blip: the code is still good until the deadline
        if isinstance(answer, Secret):
            return answer
        if answer == "slow_down":
            interval += SLOW_DOWN_STEP
        elif answer == "expired_token":
            raise DeviceLoginFailed("the code expired before it was entered: log in again")
        elif answer == "access_denied":
            raise DeviceLoginFailed("the login was denied on GitHub")
        elif answer != "authorization_pending":
            raise DeviceLoginFailed(f"GitHub refused the device login: {answer[:100]}")
