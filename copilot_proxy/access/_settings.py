"""
Settings of who may use the proxy and how much, and the rules that turn
option strings into them.  Pure: no environment, no argv, no reactor.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ..settings import ConfigError
from ._keys import ClientKey
from ._rate_limit import Rate, parse_rate

DEFAULT_MAX_BODY = "16M"
DEFAULT_CACHE_TTL = 300.0

_SIZE = re.compile(r"\s*(\d+)\s*([kmg]?)i?b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True)
class RequestLimits:
    """
    What one request may send before it is looked at.

    @ivar max_body: request body bytes accepted (413 past it).
    @ivar max_headers: header lines accepted in one request (431 past it).
    @ivar max_head_bytes: bytes of request line plus headers (431 past it).
    @ivar head_timeout: seconds from the first byte of a request to the end
        of its headers (408 and close past it).
    """

    max_body: int = 16 * 1024**2
    max_headers: int = 100
    max_head_bytes: int = 16384
    head_timeout: float = 30.0


@dataclass(frozen=True)
class AccessConfig:
    """
    @ivar keys_file: path of the client keys file, re-read on SIGHUP.
    @ivar env_keys: keys from C{PROXY_CLIENT_KEYS}, fixed for the process.
    @ivar rate: sustained rate per client, or L{None} for no rate limit.
    @ivar burst: bucket size (requests at once) with C{rate}.
    @ivar wait: queue requests over a limit rather than answer 429.
    @ivar max_queue: requests waiting at once, at most (then 429).
    @ivar max_streams: upstream requests in flight at once, or L{None}.
    @ivar max_streams_per_key: the same, per client, or L{None}.
    @ivar cache_ttl: seconds a cached C{GET} answer is served (0: no cache).
    @ivar seats_only: refuse keys bound to no seat (C{--seats-only}).
    """

    keys_file: str | None = None
    env_keys: tuple[ClientKey, ...] = ()
    rate: Rate | None = None
    burst: int = 1
    wait: bool = False
    max_queue: int = 100
    max_streams: int | None = None
    max_streams_per_key: int | None = None
    limits: RequestLimits = field(default_factory=RequestLimits)
    cache_ttl: float = 0.0
    seats_only: bool = False

    @property
    def has_keys(self) -> bool:
        return self.keys_file is not None or bool(self.env_keys)

    def summary(self, key_count: int) -> str:
        """One line for the start log: what this proxy lets through."""
        parts = [f"{key_count} client key(s)" if key_count else "no client keys"]
        if self.rate is not None:
            wait = f", waiting (queue {self.max_queue})" if self.wait else ""
            parts.append(f"rate limit {self.rate} burst {self.burst} per client{wait}")
        if self.max_streams is not None:
            parts.append(f"at most {self.max_streams} streams")
        if self.max_streams_per_key is not None:
            parts.append(f"at most {self.max_streams_per_key} streams per client")
        if self.seats_only:
            parts.append("keys bound to a seat only")
        parts.append(f"bodies up to {self.limits.max_body} bytes")
        if self.cache_ttl > 0:
            parts.append(f"GET /models cached {self.cache_ttl:g} s")
        return "; ".join(parts)


def byte_size(name: str, value: str) -> int:
    """Parse a size option: C{16M}, C{512k}, C{1G}, C{1048576} (bytes)."""
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ConfigError(f"{name} {value!r} is not a size such as 16M or 512k")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size < 1:
        raise ConfigError(f"{name} must be at least 1 byte")
    return size


def count_option(name: str, value: str, minimum: int = 1) -> int:
    """Parse a whole-number option of at least C{minimum}."""
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a whole number") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return number


def rate_option(value: str) -> Rate:
    """Parse C{--rate-limit}."""
    try:
        return parse_rate(value)
    except ValueError as e:
        raise ConfigError(f"--rate-limit {e}") from None


def non_negative_seconds(name: str, value: str) -> float:
    """Parse a duration that may be 0 (meaning: off)."""
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"{name} must be 0 or a positive number of seconds")
    return seconds


def is_private_listener(description: str, host: str | None) -> bool:
    """
    Whether a listener only local users can reach: TCP on a loopback address
    (C{host}, as bound), a unix socket, or a socket handed over by systemd
    (whose unit decides who may connect).
    """
    kind = description.split(":", 1)[0].strip().lower()
    if kind in ("unix", "systemd"):
        return True
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
