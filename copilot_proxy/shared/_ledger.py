"""
The usage ledger: what each client key used, per UTC day and model.

Every process of a deployment counts in memory (L{Ledger.count}, once per
request, no I/O) and adds its counts to one shared L{LedgerStore} about once
a second, so the store sees a few small increments per second per process
however busy the proxy is.  A failed add loses nothing: the counts stay in
memory and go with the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredLock, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger(namespace="copilot_proxy")

#: The counters of one (day, key, model), in the order tables and stores
#: show them: requests the upstream answered, requests the proxy refused
#: itself (401, 429, 413), failed upstream exchanges, prompt tokens (cached
#: ones included), cached prompt tokens, completion tokens (reasoning
#: included), reasoning tokens, and AI credits in units of 1e-9.
COUNTERS: tuple[str, ...] = (
    "requests",
    "refused",
    "errors",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "nano_aiu",
)

_COUNTER_NAMES = frozenset(COUNTERS)

#: How many days C{copilot-proxy usage} and C{GET /_proxy/usage} cover when
#: not told.
DEFAULT_USAGE_DAYS = 30

#: Where counts accumulate: (day "YYYY-MM-DD", key label, model).
LedgerCell = tuple[str, str, str]


@dataclass(frozen=True)
class LedgerRow:
    """
    The counts of one key and model on one UTC day, as a store holds them.

    @ivar counts: counter name to value; a counter of L{COUNTERS} that is
        missing is zero.
    """

    day: str
    key: str
    model: str
    counts: Mapping[str, int]


class LedgerStore(Protocol):
    """
    Where the counts of every process of a deployment add up.

    Each method returns at once (the SQLite store) or after one round trip
    (a network store): it runs on the reactor thread, so none may block for
    long.  A store holds no secrets: keys are known by their labels only.
    """

    def add(self, deltas: Mapping[LedgerCell, Mapping[str, int]]) -> Deferred[None]:
        """
        Add C{deltas} to the stored counts, all of them or (the Deferred
        fails) none, so that the caller may send the same deltas again; the
        store keeps no reference to C{deltas}.  Several processes may add at
        once; no increment may be lost.

        @param deltas: per (day, key, model), counter name to increment; a
            counter of L{COUNTERS} that is missing adds zero.
        """

    def rows(self, since_day: str, key: str | None = None) -> Deferred[list[LedgerRow]]:
        """
        The stored rows of C{since_day} and later, of C{key} only when given.
        """

    def save_quota(self, headers: Mapping[str, str], seen_at: float) -> Deferred[None]:
        """
        Keep the last quota headers the upstream sent (raw values, by
        lower-case name) and when, for C{copilot-proxy status} to show from
        another process; an older C{seen_at} than the stored one is ignored.
        """

    def load_quota(self) -> Deferred[tuple[dict[str, str], float | None]]:
        """The saved quota headers and when they were seen; C{({}, None)} if none."""

    def clear(self) -> Deferred[None]:
        """Forget every count (a spool, once its counts are moved)."""

    def save_presence(self, process: str, document: str, seen_at: float) -> Deferred[None]:
        """Keep C{process}'s latest view (JSON text; see L{Presence})."""

    def load_presence(self, since: float) -> Deferred[list[tuple[str, str, float]]]:
        """Every view published at C{since} or later: (process, document, seen_at)."""

    def close(self) -> None:
        """Release the store; no other method is called afterwards."""


def utc_day(seconds: float) -> str:
    """The UTC day C{"YYYY-MM-DD"} of a POSIX time."""
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def first_day(until_day: str, days: int) -> str:
    """
    The first day of the C{days} days that end with C{until_day} (included):
    C{until_day} itself for one day.  A span reaching before year 1 starts
    there.

    @raise ValueError: when C{days} is less than one or C{until_day} is not
        C{"YYYY-MM-DD"}.
    """
    if days < 1:
        raise ValueError(f"a usage span is at least one day, not {days}")
    until = date.fromisoformat(until_day)
    back = min(days - 1, until.toordinal() - 1)
    return (until - timedelta(days=back)).isoformat()


def usage_document(
    rows: Iterable[LedgerRow], since_day: str, until_day: str, days: int
) -> dict[str, Any]:
    """
    The usage document of C{GET /_proxy/usage} and C{copilot-proxy usage
    --json}: the counts of C{since_day} to C{until_day} (both included),
    summed over the days, per key and model::

        {"since": "2026-11-03", "until": "2026-12-02", "days": 30,
         "keys": {"alice": {"gpt-4.1": {"requests": 3, ..., "nano_aiu": 0}}}}

    Keys and models are sorted; every counter of L{COUNTERS} is there, an
    int.  Rows outside the span are left out, several rows of one key and
    model are summed.  The counts of seats (labels C{seat/NAME}, see
    L{seat_label}) are under C{"seats"}, by seat name, beside C{"keys"}.
    """
    keys: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        if not since_day <= row.day <= until_day:
            continue
        models = keys.setdefault(row.key, {})
        totals = models.get(row.model)
        if totals is None:
            totals = models[row.model] = dict.fromkeys(COUNTERS, 0)
        for name in COUNTERS:
            totals[name] += int(row.counts.get(name, 0))

    def sorted_models(label: str) -> dict[str, dict[str, int]]:
        return {model: keys[label][model] for model in sorted(keys[label])}

    return {
        "since": since_day,
        "until": until_day,
        "days": days,
        "keys": {key: sorted_models(key) for key in sorted(keys) if not key.startswith(SEAT)},
        "seats": {
            key[len(SEAT) :]: sorted_models(key) for key in sorted(keys) if key.startswith(SEAT)
        },
    }


#: The start of a seat's ledger label ("/" is in no key's name).
SEAT = "seat/"


def seat_label(seat: str) -> str:
    """The ledger label a seat's usage is counted under, beside its key's."""
    return SEAT + seat


class Ledger:
    """
    One process's view of the usage ledger: counts in memory, added to the
    store every C{flush_every} seconds once L{start}ed.

    Flushes never overlap, and reads (L{usage}, L{spent_nano_aiu}) never
    overlap a flush, so a read sees every count exactly once: in the store
    or still in memory.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        store: LedgerStore,
        flush_every: float = 1.0,
        clock_day: Callable[[float], str] = utc_day,
        spool: Callable[[bool], LedgerStore | None] | None = None,
    ) -> None:
        """
        @param clock_day: the day a POSIX time counts in (UTC days unless a
            test says otherwise).
        @param spool: opens a local store (an SQLite file of this host) for
            counts the store cannot take when the process stops (Redis
            away), creating it if told so, else L{None} when there is none;
            they are moved into the store at the next start, or once it
            takes counts again.
        """
        self._reactor = reactor
        self._store = store
        self._flush_every = flush_every
        self._clock_day = clock_day
        self._pending: dict[LedgerCell, dict[str, int]] = {}
        self._lock = DeferredLock()
        self._loop: LoopingCall | None = None
        self._store_failing = False
        self._spool = spool
        # Whether the spool may hold counts to move: looked at on start.
        self._spooled = spool is not None
        self._listeners: list[Callable[[str, str, Mapping[str, int]], object]] = []

    @property
    def store(self) -> LedgerStore:
        """Where the counts go (also where the quota board is kept)."""
        return self._store

    def listen(self, listener: Callable[[str, str, Mapping[str, int]], object]) -> None:
        """Also tell C{listener} of each count (key, model, counts): metrics."""
        self._listeners.append(listener)

    def count(self, key: str, model: str, **counts: int) -> None:
        """
        Count usage of C{key} with C{model} today, in memory only.

        @param counts: increments of counters named in L{COUNTERS}.
        @raise TypeError: when a counter is not one of L{COUNTERS}.
        """
        if not _COUNTER_NAMES.issuperset(counts):
            unknown = ", ".join(sorted(set(counts) - _COUNTER_NAMES))
            raise TypeError(f"unknown ledger counter(s): {unknown}")
        for listener in self._listeners:
            listener(key, model, counts)
        cell = (self._clock_day(self._reactor.seconds()), key, model)
        totals = self._pending.get(cell)
        if totals is None:
            self._pending[cell] = dict(counts)
            return
        for name, value in counts.items():
            totals[name] = totals.get(name, 0) + value

    def start(self) -> None:
        """Flush every C{flush_every} seconds from now on (the spool first)."""
        if self._loop is not None:
            return
        self._lock.run(lambda: Deferred.fromCoroutine(self._drain_spool()))
        self._loop = LoopingCall(self._flush_on_schedule)
        self._loop.clock = self._reactor
        self._loop.start(self._flush_every, now=False)

    def flush(self) -> Deferred[None]:
        """
        Add everything counted so far to the store, in one L{LedgerStore.add}.

        When the store fails the Deferred fails too, but no count is lost:
        they stay in memory, merged with later ones, for the next flush.  A
        flush called while another runs starts after it.
        """
        return self._lock.run(self._flush_pending)

    def stop(self) -> Deferred[None]:
        """Stop the schedule, flush one last time and close the store."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return Deferred.fromCoroutine(self._stop())

    def usage(
        self, days: int, key: str | None = None, now: float | None = None
    ) -> Deferred[dict[str, Any]]:
        """
        The L{usage_document} of the C{days} days up to today (C{1}: today
        only), of C{key} only when given, after flushing what this process
        counted.  Counts the store refuses to take are still in the answer.

        @param now: the POSIX time whose day is "today"; the reactor's time
            when not given.
        @raise ValueError: when C{days} is less than one.
        """
        until = self._clock_day(self._reactor.seconds() if now is None else now)
        since = first_day(until, days)
        return self._lock.run(self._usage, since, until, days, key)

    def spent_nano_aiu(self, key: str, since_epoch: float) -> Deferred[int]:
        """
        The AI credits (in units of 1e-9) C{key} used from the day of
        C{since_epoch} on: the store's count plus what is still in memory.
        Nothing is flushed.
        """
        return self._lock.run(self._spent, key, self._clock_day(since_epoch))

    def _flush_on_schedule(self) -> Deferred[None]:
        # Failing here would end the loop.
        return self.flush().addErrback(_logged_already)

    def _flush_pending(self) -> Deferred[None]:
        if not self._pending:
            return succeed(None)
        batch, self._pending = self._pending, {}
        d: Deferred[None] = maybeDeferred(self._store.add, batch)

        def stored(result: None) -> Deferred[None] | None:
            if self._store_failing:
                self._store_failing = False
                _log.info("usage ledger: counts are stored again")
            if self._spooled:
                return Deferred.fromCoroutine(self._drain_spool())
            return None

        def failed(reason: Failure) -> Failure:
            self._keep(batch)
            if not self._store_failing:
                self._store_failing = True
                _log.warn(
                    "usage ledger: cannot store counts, keeping them for the next try: {why}",
                    why=reason.getErrorMessage(),
                )
            return reason

        return d.addCallbacks(stored, failed)

    def _keep(self, batch: dict[LedgerCell, dict[str, int]]) -> None:
        for cell, counts in batch.items():
            totals = self._pending.get(cell)
            if totals is None:
                self._pending[cell] = counts
                continue
            for name, value in counts.items():
                totals[name] = totals.get(name, 0) + value

    async def _stop(self) -> None:
        try:
            await self.flush()
        except Exception as e:
            self._spool_pending(str(e))
        finally:
            self._store.close()

    def _spool_pending(self, why: str) -> None:
        """At stop, the counts the store refused go to the spool (or are lost)."""
        cells = len(self._pending)
        if self._spool is not None:
            try:
                spool = self._spool(True)
                assert spool is not None
                try:
                    outcome: list[object] = []
                    # The spool is local: its Deferreds have fired already.
                    spool.add(self._pending).addBoth(outcome.append)
                    if outcome and isinstance(outcome[0], Failure):
                        outcome[0].raiseException()
                finally:
                    spool.close()
            except Exception as e:
                why = f"{why}; the spool too: {e}"
            else:
                self._pending = {}
                _log.warn(
                    "usage ledger: kept the counts of {n} key/model/day(s) on this host for "
                    "the next start ({why})",
                    n=cells,
                    why=why,
                )
                return
        _log.warn(
            "usage ledger: the counts of {n} key/model/day(s) are lost at stop: {why}",
            n=cells,
            why=why,
        )

    async def _drain_spool(self) -> None:
        """Move what an earlier stop kept on this host into the store."""
        if self._spool is None or not self._spooled:
            return
        try:
            spool = self._spool(False)
        except Exception:
            return
        if spool is None:
            self._spooled = False
            return
        try:
            rows = await spool.rows("0001-01-01")
            if rows:
                deltas = {(r.day, r.key, r.model): dict(r.counts) for r in rows}
                await self._store.add(deltas)
                await spool.clear()
                _log.info(
                    "usage ledger: moved {n} key/model/day(s) kept at an earlier stop into "
                    "the ledger",
                    n=len(deltas),
                )
            self._spooled = False
        except Exception as e:
            # The store is still away: again after the next flush it takes.
            _log.debug("usage ledger: the spool waits: {why}", why=str(e))
        finally:
            spool.close()

    async def _usage(self, since: str, until: str, days: int, key: str | None) -> dict[str, Any]:
        # A failed flush leaves the counts in _pending, read from there.
        await self._flush_pending().addErrback(_logged_already)
        stored = await self._store.rows(since, key)
        pending = [
            LedgerRow(day, label, model, counts)
            for (day, label, model), counts in self._pending.items()
            if key is None or label == key
        ]
        return usage_document([*stored, *pending], since, until, days)

    async def _spent(self, key: str, since: str) -> int:
        rows = await self._store.rows(since, key)
        stored = sum(int(row.counts.get("nano_aiu", 0)) for row in rows if row.key == key)
        pending = sum(
            counts.get("nano_aiu", 0)
            for (day, label, _), counts in self._pending.items()
            if label == key and day >= since
        )
        return stored + pending


def _logged_already(reason: Failure) -> None:
    """Swallow the failure of a flush: L{Ledger._flush_pending} logged it."""
