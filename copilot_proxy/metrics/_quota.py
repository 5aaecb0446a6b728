"""
The upstream's quotas as its latest answers showed them.

Every Copilot answer says how much of each quota is left (see
L{copilot_proxy.wire.quota_headers}); the relay hands what it read to one
L{QuotaBoard} per proxy, and health and metrics read the board.  The board
holds a few names at most, so neither the health document nor the metric
labels grow with what an upstream sends.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..wire import MAX_SNAPSHOTS, QuotaSnapshot

#: What a board tells its listeners: the snapshots it just stored.
QuotaListener = Callable[[list[QuotaSnapshot]], None]


@dataclass(frozen=True)
class _Seen:
    snapshot: QuotaSnapshot
    at: float


class QuotaBoard:
    """
    The latest snapshot of each upstream quota, with when it was seen.

    The first L{MAX_SNAPSHOTS} names seen are the only ones ever kept (a
    later name is ignored), so what the board shows stays bounded even if
    the upstream sends a new name with every answer.
    """

    def __init__(self, clock: Callable[[], float] = time.time, limit: int = MAX_SNAPSHOTS) -> None:
        """
        @param clock: the time now, in POSIX seconds (the resets the upstream
            names are wall-clock times).
        @param limit: how many quota names to keep at most.
        """
        self._clock = clock
        self._limit = limit
        self._latest: dict[str, _Seen] = {}
        self._listeners: list[QuotaListener] = []

    def __len__(self) -> int:
        return len(self._latest)

    def listen(self, listener: QuotaListener) -> None:
        """
        Call C{listener} after each L{update} that stored anything, with the
        snapshots it stored (only names the board holds).
        """
        self._listeners.append(listener)

    def update(self, snapshots: Iterable[QuotaSnapshot]) -> None:
        """Keep C{snapshots} as the latest of their names, seen now."""
        now = self._clock()
        latest = self._latest
        stored = []
        for snapshot in snapshots:
            if snapshot.name not in latest and len(latest) >= self._limit:
                continue
            latest[snapshot.name] = _Seen(snapshot, now)
            stored.append(snapshot)
        if stored:
            for listener in self._listeners:
                listener(stored)

    def snapshot(self) -> dict[str, QuotaSnapshot]:
        """The latest snapshot of each quota name seen, by name."""
        return {name: seen.snapshot for name, seen in self._latest.items()}

    def document(self, now: float) -> dict[str, dict[str, object]]:
        """
        The board as JSON-ready values, by quota name, sorted by name; each:
        C{percent_remaining}, C{resets_at} (ISO-8601 UTC), C{resets_in_s},
        C{entitlement}, C{overage}, C{overage_permitted}, C{seen_s_ago}.  A
        field the upstream did not send (or sent garbled) is L{None}.

        @param now: the time now, in POSIX seconds.
        """
        document: dict[str, dict[str, object]] = {}
        for name in sorted(self._latest):
            seen = self._latest[name]
            quota = seen.snapshot
            resets_at = quota.resets_at
            document[name] = {
                "percent_remaining": quota.percent_remaining,
                "resets_at": _iso(resets_at),
                "resets_in_s": None if resets_at is None else round(resets_at - now, 1),
                "entitlement": quota.entitlement,
                "overage": quota.overage,
                "overage_permitted": quota.overage_permitted,
                "seen_s_ago": round(max(0.0, now - seen.at), 1),
            }
        return document


def _iso(seconds: float | None) -> str | None:
    """POSIX seconds as C{2026-04-22T14:30:56Z}, or L{None} (none, out of range)."""
    if seconds is None:
        return None
    try:
        when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return when.replace(microsecond=0, tzinfo=None).isoformat() + "Z"
