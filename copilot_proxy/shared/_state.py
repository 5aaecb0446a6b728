"""
The shared state of one process: Redis (when C{--redis} names one) and the
usage ledger, started before the proxy serves and stopped after it drains,
so that the last exchange's counts are flushed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred

from ..settings import DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisTarget
from ._fleet import LEASE_TTL, Fleet
from ._ledger import Ledger, LedgerStore
from ._presence import Presence
from ._redis import RedisClient
from ._redis_ledger import RedisLedger


@dataclass(frozen=True)
class SharedConfig:
    """
    @ivar redis: the Redis server of the deployment, or L{None}: every limit
        is per process and the ledger is C{ledger_store}.
    @ivar prefix: the start of every Redis key (C{--redis-prefix}).
    @ivar timeout: the deadline of each Redis call (C{--redis-timeout}).
    @ivar required: refuse (503) what needs Redis while it is unavailable,
        instead of serving with the process's own limits.
    @ivar lease_ttl: seconds a stream's slot outlives its process.
    """

    redis: RedisTarget | None = None
    prefix: str = DEFAULT_REDIS_PREFIX
    timeout: float = DEFAULT_REDIS_TIMEOUT
    required: bool = False
    lease_ttl: float = LEASE_TTL


class SharedState(Service):
    """
    What this process shares with the others of its deployment.

    @ivar fleet: the decisions made in Redis, or L{None} without C{--redis}.
    @ivar ledger: the usage ledger, or L{None} when usage is not kept.
    @param local_store: the ledger's store without Redis (the SQLite file of
        the state directory), or L{None}.
    @param on_state: called with whether Redis is reachable, on each change.
    @param spool: with Redis, where the counts Redis cannot take at stop are
        kept on this host (see L{Ledger}).
    @param publish: whether this process publishes its view for the others
        (L{Presence}): not needed by a process that is the only one.
    """

    def __init__(
        self,
        reactor: Any,
        config: SharedConfig,
        local_store: LedgerStore | None = None,
        on_state: Callable[[bool], object] | None = None,
        spool: Callable[[bool], LedgerStore | None] | None = None,
        publish: bool = True,
    ) -> None:
        self.config = config
        self.client: RedisClient | None = None
        self.fleet: Fleet | None = None
        self._on_state: list[Callable[[bool], object]] = [] if on_state is None else [on_state]
        store = local_store
        if config.redis is not None:
            self.client = RedisClient(reactor, config.redis, config.timeout, self._state_changed)
            self.fleet = Fleet(self.client, config.prefix, config.lease_ttl)
            store = RedisLedger(self.client, config.prefix)
        self.ledger = Ledger(reactor, store, spool=spool) if store is not None else None
        #: Each process's view, shared: with Redis or the SQLite file.
        self.presence = Presence(reactor, store) if store is not None and publish else None

    def __repr__(self) -> str:
        return f"SharedState({self.backend}, {self.status})"

    def when_state_changes(self, callback: Callable[[bool], object]) -> None:
        """Also call C{callback} with whether Redis is reachable, on each change."""
        self._on_state.append(callback)

    def _state_changed(self, up: bool) -> None:
        for callback in self._on_state:
            callback(up)

    @property
    def backend(self) -> str:
        return "redis" if self.client is not None else "process"

    @property
    def status(self) -> str:
        return self.client.status if self.client is not None else "ok"

    def health(self) -> dict[str, object]:
        """The C{shared_state} part of C{/_proxy/healthz}: never the URL's password."""
        document: dict[str, object] = {"backend": self.backend, "status": self.status}
        if self.client is not None:
            document["redis"] = self.client.target.display()
            if self.client.last_error is not None and self.status != "ok":
                document["error"] = self.client.last_error
            document["required"] = self.config.required
        return document

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self.client is not None:
            self.client.start()
        if self.ledger is not None:
            self.ledger.start()
        if self.presence is not None:
            self.presence.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.presence is not None:
            self.presence.stop()
        if self.ledger is not None:
            await self.ledger.stop()
        if self.client is not None:
            await self.client.stop()
