"""
Seats: named GitHub logins the proxy holds, one per person, so that each
client key bound to a seat (C{KEY alice seat=alice}) spends that person's
own Copilot seat.

A seat's GitHub token lives in C{<state dir>/seats/<name>}, in the format of
the default login's C{github-token} (0600, written atomically).  Each seat
in use has a refresher of its own (L{CopilotTokenRefresher}), started on
first use and stopped after L{IDLE_AFTER} seconds without a request, with
the same renewal, 401 healing and outage behaviour as the main login; it
re-reads the seat's file, so a new login heals a revoked seat without a
restart.  A seat follows the API base its own Copilot token names
(C{endpoints.api}): a Business seat and an individual one reach different
hosts.

Tokens are never shared between seats: each seat's refresher holds its own,
and this process's only (they are not written to Redis: a Copilot token is a
bearer credential worth keeping in one place, and an exchange per process
and seat every half hour costs nothing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..wire import Secret
from ._github import CopilotToken, GitHubRefused
from ._refresh import LOGIN_HINT, CopilotTokenRefresher
from ._store import read_token_file, write_secret_file

_log = Logger(namespace="copilot_proxy")

SEATS_DIR = "seats"
#: Seconds without a request after which a seat stops renewing its token.
IDLE_AFTER = 15 * 60.0
# The characters of a client key's name (a key names its seat).
_SEAT_NAME = re.compile(r"[A-Za-z0-9._@:+-]{1,64}")


def check_seat_name(name: str) -> str:
    """
    A seat's name: 1-64 letters, digits or C{._@:+-} (it names a file).

    @raise ValueError: with a message for a user.
    """
    if not _SEAT_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"a seat name is 1-64 letters, digits or ._@:+- characters, not {name!r}")
    return name


def seats_dir(state_dir: Path) -> Path:
    return state_dir / SEATS_DIR


def seat_token_path(state_dir: Path, name: str) -> Path:
    """Where the GitHub token of seat C{name} is kept."""
    return seats_dir(state_dir) / check_seat_name(name)


def store_seat_token(state_dir: Path, name: str, token: Secret) -> Path:
    """
    Store seat C{name}'s GitHub token (0600, atomically, in a 0700
    directory); the seat's refresher picks it up at its next exchange.
    """
    directory = seats_dir(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_secret_file(directory, check_seat_name(name), token)


def read_seat_token(state_dir: Path, name: str) -> Secret | None:
    """Seat C{name}'s GitHub token, or L{None} when it has no usable login."""
    return read_token_file(seat_token_path(state_dir, name))


def remove_seat_token(state_dir: Path, name: str) -> bool:
    """Forget seat C{name}'s login; L{True} when there was one."""
    try:
        seat_token_path(state_dir, name).unlink()
    except FileNotFoundError:
        return False
    return True


def stored_seats(state_dir: Path) -> list[str]:
    """The names of the seats logged in, sorted."""
    try:
        names = os.listdir(seats_dir(state_dir))
    except OSError:
        return []
    return sorted(n for n in names if _SEAT_NAME.fullmatch(n) and not n.startswith("."))


class Seat:
    """
    One seat in use: its token source and the API base its token names.

    @ivar name: the seat's name.
    @ivar tokens: the seat's own L{CopilotTokenRefresher}.
    @ivar base: the API base of the seat's latest Copilot token, or L{None}
        (then the proxy's upstream).
    """

    def __init__(self, name: str, tokens: CopilotTokenRefresher) -> None:
        self.name = name
        self.tokens = tokens
        self.base: bytes | None = None
        self.last_used = 0.0

    def __repr__(self) -> str:
        return f"Seat({self.name})"


class SeatPool:
    """
    The seats of one process, started on first use.

    @param exchange: trades a GitHub token for a Copilot token (the GitHub
        API's token exchange).
    @param follow_api: whether a seat's requests go to the API base its
        token names (else to the proxy's upstream, as chosen by the user).
    @param refresher_settings: timings passed to each refresher.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        state_dir: Path,
        exchange: Callable[[Secret], Deferred[CopilotToken]],
        follow_api: bool = True,
        idle_after: float = IDLE_AFTER,
        **refresher_settings: float,
    ) -> None:
        self._reactor = reactor
        self.state_dir = state_dir
        self._exchange = exchange
        self._follow_api = follow_api
        self._idle_after = idle_after
        self._settings = refresher_settings
        self._seats: dict[str, Seat] = {}
        self._sweeper: LoopingCall | None = None

    def __iter__(self) -> Iterator[Seat]:
        return iter(list(self._seats.values()))

    def __len__(self) -> int:
        return len(self._seats)

    def seat(self, name: str) -> Seat:
        """Seat C{name}, its refresher started if it was not running."""
        seat = self._seats.get(name)
        if seat is None:
            seat = self._start(name)
        seat.last_used = self._reactor.seconds()
        return seat

    def _start(self, name: str) -> Seat:
        def github_token() -> Secret | None:
            return read_seat_token(self.state_dir, name)

        holder: list[Seat] = []

        def follow(token: CopilotToken) -> None:
            if self._follow_api and token.api is not None and holder:
                holder[0].base = token.api

        hint = f"run `copilot-proxy login --seat {name}` or POST /_proxy/seat/login"

        def exchange(github: Secret) -> Deferred[CopilotToken]:
            def named(failure: Failure) -> Failure:
                # GitHub's refusals name the default login's command.
                if failure.check(GitHubRefused):
                    text = str(failure.value).replace(LOGIN_HINT, hint)
                    return Failure(GitHubRefused(f"seat {name}: {text}"))
                return failure

            return self._exchange(github).addErrback(named)

        refresher = CopilotTokenRefresher(
            self._reactor,
            exchange,
            github_token,
            on_token=follow,
            login_hint=f"seat {name} has no GitHub login: {hint}",
            **self._settings,  # type: ignore[arg-type]
        )
        seat = Seat(name, refresher)
        holder.append(seat)
        self._seats[name] = seat
        refresher.startService()
        _log.info("seat {seat}: started renewing its Copilot token", seat=name)
        self._sweep_idle()
        return seat

    def reload(self, name: str) -> None:
        """Seat C{name} has a new login: use it now if the seat is running."""
        seat = self._seats.get(name)
        if seat is not None:
            seat.tokens.reload()

    def _sweep_idle(self) -> None:
        if self._sweeper is not None:
            return
        self._sweeper = LoopingCall(self._stop_idle)
        self._sweeper.clock = self._reactor
        self._sweeper.start(max(1.0, self._idle_after / 4), now=False)

    def _stop_idle(self) -> None:
        now = self._reactor.seconds()
        for name, seat in list(self._seats.items()):
            if now - seat.last_used > self._idle_after:
                del self._seats[name]
                seat.tokens.stopService()
                _log.info("seat {seat}: idle, stopped renewing", seat=name)
        if not self._seats and self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None

    def stop(self) -> None:
        """Stop every seat's renewals."""
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None
        for seat in self._seats.values():
            seat.tokens.stopService()
        self._seats.clear()
