"""
What every process of a deployment shares through Redis: rate limits,
stream leases, the C{GET /models} cache and the upstream's own "retry
after".  Each is one Lua script, so each decision is one round trip and
atomic however many processes ask at once; the clock is Redis's own
(C{TIME}), so hosts whose clocks disagree still share one limit.

Every method fails with L{SharedStateUnavailable} when Redis cannot answer
in time; the callers then decide with what they hold in process (fail
open) or refuse (C{--redis-required}).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from ._redis import RedisClient, Script
from ._resp import Reply

#: How long a stream's lease lives without renewal: a process that dies
#: loses its slots this long after its last renewal at most.
LEASE_TTL = 30.0
#: How often a process renews the leases of its running streams.
LEASE_RENEW_EVERY = 10.0

# Times in the scripts are microseconds of Redis's clock; Lua numbers are
# doubles, exact to 2**53 (year 2255 in microseconds), and written back with
# %.0f because Redis's Lua prints 14 significant digits otherwise.
_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# GCRA: KEYS[1] holds the theoretical arrival time (TAT) of the key's next
# request.  ARGV: microseconds per request, burst, mode (take, reserve,
# refund).  Returns microseconds to wait: for take, more than 0 means
# refused (nothing changed); for reserve, the wait of the request just
# admitted in debt.
_RATE = Script(
    _CLOCK
    + """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if ARGV[3] == 'refund' then
  tat = tat - interval
  if tat < now then tat = now end
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',
    math.floor((tat - now) / 1000) + 1000)
  return 0
end
local next_tat = tat + interval
local wait = next_tat - burst * interval - now
if ARGV[3] == 'take' and wait > 0 then
  return math.ceil(wait)
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX',
  math.floor((next_tat - now) / 1000) + 1000)
if wait < 0 then wait = 0 end
return math.ceil(wait)
"""
)

# Stream leases: sorted sets of lease ids scored by expiry, one for the
# whole deployment (KEYS[1]) and one per client (KEYS[2]).  ARGV: lease id,
# ttl (microseconds), total cap, client cap (-1: none).  Returns 1 when the
# lease is taken.
_ACQUIRE = Script(
    _CLOCK
    + """
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local total, per_key = tonumber(ARGV[3]), tonumber(ARGV[4])
if total >= 0 and redis.call('ZCARD', KEYS[1]) >= total then return 0 end
if per_key >= 0 and redis.call('ZCARD', KEYS[2]) >= per_key then return 0 end
local expiry = string.format('%.0f', now + ttl)
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
local keep = math.floor(ttl / 1000) * 2
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1
"""
)

# Renew: KEYS[1] the deployment's set, KEYS[2..] each lease's client set;
# ARGV[1] the ttl, ARGV[2..] the lease ids in the same order.
_RENEW = Script(
    _CLOCK
    + """
local ttl = tonumber(ARGV[1])
local expiry = string.format('%.0f', now + ttl)
local keep = math.floor(ttl / 1000) * 2
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
  redis.call('ZADD', KEYS[i], 'XX', expiry, ARGV[i])
  redis.call('PEXPIRE', KEYS[i], keep)
end
redis.call('PEXPIRE', KEYS[1], keep)
return #ARGV - 1
"""
)

_RELEASE = Script(
    """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
)

# The /models cache: the entry, or (when there is none) whether this caller
# is the one to fetch it for everybody: KEYS[1] the entry, KEYS[2] the
# fetch lock, ARGV[1] how long the lock lasts (ms).
_CACHE_LOOKUP = Script(
    """
local entry = redis.call('GET', KEYS[1])
if entry then return {entry, 0} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', tonumber(ARGV[1])) then
  return {false, 1}
end
return {false, 0}
"""
)

# Upstream holds: a hash of scope -> until (Redis microseconds).  ARGV:
# scope, seconds.  A later "until" wins; expired scopes are dropped on the
# way.  Returns the hash's live entries as a flat list of scope, seconds
# left (the reading script is the same with no ARGV).
_HOLDS = Script(
    _CLOCK
    + """
if ARGV[1] then
  local until_at = now + tonumber(ARGV[2]) * 1000000
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or 0)
  if until_at > old then
    redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', until_at))
  end
end
local out = {}
local all = redis.call('HGETALL', KEYS[1])
local latest = 0
for i = 1, #all, 2 do
  local left = tonumber(all[i + 1]) - now
  if left <= 0 then
    redis.call('HDEL', KEYS[1], all[i])
  else
    table.insert(out, all[i])
    table.insert(out, string.format('%.0f', left))
    if left > latest then latest = left end
  end
end
if latest > 0 then redis.call('PEXPIRE', KEYS[1], math.ceil(latest / 1000) + 1000) end
return out
"""
)


@dataclass(frozen=True)
class CachedAnswer:
    """A C{GET} answer as the cache keeps it in Redis."""

    code: int
    phrase: bytes
    headers: list[tuple[bytes, list[bytes]]]
    body: bytes
    stored: float

    def encode(self) -> bytes:
        return json.dumps(
            {
                "code": self.code,
                "phrase": self.phrase.decode("latin-1"),
                "headers": [
                    [n.decode("latin-1"), [v.decode("latin-1") for v in vs]]
                    for n, vs in self.headers
                ],
                "body": base64.b64encode(self.body).decode("ascii"),
                "stored": self.stored,
            },
            separators=(",", ":"),
        ).encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> CachedAnswer | None:
        """The entry, or L{None} when it is not one (another version wrote it)."""
        try:
            raw: Any = json.loads(data)
            return cls(
                int(raw["code"]),
                str(raw["phrase"]).encode("latin-1"),
                [
                    (str(n).encode("latin-1"), [str(v).encode("latin-1") for v in vs])
                    for n, vs in raw["headers"]
                ],
                base64.b64decode(raw["body"]),
                float(raw["stored"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _key_part(text: str) -> str:
    # Key names and addresses are plain words already; keep Redis keys
    # printable whatever they hold.
    return text.encode("utf-8", "replace").hex() if not text.isprintable() else text


class Fleet:
    """
    The deployment's shared decisions, under one key prefix.

    @param prefix: C{--redis-prefix}, the start of every key.
    @param lease_ttl: seconds a stream lease lives without renewal.
    """

    def __init__(self, client: RedisClient, prefix: str, lease_ttl: float = LEASE_TTL) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_ttl = lease_ttl
        # This process's leases are told apart from other processes' by
        # this, and each lease by a counter.
        self._process = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(3).hex()}"
        self._leases = 0

    # Rate limits -------------------------------------------------------

    def rate(self, client: str, per_second: float, burst: int, mode: str) -> Deferred[float]:
        """
        One GCRA decision for C{client} (see L{_RATE}): seconds to wait.

        @param mode: C{take} (refuse if over: the wait is the C{Retry-After}),
            C{reserve} (admit in debt: the wait before it may go) or
            C{refund} (give back a request that was not served).
        """
        interval = 1_000_000 / per_second
        d = self.client.run(
            _RATE, [f"{self.prefix}rate:{_key_part(client)}"], [f"{interval:.3f}", burst, mode]
        )
        return d.addCallback(_microseconds)

    # Stream leases -----------------------------------------------------

    def new_lease(self) -> str:
        self._leases += 1
        return f"{self._process}:{self._leases}"

    def _lease_keys(self, client: str) -> tuple[str, str]:
        return f"{self.prefix}streams", f"{self.prefix}streams:{_key_part(client)}"

    def acquire(
        self, lease: str, client: str, total: int | None, per_client: int | None
    ) -> Deferred[bool]:
        """Take a stream slot for C{client} under both caps (L{None}: none)."""
        d = self.client.run(
            _ACQUIRE,
            self._lease_keys(client),
            [
                lease,
                int(self.lease_ttl * 1_000_000),
                -1 if total is None else total,
                -1 if per_client is None else per_client,
            ],
        )
        return d.addCallback(lambda reply: reply == 1)

    def renew(self, leases: Iterable[tuple[str, str]]) -> Deferred[Reply]:
        """Extend the leases (id, client) of this process's running streams."""
        pairs = list(leases)
        keys = [f"{self.prefix}streams", *(self._lease_keys(c)[1] for _, c in pairs)]
        args: list[str | int] = [int(self.lease_ttl * 1_000_000), *(lease for lease, _ in pairs)]
        return self.client.run(_RENEW, keys, args)

    def release(self, lease: str, client: str) -> Deferred[Reply]:
        return self.client.run(_RELEASE, self._lease_keys(client), [lease])

    # The GET cache -----------------------------------------------------

    def cache_lookup(
        self, key: bytes, lock_for: float
    ) -> Deferred[tuple[CachedAnswer | None, bool]]:
        """
        The shared entry for C{key}, or none and whether this caller holds
        the fleet's lock to fetch it (for C{lock_for} seconds).
        """
        name = self._cache_key(key)
        d = self.client.run(_CACHE_LOOKUP, [name, name + ":lock"], [int(lock_for * 1000)])

        def read(reply: Reply) -> tuple[CachedAnswer | None, bool]:
            if not isinstance(reply, list) or len(reply) != 2:
                return None, True
            entry = CachedAnswer.decode(reply[0]) if isinstance(reply[0], bytes) else None
            return entry, reply[1] == 1

        return d.addCallback(read)

    def cache_store(self, key: bytes, entry: CachedAnswer, ttl: float) -> Deferred[Reply]:
        name = self._cache_key(key)
        d = self.client.call("SET", name, entry.encode(), "PX", max(1, int(ttl * 1000)))
        d.addCallback(lambda _: self.client.call("DEL", name + ":lock"))
        return d

    def _cache_key(self, key: bytes) -> str:
        return f"{self.prefix}cache:{hashlib.sha256(key).hexdigest()[:32]}"

    # Upstream holds ----------------------------------------------------

    def holds(self, scope: str | None = None, seconds: float = 0.0) -> Deferred[dict[str, float]]:
        """
        Record a hold on C{scope} for C{seconds} (if given), and read every
        live hold of the deployment: scope -> seconds left.
        """
        args: list[str | float] = [] if scope is None else [scope, f"{seconds:.3f}"]
        d = self.client.run(_HOLDS, [f"{self.prefix}upstream-holds"], args)
        return d.addCallback(_holds)


def _microseconds(reply: Reply) -> float:
    return reply / 1_000_000 if isinstance(reply, int) else 0.0


def _holds(reply: Reply) -> dict[str, float]:
    found: dict[str, float] = {}
    if isinstance(reply, list):
        for i in range(0, len(reply) - 1, 2):
            scope, left = reply[i], reply[i + 1]
            if isinstance(scope, bytes) and isinstance(left, bytes) and left.isdigit():
                found[scope.decode("utf-8", "replace")] = int(left) / 1_000_000
    return found
