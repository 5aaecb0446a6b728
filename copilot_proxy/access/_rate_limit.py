"""
Token-bucket rate limits, one bucket per client, as pure arithmetic over an
injected clock.

A bucket holds up to C{burst} tokens and gains C{rate} tokens a second; a
request takes one.  Refusing callers get the seconds until a token will be
there (the C{Retry-After}).  Waiting callers I{reserve} one: the bucket may go
into debt, and each reservation gets a later start than the one before it, so
waiting requests of one client are served in arrival order.

Clients share the proxy-wide rate (C{--rate-limit}, C{--burst}) unless their
key has a rate of its own (C{rate=} in the keys file), whose burst is
L{key_burst}.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*")

# Buckets that have refilled completely are indistinguishable from new ones
# and are forgotten once there are more than this many.
_PRUNE_ABOVE = 1024

# Float slack: a token due "now" by the arithmetic of a Retry-After must count.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Rate:
    """
    A sustained request rate: C{count} requests per C{seconds}.
    """

    count: float
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "hour", 86400.0: "day"}.get(self.seconds)
        return f"{self.count:g}/{unit or f'{self.seconds:g}s'}"


def parse_rate(text: str) -> Rate:
    """
    Parse C{N/PERIOD}: C{60/min}, C{2/s}, C{1000/day}, C{5/10s}.

    @raise ValueError: with a message fit for a user.
    """
    match = _RATE.fullmatch(text.lower())
    if match is None or match.group(3) not in _PERIODS:
        raise ValueError(f"{text!r} is not a rate such as 60/min or 2/s")
    count = float(match.group(1))
    seconds = float(match.group(2) or 1) * _PERIODS[match.group(3)]
    if not count > 0 or not seconds > 0:
        raise ValueError(f"{text!r} is not a rate: it must allow some requests per period")
    return Rate(count, seconds)


def key_burst(rate: Rate) -> int:
    """
    The burst of a key's own rate: its count (C{rate=60/min} allows 60 at
    once), the way C{--burst} defaults to C{--rate-limit}'s count.
    C{--burst} is for the proxy-wide rate only: a burst larger than a key's
    own count would let the key exceed the rate it was given.
    """
    return max(1, int(rate.count))


class RateLimiter(Protocol):
    """
    What the proxy asks of a rate-limit store: per process today, and the seam
    where a store shared between worker processes would go.

    Each call names the client and the rate of its key: L{None} for the
    proxy-wide rate (no limit when there is none), else the key's own rate
    with the burst L{key_burst}.  A L{refund} names the rate its token was
    taken under.
    """

    def limit_for(self, rate: Rate | None) -> tuple[Rate, int] | None:
        """The rate and burst a key with C{rate} of its own is held to, if any."""

    def take(self, key: str, rate: Rate | None = None) -> float:
        """Take a token now if one is there: 0.0; else the seconds to wait."""

    def reserve(self, key: str, rate: Rate | None = None) -> float:
        """Take a token, in debt if need be: the seconds until it is usable."""

    def refund(self, key: str, rate: Rate | None = None) -> None:
        """Give back a token taken for a request that was not served."""


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class TokenBuckets:
    """
    One token bucket per key, all with the same rate and burst (see
    L{PerKeyRates} for keys with rates of their own).

    @param clock: returns the current time in seconds (C{reactor.seconds}).
    """

    def __init__(self, rate: Rate, burst: int, clock: Callable[[], float]) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._per_second = rate.per_second
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_ABOVE:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        elif now > bucket.stamp:
            gained = (now - bucket.stamp) * self._per_second
            bucket.tokens = min(float(self.burst), bucket.tokens + gained)
            bucket.stamp = now
        return bucket

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * self._per_second >= self.burst
        ]
        for key in full:
            del self._buckets[key]

    def _wait_for(self, tokens: float) -> float:
        """Seconds until a bucket at C{tokens} holds a whole token."""
        return max(0.0, (1.0 - tokens) / self._per_second) if tokens < 1.0 - _EPSILON else 0.0

    def take(self, key: str) -> float:
        bucket = self._bucket(key)
        if bucket.tokens >= 1.0 - _EPSILON:
            bucket.tokens -= 1.0
            return 0.0
        return self._wait_for(bucket.tokens)

    def reserve(self, key: str) -> float:
        bucket = self._bucket(key)
        wait = self._wait_for(bucket.tokens)
        bucket.tokens -= 1.0
        return wait

    def refund(self, key: str) -> None:
        bucket = self._bucket(key)
        bucket.tokens = min(float(self.burst), bucket.tokens + 1.0)


class PerKeyRates:
    """
    The rate limits of one process: L{TokenBuckets} per distinct rate and
    burst, so each key is limited by its own rate when it has one and by
    the proxy-wide one otherwise.  A key whose rate changes (a reload of the
    keys file) starts with a full bucket of its new rate.

    @param default: the proxy-wide rate, or L{None}: then only keys with a
        rate of their own are limited.
    @param burst: the burst of C{default}.
    @param clock: returns the current time in seconds (C{reactor.seconds}).
    """

    def __init__(self, default: Rate | None, burst: int, clock: Callable[[], float]) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.default = default
        self.burst = burst
        self._clock = clock
        self._buckets: dict[tuple[Rate, int], TokenBuckets] = {}

    def limit_for(self, rate: Rate | None) -> tuple[Rate, int] | None:
        """The rate and burst a key with C{rate} of its own is held to, if any."""
        if rate is not None:
            return rate, key_burst(rate)
        if self.default is not None:
            return self.default, self.burst
        return None

    def _for(self, rate: Rate | None) -> TokenBuckets | None:
        limit = self.limit_for(rate)
        if limit is None:
            return None
        buckets = self._buckets.get(limit)
        if buckets is None:
            buckets = self._buckets[limit] = TokenBuckets(*limit, self._clock)
        return buckets

    def take(self, key: str, rate: Rate | None = None) -> float:
        buckets = self._for(rate)
        return 0.0 if buckets is None else buckets.take(key)

    def reserve(self, key: str, rate: Rate | None = None) -> float:
        buckets = self._for(rate)
        return 0.0 if buckets is None else buckets.reserve(key)

    def refund(self, key: str, rate: Rate | None = None) -> None:
        buckets = self._for(rate)
        if buckets is not None:
            buckets.refund(key)


def retry_after(seconds: float) -> int:
    """A C{Retry-After} value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds - 1e-9))
