"""
Self-service seat login: the holder of a client key bound to a seat
connects their own GitHub account without shell access to the host.

C{POST /_proxy/seat/login} with the key starts a device flow for the key's
seat and answers the code to enter and where; the proxy polls GitHub in the
background, stores the token as the seat's login once it is approved, and
the seat's refresher uses it from its next exchange (at once when running).
C{GET /_proxy/seat} says where that login stands.  One flow per seat at a
time: asking again while one waits answers the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..tokens import (
    DeviceCode,
    GitHubAPI,
    GitHubError,
    SeatPool,
    store_seat_token,
    stored_seats,
    wait_for_approval,
)

_log = Logger(namespace="copilot_proxy")


@dataclass
class _Flow:
    code: DeviceCode
    ends: float


class SeatLogins:
    """
    The device flows this process runs for seats.

    @param state_dir: where seat logins are stored (C{seats/NAME}).
    """

    def __init__(self, reactor: Any, github: GitHubAPI, seats: SeatPool, state_dir: Path) -> None:
        self._reactor = reactor
        self._github = github
        self._seats = seats
        self._state_dir = state_dir
        self._flows: dict[str, _Flow] = {}
        self._outcomes: dict[str, str] = {}

    def start(self, seat: str) -> Deferred[dict[str, Any]]:
        """Start (or repeat) the device flow of C{seat}: the code and where to enter it."""
        flow = self._flows.get(seat)
        if flow is not None and self._reactor.seconds() < flow.ends:
            return succeed(self._answer(seat, flow))
        d = self._github.device_code()

        def started(code: DeviceCode) -> dict[str, Any]:
            flow = _Flow(code, self._reactor.seconds() + code.expires_in)
            self._flows[seat] = flow
            self._outcomes.pop(seat, None)
            waiting = Deferred.fromCoroutine(wait_for_approval(self._reactor, self._github, code))
            waiting.addCallbacks(
                lambda token: self._approved(seat, flow, token),
                lambda failure: self._failed(seat, flow, failure),
            )
            _log.info("seat {seat}: waiting for its GitHub login (device flow)", seat=seat)
            return self._answer(seat, flow)

        return d.addCallback(started)

    def _answer(self, seat: str, flow: _Flow) -> dict[str, Any]:
        return {
            "seat": seat,
            "status": "pending",
            "user_code": flow.code.user_code,
            "verification_uri": flow.code.verification_uri,
            "expires_in": max(0, round(flow.ends - self._reactor.seconds())),
        }

    def state(self, seat: str) -> dict[str, Any]:
        """Where C{seat}'s login stands: pending, logged in, or what failed."""
        flow = self._flows.get(seat)
        if flow is not None and self._reactor.seconds() < flow.ends:
            return self._answer(seat, flow)
        document: dict[str, Any] = {
            "seat": seat,
            "status": "logged_in" if seat in stored_seats(self._state_dir) else "not_logged_in",
        }
        if seat in self._outcomes:
            document["last_login"] = self._outcomes[seat]
        return document

    def _approved(self, seat: str, flow: _Flow, token: Any) -> Deferred[None] | None:
        if self._flows.get(seat) is not flow:
            return None
        del self._flows[seat]
        try:
            store_seat_token(self._state_dir, seat, token)
        except OSError as e:
            self._outcomes[seat] = f"failed: cannot store the login ({e.strerror})"
            _log.warn("seat {seat}: cannot store its login: {why}", seat=seat, why=e.strerror)
            return None
        self._seats.reload(seat)
        self._outcomes[seat] = "approved"

        def named(user: dict[str, Any]) -> None:
            login = user.get("login")
            _log.info(
                "seat {seat}: logged in as {login}",
                seat=seat,
                login=login if isinstance(login, str) else "an unnamed account",
            )

        d = self._github.user(token)
        return d.addCallbacks(named, lambda _: None)

    def _failed(self, seat: str, flow: _Flow, failure: Failure) -> None:
        if self._flows.get(seat) is flow:
            del self._flows[seat]
        why = str(failure.value) if failure.check(GitHubError) else "the login did not complete"
        self._outcomes[seat] = f"failed: {why}"
        _log.warn("seat {seat}: login failed: {why}", seat=seat, why=why)
