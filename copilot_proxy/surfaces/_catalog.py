"""
The model ids the Copilot API lists at C{GET /models}, fetched once and kept
for a while, so that Anthropic model names can be mapped to them.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from ..tokens import TokenSource
from ..upstream import Upstream
from ..wire import CopilotHeaders, upstream_request_headers

_log = Logger(namespace="copilot_proxy")

#: How long a fetched list is used before it is fetched again.
FRESH_SECONDS = 600.0
#: After a failed fetch, how long to answer "unknown list" before trying again.
RETRY_SECONDS = 30.0
#: How long a fetch may take.
FETCH_TIMEOUT = 30.0


def model_ids(document: Any) -> list[str]:
    """The ids of a C{/models} answer (OpenAI list shape); [] for anything else."""
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return []
    return [str(m["id"]) for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


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
    ) -> None:
        self._upstream = upstream
        self._tokens = tokens
        self._copilot = copilot
        self._reactor = reactor
        self._ids: list[str] = []
        self._until = 0.0
        self._waiters: list[Deferred[list[str]]] = []

    def ids(self) -> Deferred[list[str]]:
        """The listed model ids (C{[]} when unknown)."""
        if self._reactor.seconds() < self._until:
            return succeed(list(self._ids))
        d: Deferred[list[str]] = Deferred(self._forget)
        first = not self._waiters
        self._waiters.append(d)
        if first:
            self._fetch()
        return d

    def _forget(self, d: Deferred[list[str]]) -> None:
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
        d = self._upstream.request(b"GET", b"/models", headers, b"")
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
            ids = model_ids(json.loads(body))
        except Exception:
            # Too deep, ill-typed, not JSON: an upstream body is untrusted, and
            # every waiter must be answered whatever it held.
            ids = []
        if ids:
            self._ids = ids
            self._until = self._reactor.seconds() + FRESH_SECONDS
        else:
            self._until = self._reactor.seconds() + RETRY_SECONDS
        self._deliver(ids)

    def _failed(self, failure: Any) -> None:
        _log.warn(
            "cannot list the upstream models ({reason}); model names pass through unmapped",
            reason=str(failure.value).strip()[:200] or type(failure.value).__name__,
        )
        self._until = self._reactor.seconds() + RETRY_SECONDS
        self._deliver(list(self._ids))

    def _deliver(self, ids: list[str]) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(list(ids))


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
