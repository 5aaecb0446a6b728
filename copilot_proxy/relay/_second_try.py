"""
The two times an exchange sends its request once more, before anything has
reached the client: a 401 (the token was refused: a fresher one, once) and an
endpoint refusal (the strategy may route the request elsewhere, once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse

from ..tokens import TokenSource
from ._context import UpstreamCall
from ._strategy import RelayStrategy


@dataclass(frozen=True)
class Again:
    """Send once more, with this authorization, and this call if a new one."""

    authorization: bytes
    call: UpstreamCall | None = None


@dataclass(frozen=True)
class Deliver:
    """Give the client this answer after all."""

    response: IResponse


class SecondTries:
    """One exchange's second tries: each happens at most once."""

    def __init__(self, tokens: TokenSource, strategy: RelayStrategy) -> None:
        self._tokens = tokens
        self._strategy = strategy
        self._replayed = False
        self._rerouted = False

    def after(self, response: IResponse, authorization: bytes) -> Deferred[Again | Deliver] | None:
        """
        What to do about C{response}: L{None} to deliver it now, else a
        L{Deferred} that fires with L{Again} or L{Deliver}.
        """
        if response.code == 401 and not self._replayed:
            self._replayed = True
            return self._fresher_token(response, authorization)
        if response.code == 400 and not self._rerouted and self._strategy.reroutes:
            self._rerouted = True
            return self._elsewhere(response, authorization)
        return None

    def _fresher_token(
        self, refused: IResponse, authorization: bytes
    ) -> Deferred[Again | Deliver]:
        # The token was refused (expired early, revoked upstream): the
        # client never sees this 401 unless no fresher token is to be had.
        def fresh(token: bytes | None) -> Again | Deliver:
            if token is None:
                return Deliver(refused)
            refused.deliverBody(Discard())
            return Again(token)

        def failed(failure: Failure) -> Failure:
            refused.deliverBody(Discard())
            return failure

        d = self._tokens.refreshed_after(authorization)
        return d.addCallbacks(fresh, failed)

    def _elsewhere(self, refused: IResponse, authorization: bytes) -> Deferred[Again | Deliver]:
        # Read the (small) refusal, then let the strategy decide: another
        # endpoint, or the refusal as it came.
        def decide(body: bytes) -> Again | Deliver:
            call = self._strategy.reroute(refused.code, body)
            if call is None:
                return Deliver(cast(IResponse, _Replayed(refused, body)))
            return Again(authorization, call)

        held = _Held()
        refused.deliverBody(held)
        return held.done.addCallback(decide)


class _Held(Protocol):
    """Reads a small response body whole; C{done} fires with it."""

    LIMIT = 65536

    def __init__(self) -> None:
        self.done: Deferred[bytes] = Deferred()
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size <= self.LIMIT:
            self._parts.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(reason)


class _Stopped:
    """The push producer of a replayed body: there is nothing to pause."""

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Replayed:
    """An upstream response whose (small) body was read already."""

    def __init__(self, response: IResponse, body: bytes) -> None:
        self.code = response.code
        self.phrase = response.phrase
        self.headers = response.headers
        self.version = response.version
        self.length = len(body)
        self._body = body

    def deliverBody(self, protocol: Protocol) -> None:
        protocol.makeConnection(_Stopped())
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))


class Discard(Protocol):
    """Reads a response body nobody wants, so its connection is released."""

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        pass
