"""
Each process's view of itself (its requests in flight, its last errors),
published every L{PUBLISH_EVERY} seconds to the deployment's store (Redis,
or the SQLite file the workers of one host share), so that any process can
show the fleet's: the status page, answered by whichever process a load
balancer picks, shows every process's streams.

What is published holds key names, models and routes, never a key or a
token.  A process that stops publishing (it died) drops out after
L{PRESENCE_TTL} seconds.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

#: How often a process publishes its view.
PUBLISH_EVERY = 2.0
#: How long a view counts after it was published.
PRESENCE_TTL = 10.0
# A published view larger than this is not published (a process with
# thousands of streams shows its count only).
_MAX_DOCUMENT = 256 * 1024


class PresenceStore(Protocol):
    def save_presence(self, process: str, document: str, seen_at: float) -> Deferred[None]:
        """Keep C{process}'s latest view (JSON text), replacing its previous one."""

    def load_presence(self, since: float) -> Deferred[list[tuple[str, str, float]]]:
        """Every view published at C{since} or later: (process, document, seen_at)."""


def process_name() -> str:
    """This process, as the fleet tells processes apart: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Presence:
    """
    This process's publication, and the fleet's views.

    @ivar describe: what this process publishes (set once the proxy is
        built); L{None} publishes nothing.
    """

    def __init__(self, reactor: IReactorTime, store: PresenceStore) -> None:
        self._reactor = reactor
        self._store = store
        self.name = process_name()
        self.describe: Callable[[], dict[str, Any]] | None = None
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        if self._loop is None:
            self._loop = LoopingCall(self.publish)
            self._loop.clock = self._reactor
            self._loop.start(PUBLISH_EVERY, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def publish(self) -> None:
        if self.describe is None:
            return
        text = json.dumps(self.describe(), separators=(",", ":"))
        if len(text) > _MAX_DOCUMENT:
            return
        saved = self._store.save_presence(self.name, text, self._reactor.seconds())
        saved.addErrback(_ignore)

    def fleet(self) -> Deferred[list[dict[str, Any]]]:
        """The views of every process seen lately, this one's included."""
        now = self._reactor.seconds()

        def read(found: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
            views = []
            for process, text, seen in found:
                try:
                    view = json.loads(text)
                except ValueError:
                    continue
                if isinstance(view, dict):
                    view["process"] = process
                    view["seen_s_ago"] = round(max(0.0, now - seen), 1)
                    views.append(view)
            return views

        return self._store.load_presence(now - PRESENCE_TTL).addCallback(read)


def _ignore(failure: Failure) -> None:
    """The store is away: the fleet sees this process again once it is back."""
