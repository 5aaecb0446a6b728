"""
AI-credits budgets per client key (C{credits=N/PERIOD} in the keys file),
checked before a request goes upstream against what the usage ledger says
the key spent in the current period.

A request's cost is known only once its answer ends, so a budget can be
overrun by the requests in flight when it is reached, never by later ones.
The spending is read from the ledger (the fleet's, with C{--redis}) once per
key and period, then at most every L{REFRESH_EVERY} seconds in the
background; the answers of this process add to it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from ..shared import Ledger
from ._keys import CreditBudget, period_bounds

#: How stale a key's spending may be before it is read again.
REFRESH_EVERY = 2.0


@dataclass
class _Spent:
    nano_aiu: int
    read_at: float
    reading: bool = False


@dataclass(frozen=True)
class BudgetVerdict:
    """
    @ivar over: whether the budget is used up.
    @ivar spent: nano-AIU spent in the period, as far as known.
    @ivar resets_at: when the period ends (epoch seconds).
    """

    over: bool
    spent: int
    resets_at: int


class CreditBudgets:
    """The budgets' bookkeeping of one process."""

    def __init__(self, ledger: Ledger, clock: Callable[[], float] = time.time) -> None:
        self._ledger = ledger
        self._clock = clock
        self._spent: dict[tuple[str, int], _Spent] = {}
        ledger.listen(self._counted)

    def check(self, key: str, budget: CreditBudget) -> Deferred[BudgetVerdict]:
        """
        The verdict on C{key}'s next request: fired at once when its spending
        is known, after one ledger read the first time in a period.
        """
        now = self._clock()
        start, reset = period_bounds(budget.period, now)
        entry = self._spent.get((key, start))
        if entry is None:
            entry = self._spent[(key, start)] = _Spent(0, now, reading=True)
            return self._read(key, start, entry).addCallback(
                lambda _: self._verdict(entry, budget, reset)
            )
        if not entry.reading and now - entry.read_at > REFRESH_EVERY:
            entry.reading = True
            self._read(key, start, entry)
        return succeed(self._verdict(entry, budget, reset))

    def _verdict(self, entry: _Spent, budget: CreditBudget, reset: int) -> BudgetVerdict:
        return BudgetVerdict(entry.nano_aiu >= budget.nano_aiu, entry.nano_aiu, reset)

    def _read(self, key: str, start: int, entry: _Spent) -> Deferred[None]:
        def read(spent: int) -> None:
            entry.nano_aiu = max(entry.nano_aiu, spent)
            entry.read_at = self._clock()
            entry.reading = False

        def unreadable(_: Failure) -> None:
            # The ledger is away: what this process counted still applies.
            entry.reading = False

        d = self._ledger.spent_nano_aiu(key, start)
        return d.addCallbacks(read, unreadable)

    def _counted(self, key: str, model: str, counts: Mapping[str, int]) -> None:
        cost = counts.get("nano_aiu", 0)
        if not cost:
            return
        for (who, _), entry in self._spent.items():
            if who == key:
                entry.nano_aiu += cost
