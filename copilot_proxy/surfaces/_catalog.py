"""
The models the Copilot API lists at C{GET /models}, fetched once and kept
for a while: their ids (Anthropic model names are mapped to them) and their
entries (which endpoints each accepts, what it supports).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ..tokens import Seat, SeatPool, TokenSource
from ..upstream import Upstream
from ..web import ProxyRequest
from ..wire import CopilotHeaders, upstream_request_headers
from ._routing import ModelEntry, parse_catalog

_log = Logger(namespace="copilot_proxy")

#: How long a fetched list is used before it is fetched again.
FRESH_SECONDS = 600.0
#: After a failed fetch, how long to answer "unknown list" before trying again.
RETRY_SECONDS = 30.0
#: How long a fetch may take.
FETCH_TIMEOUT = 30.0


class ModelCatalog:
    """
    The upstream's model ids, fetched on first use and every L{FRESH_SECONDS}.

    L{ids} never fails: when the list cannot be had it fires with C{[]}, and
    callers then pass model names through for the upstream to judge.
    Concurrent callers share one fetch; each gets its own L{Deferred}, so one
    caller cancelling (its client left) does not affect the others.
    """

    def __init__(
        self,
        upstream: Upstream,
        tokens: TokenSource,
        copilot: CopilotHeaders,
        reactor: IReactorTime,
        seats: SeatPool | None = None,
        base: Callable[[], bytes | None] = lambda: None,
    ) -> None:
        """
        @param seats: the proxy's seats: a request bound to one is routed by
            that seat's own catalog (plans list different models), fetched
            with the seat's token from the seat's API base.
        @param base: the API base to fetch from, when not the upstream's.
        """
        self._upstream = upstream
        self._tokens = tokens
        self._copilot = copilot
        self._reactor = reactor
        self._seats = seats
        self._base = base
        self._by_seat: dict[str, tuple[Seat, ModelCatalog]] = {}
        self._entries: dict[str, ModelEntry] = {}
        self._until = 0.0
        self._waiters: list[Deferred[dict[str, ModelEntry]]] = []

    def for_request(self, request: Request) -> ModelCatalog:
        """The catalog of C{request}'s seat, or this one."""
        name = request.seat if isinstance(request, ProxyRequest) else None
        if name is None or self._seats is None:
            return self
        seat = self._seats.seat(name)
        known = self._by_seat.get(name)
        if known is not None and known[0] is seat:
            return known[1]
        # A seat stopped for idleness and started again is a new seat.
        catalog = ModelCatalog(
            self._upstream, seat.tokens, self._copilot, self._reactor, base=lambda: seat.base
        )
        self._by_seat[name] = (seat, catalog)
        return catalog

    def ids(self) -> Deferred[list[str]]:
        """The listed model ids (C{[]} when unknown)."""
        return self.entries().addCallback(list)

    def entries(self) -> Deferred[dict[str, ModelEntry]]:
        """The listed models by id (empty when unknown)."""
        if self._reactor.seconds() < self._until:
            return succeed(dict(self._entries))
        d: Deferred[dict[str, ModelEntry]] = Deferred(self._forget)
        first = not self._waiters
        self._waiters.append(d)
        if first:
            self._fetch()
        return d

    def refresh(self) -> None:
        """Fetch the list again at the next look (an endpoint was refused)."""
        self._until = min(self._until, self._reactor.seconds())

    def _forget(self, d: Deferred[dict[str, ModelEntry]]) -> None:
        if d in self._waiters:
            self._waiters.remove(d)

    def _fetch(self) -> None:
        d = self._tokens.authorization()
        d.addCallback(self._request)
        d.addTimeout(FETCH_TIMEOUT, self._reactor)
        d.addCallbacks(self._fetched, self._failed)

    def _request(self, authorization: bytes) -> Deferred[bytes]:
        headers = upstream_request_headers(Headers(), authorization)
        self._copilot.apply(headers, None)
        # The editor names the model-list call so (the 2026 notes' 5.3).
        for name in (b"openai-intent", b"x-interaction-type"):
            headers.setRawHeaders(name, [b"model-access"])
        d = self._upstream.request(b"GET", b"/models", headers, b"", self._base())
        return d.addCallback(self._read)

    def _read(self, response: IResponse) -> Deferred[bytes]:
        body: Deferred[bytes] = Deferred()
        response.deliverBody(_WholeBody(body))
        if response.code != 200:
            code = response.code
            body.addCallback(lambda _: _raise(f"GET /models answered {code}"))
        return body

    def _fetched(self, body: bytes) -> None:
        try:
            entries = parse_catalog(json.loads(body))
        except Exception:
            # Too deep, ill-typed, not JSON: an upstream body is untrusted, and
            # every waiter must be answered whatever it held.
            entries = {}
        if entries:
            self._entries = entries
            self._until = self._reactor.seconds() + FRESH_SECONDS
        else:
            self._until = self._reactor.seconds() + RETRY_SECONDS
        self._deliver(entries)

    def _failed(self, failure: Any) -> None:
        _log.warn(
            "cannot list the upstream models ({reason}); model names pass through unmapped",
            reason=str(failure.value).strip()[:200] or type(failure.value).__name__,
        )
        self._until = self._reactor.seconds() + RETRY_SECONDS
        self._deliver(dict(self._entries))

    def _deliver(self, entries: dict[str, ModelEntry]) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(dict(entries))


# A model list larger than this is not read (a real one is tens of kB).
MAX_LIST_BYTES = 4 * 1024 * 1024


class _WholeBody(Protocol):
    """Collects a small response body; fails unless it arrived whole."""

    def __init__(self, done: Deferred[bytes]) -> None:
        self._done = done
        self._chunks: list[bytes] | None = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._chunks is None:
            return
        self._size += len(data)
        if self._size > MAX_LIST_BYTES:
            self._chunks = None
            self._done.errback(RuntimeError(f"GET /models answered over {MAX_LIST_BYTES} bytes"))
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self._chunks is None:
            return
        if reason.check(ResponseDone):
            self._done.callback(b"".join(self._chunks))
        else:
            self._done.errback(reason)


def _raise(message: str) -> bytes:
    raise RuntimeError(message)
