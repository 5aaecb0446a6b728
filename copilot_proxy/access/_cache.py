"""
A small in-memory cache for idempotent, non-streaming C{GET}s such as
C{GET /models}, which editors ask for on every start and every few minutes.

A miss is relayed as usual, by the first request for the key (the leader):
its response body is copied as it is written to the client, and stored once
the response has finished, if it is a complete 2xx answer that is not an
event stream and sets no cookie.  Requests for the same key that arrive while
the leader is in flight wait for it (coalescing) instead of going upstream
too.  A hit is answered from memory with an C{Age} header.  C{Cache-Control:
no-cache} (or C{Pragma: no-cache}) from a client skips the lookup, and its
answer refreshes the entry.

The copy is made by giving the leader's request an instance-level C{write};
every other request keeps Twisted's own, so the streaming path pays nothing.

With C{--redis} the entries are shared by the fleet: a local miss asks Redis,
which answers the entry or makes this process the one that fetches it for
everybody (a lock for L{FLEET_LOCK} seconds); the others wait for the entry
to appear, so one upstream fetch serves every process and host per TTL.  If
Redis cannot answer, the process fetches for itself, as without Redis.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from ..shared import CachedAnswer, Fleet
from ..web import ProxyRequest, log_access
from ..wire import HOP_BY_HOP, Outcome, upstream_target

# Upstream paths (after the /v1 alias) whose GET answers may be cached.
CACHEABLE_PATHS = frozenset({b"/models"})

# At most this many entries (a query string makes a new key): oldest go first.
MAX_ENTRIES = 64
# A body larger than this is relayed but not stored.
MAX_BODY = 4 * 1024 * 1024

# How long one process may take to fetch an entry for the fleet before
# another tries, and how often the others look for it meanwhile.
FLEET_LOCK = 10.0
_FLEET_POLL = 0.1

# Never stored nor replayed: recomputed, per connection, or per client.
_NOT_STORED = HOP_BY_HOP | {b"content-length", b"age", b"date", b"set-cookie"}


@dataclass
class _Entry:
    code: int
    phrase: bytes
    headers: list[tuple[bytes, list[bytes]]]
    body: bytes
    stored: float


_Key = tuple[bytes, bytes]


def _no_cache(request: ProxyRequest) -> bool:
    for name in (b"cache-control", b"pragma"):
        for value in request.requestHeaders.getRawHeaders(name, ()):
            if b"no-cache" in value.lower() or b"no-store" in value.lower():
                return True
    return False


class ResponseCache:
    """
    The cache of one proxy.

    @param ttl: seconds an entry is served.
    @param on_lookup: called with C{True} for a hit, C{False} for a miss
        (metrics).
    @param base: the upstream base URL in use now, part of every key: it
        can change while the proxy runs (it follows the Copilot token's API
        host), and one API's answer must not be served for another.
    @param fleet: the entries shared through Redis, or L{None}.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        ttl: float,
        on_lookup: Callable[[bool], None] | None = None,
        base: Callable[[], bytes] = lambda: b"",
        fleet: Fleet | None = None,
    ) -> None:
        self._reactor = reactor
        self._fleet = fleet
        self.ttl = ttl
        self._on_lookup = on_lookup
        self._base = base
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._leaders: dict[_Key, list[tuple[ProxyRequest, Callable[[ProxyRequest], None]]]] = {}

    def key(self, request: ProxyRequest) -> _Key | None:
        """The cache key of C{request}, or L{None} when it is not cacheable."""
        if request.method != b"GET":
            return None
        target = upstream_target(request.uri)
        if target.partition(b"?")[0].rstrip(b"/") not in CACHEABLE_PATHS:
            return None
        encoding = b",".join(request.requestHeaders.getRawHeaders(b"accept-encoding", ()))
        # A seat's catalog is its plan's: never served to another seat.
        if request.seat is not None:
            encoding += b";seat=" + request.seat.encode("utf-8")
        # Anthropic clients get the list in their own shape: another entry.
        if request.requestHeaders.hasHeader(b"anthropic-version"):
            encoding += b";anthropic"
        return self._base() + target, encoding.replace(b" ", b"").lower()

    def serve(self, request: ProxyRequest, go_upstream: Callable[[ProxyRequest], None]) -> bool:
        """
        Answer C{request} from the cache, or have it wait for a request in
        flight for the same key.

        @param go_upstream: what sends a request upstream; called later for a
            waiting request whose leader's answer cannot be shared.
        @return: C{True} when the cache has taken the request; C{False} when
            the caller must send it upstream now (the cache may then copy the
            answer).
        """
        key = self.key(request)
        if key is None:
            return False
        if _no_cache(request):
            self._lead(request, key)
            return False
        entry = self._entries.get(key)
        now = self._reactor.seconds()
        if entry is not None and now - entry.stored < self.ttl:
            self._lookup(True)
            self._answer(request, entry, now)
            return True
        self._lookup(False)
        waiting = self._leaders.get(key)
        if waiting is not None:
            waiting.append((request, go_upstream))
            request.notifyFinish().addErrback(lambda _: self._left(key, request))
            return True
        self._leaders[key] = []
        if self._fleet is not None:
            self._ask_fleet(self._fleet, request, key, go_upstream, FLEET_LOCK)
            return True
        self._lead(request, key)
        return False

    # The fleet ---------------------------------------------------------

    def _fleet_key(self, key: _Key) -> bytes:
        return key[0] + b"|" + key[1]

    def _ask_fleet(
        self,
        fleet: Fleet,
        request: ProxyRequest,
        key: _Key,
        go_upstream: Callable[[ProxyRequest], None],
        patience: float,
    ) -> None:
        """
        Find the fleet's entry for C{key} (this process's leader for it is
        C{request}), fetch it for the fleet, or wait for whoever does.
        """

        def answered(found: tuple[CachedAnswer | None, bool]) -> None:
            shared, fetch = found
            if request.channel is None:
                self._leader_failed(key, Failure(Exception("client gone")))
                return
            if shared is not None:
                entry = _Entry(
                    shared.code, shared.phrase, shared.headers, shared.body, shared.stored
                )
                self._keep(key, entry)
                self._answer(request, entry, self._reactor.seconds())
                self._serve_followers(key, entry)
                return
            if fetch or patience <= 0:
                self._lead(request, key, share=fetch)
                go_upstream(request)
                return
            self._reactor.callLater(
                _FLEET_POLL,
                self._ask_fleet,
                fleet,
                request,
                key,
                go_upstream,
                patience - _FLEET_POLL,
            )

        def unavailable(_: Failure) -> None:
            if request.channel is None:
                self._leader_failed(key, Failure(Exception("client gone")))
                return
            self._lead(request, key)
            go_upstream(request)

        fleet.cache_lookup(self._fleet_key(key), FLEET_LOCK).addCallbacks(answered, unavailable)

    def _lookup(self, hit: bool) -> None:
        if self._on_lookup is not None:
            self._on_lookup(hit)

    def _left(self, key: _Key, request: ProxyRequest) -> None:
        waiting = self._leaders.get(key)
        if waiting is not None:
            waiting[:] = [(r, go) for r, go in waiting if r is not request]

    # The leader --------------------------------------------------------

    def _lead(self, request: ProxyRequest, key: _Key, share: bool = False) -> None:
        chunks: list[bytes] = []
        size = [0]
        write: Callable[[bytes], None] = request.write

        def copy(data: bytes) -> None:
            if size[0] <= MAX_BODY:
                chunks.append(data)
                size[0] += len(data)
            write(data)

        request.write = copy  # type: ignore[method-assign]
        request.notifyFinish().addCallbacks(
            lambda _: self._led(key, request, b"".join(chunks), size[0] <= MAX_BODY, share),
            lambda failure: self._leader_failed(key, failure),
        )

    def _led(
        self, key: _Key, request: ProxyRequest, body: bytes, whole: bool, share: bool = False
    ) -> None:
        entry = self._storable(request, body) if whole else None
        if entry is not None:
            self._keep(key, entry)
            if share and self._fleet is not None:
                shared = CachedAnswer(
                    entry.code, entry.phrase, entry.headers, entry.body, entry.stored
                )
                # Best effort: without Redis, the other processes fetch it.
                self._fleet.cache_store(self._fleet_key(key), shared, self.ttl).addErrback(
                    lambda _: None
                )
        self._serve_followers(key, entry)

    def _keep(self, key: _Key, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def _serve_followers(self, key: _Key, entry: _Entry | None) -> None:
        waiting = self._leaders.pop(key, [])
        now = self._reactor.seconds()
        for follower, go_upstream in waiting:
            if follower.channel is None:
                continue
            if entry is not None:
                self._answer(follower, entry, now)
            else:
                go_upstream(follower)

    def _leader_failed(self, key: _Key, failure: Failure) -> None:
        # The leader's client left or its answer was cut: the next in line
        # asks again, and the others wait for it.
        waiting = self._leaders.pop(key, [])
        for follower, go_upstream in waiting:
            if follower.channel is not None and not self.serve(follower, go_upstream):
                go_upstream(follower)

    def _storable(self, request: ProxyRequest, body: bytes) -> _Entry | None:
        code = request.code
        headers = request.responseHeaders
        if not 200 <= code < 300 or headers.hasHeader(b"set-cookie"):
            return None
        for value in headers.getRawHeaders(b"content-type", ()):
            if value.lower().startswith(b"text/event-stream"):
                return None
        for value in headers.getRawHeaders(b"vary", ()):
            if b"*" in value:
                return None
        kept = [
            (name, list(values))
            for name, values in headers.getAllRawHeaders()
            if name.lower() not in _NOT_STORED
        ]
        phrase: Any = request.code_message
        return _Entry(code, bytes(phrase), kept, body, self._reactor.seconds())

    # Hits --------------------------------------------------------------

    def _answer(self, request: ProxyRequest, entry: _Entry, now: float) -> None:
        request.setResponseCode(entry.code, entry.phrase)
        outgoing = request.responseHeaders
        outgoing.removeHeader(b"server")
        for name, values in entry.headers:
            outgoing.setRawHeaders(name, values)
        outgoing.setRawHeaders(b"age", [b"%d" % (max(0, int(now - entry.stored)),)])
        outgoing.setRawHeaders(b"content-length", [b"%d" % (len(entry.body),)])
        request.write(entry.body)
        request.finish()
        log_access(request, Outcome.CACHED)
