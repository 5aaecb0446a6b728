"""
The access gate's limits when they are the fleet's: rate limits and stream
slots decided in Redis (L{copilot_proxy.shared.Fleet}), one round trip each.

When Redis cannot answer in time, the gate decides with this process's own
limits (fail open: logged once per outage by the Redis client, counted in
C{copilot_proxy_shared_state_fallbacks_total}), or with C{--redis-required}
answers 503.  A stream's lease is renewed every third of its lifetime while
the stream runs; a process that dies stops renewing, and its slots are free
again within the lease's lifetime.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..shared import Fleet, SharedStateUnavailable
from ..web import ProxyRequest, respond_error

_log = Logger(namespace="copilot_proxy")

#: How often a request waiting for a fleet-wide stream slot asks again (a
#: slot freed by another process sends no word).
SLOT_POLL = 0.25


class FleetAccess:
    """
    The fleet's rate limits and stream leases, as the gate uses them.

    @param required: answer 503 while Redis is unavailable, rather than
        falling back to the process's own limits.
    @param on_fallback: called each time a decision falls back to the
        process's own limits (metrics).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        fleet: Fleet,
        required: bool = False,
        on_fallback: Callable[[], object] | None = None,
    ) -> None:
        self.reactor = reactor
        self.fleet = fleet
        self.required = required
        self._on_fallback = on_fallback
        self._leases: dict[str, str] = {}
        self._renewal: LoopingCall | None = None
        self._odd_failures: set[str] = set()

    # Rates -------------------------------------------------------------

    def rate(self, client: str, per_second: float, burst: int, mode: str) -> Deferred[float]:
        return self.fleet.rate(client, per_second, burst, mode)

    def refund(self, client: str, per_second: float, burst: int) -> None:
        """Give a token back; if Redis cannot take it, it refills on its own."""
        self.fleet.rate(client, per_second, burst, "refund").addErrback(_ignore)

    # Stream leases -----------------------------------------------------

    def acquire(
        self, client: str, total: int | None, per_client: int | None
    ) -> Deferred[str | None]:
        """A lease id when a slot is taken for C{client}, else L{None}."""
        lease = self.fleet.new_lease()

        def taken(ok: bool) -> str | None:
            if not ok:
                return None
            self._leases[lease] = client
            self._renew_while_held()
            return lease

        return self.fleet.acquire(lease, client, total, per_client).addCallback(taken)

    def release(self, lease: str) -> None:
        client = self._leases.pop(lease, None)
        if client is None:
            return
        # If Redis cannot take it now, the lease expires on its own.
        self.fleet.release(lease, client).addErrback(_ignore)
        if not self._leases and self._renewal is not None and self._renewal.running:
            self._renewal.stop()
            self._renewal = None

    @property
    def leases(self) -> int:
        """How many leases this process holds."""
        return len(self._leases)

    def _renew_while_held(self) -> None:
        if self._renewal is not None:
            return
        self._renewal = LoopingCall(self._renew)
        self._renewal.clock = self.reactor
        self._renewal.start(self.fleet.lease_ttl / 3, now=False)

    def _renew(self) -> None:
        if self._leases:
            self.fleet.renew(list(self._leases.items())).addErrback(_ignore)

    def stop(self) -> None:
        if self._renewal is not None and self._renewal.running:
            self._renewal.stop()
        self._renewal = None

    # Unavailability ----------------------------------------------------

    def unavailable(self, failure: Failure, request: ProxyRequest) -> bytes | None:
        """
        What a request gets when Redis could not decide: L{None} to decide
        with the process's own limits, or the 503 of C{--redis-required}.
        A refusal by Redis (an error reply) counts as unavailability.
        """
        if not failure.check(SharedStateUnavailable):
            # A refused script (out of memory, a read-only replica): Redis
            # cannot decide either; say what it was, once per kind.
            kind = type(failure.value).__name__
            if kind not in self._odd_failures:
                self._odd_failures.add(kind)
                _log.warn(
                    "shared state: Redis refused a decision ({why}); deciding alone",
                    why=str(failure.value)[:200],
                )
        if not self.required:
            if self._on_fallback is not None:
                self._on_fallback()
            return None
        return respond_error(
            request,
            503,
            "the proxy's shared limits (Redis) are unavailable and this proxy is set to "
            "refuse requests meanwhile (--redis-required); retry in a moment",
            "proxy_error",
            "shared_state_unavailable",
            {b"retry-after": b"1"},
        )


def _ignore(failure: Failure) -> None:
    """A renewal or release Redis did not take: the lease expires on its own."""
