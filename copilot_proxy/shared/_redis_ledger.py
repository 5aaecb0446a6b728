"""
The usage ledger in Redis, for a deployment of many hosts.

One hash per UTC day (C{<prefix>usage:<day>}), a field per key, model and
counter, incremented by one script per flush (atomic: all of a flush or
none of it).  Days are kept 400 days, then Redis forgets them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date, timedelta

from twisted.internet.defer import Deferred

from ._ledger import COUNTERS, LedgerCell, LedgerRow, utc_day
from ._redis import RedisClient, Script
from ._resp import Reply

_KEEP_DAYS = 400
_SEPARATOR = "\x1f"

# KEYS: the day hashes touched; ARGV: the seconds a day is kept, then per
# increment: the index of its day in KEYS, the field, the amount.
_ADD = Script(
    """
for i = 2, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[1])) end
return 1
"""
)

_READ = Script(
    """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""
)

# KEYS[1]: the quota hash; ARGV: seen_at, then name, value pairs.  Older
# snapshots than the stored one are ignored.
_SAVE_QUOTA = Script(
    """
local seen = tonumber(redis.call('HGET', KEYS[1], '.seen_at') or 0)
if tonumber(ARGV[1]) < seen then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '.seen_at', ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
)


# KEYS[1]: the presence hash (process -> seen_at, then the view); ARGV:
# process, view, seen_at.  Views an hour old are dropped on the way.
_SAVE_PRESENCE = Script(
    """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ' ' .. ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local seen = tonumber(string.match(all[i + 1], '^(%S+)'))
  if seen == nil or seen < tonumber(ARGV[3]) - 3600 then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""
)


class RedisLedger:
    """
    A L{LedgerStore} in Redis, under C{prefix}.

    @param owns_client: whether L{close} stops C{client} (a command that made
        it for the ledger alone), or leaves it to its owner.
    """

    def __init__(self, client: RedisClient, prefix: str, owns_client: bool = False) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client

    def __repr__(self) -> str:
        return f"RedisLedger({self._client.target.display()}, {self._prefix!r})"

    def _day_key(self, day: str) -> str:
        return f"{self._prefix}usage:{day}"

    def add(self, deltas: Mapping[LedgerCell, Mapping[str, int]]) -> Deferred[None]:
        days: dict[str, int] = {}
        args: list[str | int] = [_KEEP_DAYS * 86400]
        for (day, key, model), counts in deltas.items():
            index = days.setdefault(day, len(days) + 1)
            for counter, amount in counts.items():
                if amount:
                    args += [index, _SEPARATOR.join((key, model, counter)), amount]
        if len(args) == 1:
            done: Deferred[None] = Deferred()
            done.callback(None)
            return done
        d = self._client.run(_ADD, [self._day_key(day) for day in days], args)
        return d.addCallback(lambda _: None)

    def rows(self, since_day: str, key: str | None = None) -> Deferred[list[LedgerRow]]:
        first = date.fromisoformat(since_day)
        last = date.fromisoformat(utc_day(_now()))
        days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)][
            -(_KEEP_DAYS + 1) :
        ]
        d = self._client.run(_READ, [self._day_key(day) for day in days], [])
        return d.addCallback(_rows, days, key)

    def save_quota(self, headers: Mapping[str, str], seen_at: float) -> Deferred[None]:
        args: list[str] = [f"{seen_at:.3f}"]
        for name, value in headers.items():
            args += [name, value]
        d = self._client.run(_SAVE_QUOTA, [f"{self._prefix}upstream-quota"], args)
        return d.addCallback(lambda _: None)

    def load_quota(self) -> Deferred[tuple[dict[str, str], float | None]]:
        d = self._client.call("HGETALL", f"{self._prefix}upstream-quota")
        return d.addCallback(_quota)

    def clear(self) -> Deferred[None]:
        """Not for the fleet's ledger: its counts are never forgotten here."""
        raise NotImplementedError("the Redis ledger is never cleared by the proxy")

    def save_presence(self, process: str, document: str, seen_at: float) -> Deferred[None]:
        d = self._client.run(
            _SAVE_PRESENCE, [f"{self._prefix}presence"], [process, document, f"{seen_at:.3f}"]
        )
        return d.addCallback(lambda _: None)

    def load_presence(self, since: float) -> Deferred[list[tuple[str, str, float]]]:
        d = self._client.call("HGETALL", f"{self._prefix}presence")
        return d.addCallback(_presence, since)

    def close(self) -> None:
        if self._owns_client:
            self._client.stop()


def _now() -> float:
    return time.time()


def _pairs(reply: Reply) -> list[tuple[str, str]]:
    if not isinstance(reply, list):
        return []
    out = []
    for i in range(0, len(reply) - 1, 2):
        name, value = reply[i], reply[i + 1]
        if isinstance(name, bytes) and isinstance(value, bytes):
            out.append((name.decode("utf-8", "replace"), value.decode("utf-8", "replace")))
    return out


def _rows(reply: Reply, days: list[str], only: str | None) -> list[LedgerRow]:
    rows: list[LedgerRow] = []
    if not isinstance(reply, list):
        return rows
    for day, fields in zip(days, reply, strict=False):
        cells: dict[tuple[str, str], dict[str, int]] = {}
        for field, value in _pairs(fields):
            parts = field.split(_SEPARATOR)
            if len(parts) != 3 or parts[2] not in COUNTERS or not value.lstrip("-").isdigit():
                continue
            key, model, counter = parts
            if only is not None and key != only:
                continue
            cells.setdefault((key, model), {})[counter] = int(value)
        rows.extend(LedgerRow(day, key, model, counts) for (key, model), counts in cells.items())
    return rows


def _quota(reply: Reply) -> tuple[dict[str, str], float | None]:
    values = dict(_pairs(reply))
    seen = values.pop(".seen_at", None)
    try:
        return values, (float(seen) if seen is not None else None)
    except ValueError:
        return values, None


def _presence(reply: Reply, since: float) -> list[tuple[str, str, float]]:
    found = []
    for process, value in _pairs(reply):
        seen, _, document = value.partition(" ")
        try:
            when = float(seen)
        except ValueError:
            continue
        if when >= since:
            found.append((process, document, when))
    return found
