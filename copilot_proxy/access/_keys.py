"""
Client keys: who may use the proxy, and each key's own settings.

The proxy hands out a paid, personal credential, so when it is shared every
caller must present a key of its own.  Keys come from a file (one per line:
the key, an optional name, then the key's settings, all after whitespace;
C{#} comments) and from C{PROXY_CLIENT_KEYS} (comma-separated, without
names or settings).  Only SHA-256 digests of the keys are kept in memory,
every check compares the presented key with I{all} of them in constant time,
and what the logs get is the key's name, or a short hash of it when it has
none.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Protocol

from twisted.web.http_headers import Headers

from ..settings import KEYS_FILE_LIMIT, read_operator_file
from ._rate_limit import Rate, parse_rate

# Shorter keys are refused at start: a key that can be guessed is no key.
MIN_KEY_LENGTH = 16

_KEY_CHARS = re.compile(r"[\x21-\x7e]+")
_NAME_CHARS = re.compile(r"[A-Za-z0-9._@:+-]{1,64}")
_CREDITS = re.compile(r"(\d+(?:\.\d+)?)/([a-z]+)")
_STREAMS = re.compile(r"\d{1,9}")
# An unknown setting is named in the error only when it looks like a setting
# name: too short and too plain to be (most of) a key pasted in by mistake.
_SHOWABLE_SETTING = re.compile(r"[A-Za-z][A-Za-z_-]{0,11}")
_SETTING_FORMS = "admin, rate=N/PERIOD, streams=N, credits=N/day|week|month, seat=NAME"

#: Nano-AIU in one AI credit (usage figures count nano-AIU).
NANO_AIU_PER_CREDIT = 1_000_000_000


class KeyFileError(ValueError):
    """A keys file or value is unusable; the message never holds a key."""


class CreditPeriod(Enum):
    """What an AI-credits budget is counted over, in UTC (see L{period_bounds})."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class CreditBudget:
    """
    An AI-credits budget: C{credits} per calendar C{period}.

    @ivar credits: AI credits allowed per period, positive, maybe fractional.
    """

    credits: float
    period: CreditPeriod

    @property
    def nano_aiu(self) -> int:
        """The budget in nano-AIU, the unit of usage figures."""
        return round(self.credits * NANO_AIU_PER_CREDIT)

    def __str__(self) -> str:
        return f"{self.credits:g}/{self.period.value}"


def period_bounds(period: CreditPeriod, now_epoch: float) -> tuple[int, int]:
    """
    The budget period holding C{now_epoch}, in UTC: from midnight (day),
    Monday midnight (week) or the first of the month at midnight (month).

    @return: the epoch seconds the period started at and the ones it resets
        at (the next period's start): C{start <= now_epoch < reset}.
    """
    now = datetime.fromtimestamp(now_epoch, timezone.utc)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is CreditPeriod.DAY:
        reset = start + timedelta(days=1)
    elif period is CreditPeriod.WEEK:
        start -= timedelta(days=start.weekday())
        reset = start + timedelta(days=7)
    else:
        start = start.replace(day=1)
        if start.month == 12:
            reset = start.replace(year=start.year + 1, month=1)
        else:
            reset = start.replace(month=start.month + 1)
    return int(start.timestamp()), int(reset.timestamp())


@dataclass(frozen=True)
class KeySettings:
    """
    What a keys file line says about its key, past the key and its name.

    @ivar admin: the key may see every key's usage, not just its own.
    @ivar rate: the key's own sustained rate, instead of C{--rate-limit}
        (its burst is L{key_burst}), or L{None}.
    @ivar streams: the key's own cap on requests in flight, instead of
        C{--max-streams-per-key} (C{--max-streams} still applies), or
        L{None}.
    @ivar credits: the key's AI-credits budget, or L{None} (enforced by the
        usage ledger, not here).
    @ivar seat: the seat (a GitHub login of its own) the key's requests are
        sent with, or L{None} for the proxy's own credential.
    """

    admin: bool = False
    rate: Rate | None = None
    streams: int | None = None
    credits: CreditBudget | None = None
    seat: str | None = None


@dataclass(frozen=True)
class ClientKey:
    """
    One client key as the proxy keeps it: a digest, a name for logs and the
    key's own settings.

    @ivar digest: SHA-256 of the key.
    @ivar label: the key's name, or C{key-<8 hex digits of its digest>}.
    @ivar settings: what the keys file says about this key (none for keys
        from the environment).
    """

    digest: bytes
    label: str
    settings: KeySettings = field(default_factory=KeySettings)

    def __repr__(self) -> str:
        return f"ClientKey({self.label})"


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def client_key(
    key: str, name: str | None, origin: str, settings: KeySettings | None = None
) -> ClientKey:
    """
    Check one key and keep only its digest.

    @param origin: where the key came from, for the error message (never the
        key itself).
    @raise KeyFileError: when the key could not travel in a header or is too
        short to be safe, or the name is not a plain word.
    """
    if not _KEY_CHARS.fullmatch(key):
        raise KeyFileError(f"the client key {origin} holds spaces or non-ASCII characters")
    if len(key) < MIN_KEY_LENGTH:
        raise KeyFileError(
            f"the client key {origin} is shorter than {MIN_KEY_LENGTH} characters; "
            "make one with: openssl rand -hex 24"
        )
    if name is not None and not _NAME_CHARS.fullmatch(name):
        raise KeyFileError(
            f"the key name {origin} must be 1-64 letters, digits or ._@:+- characters"
        )
    digest = _digest(key.encode("ascii"))
    label = name if name is not None else "key-" + digest.hex()[:8]
    return ClientKey(digest, label, settings or KeySettings())


def _setting_error(name: str, origin: str, problem: str) -> KeyFileError:
    """An error naming the setting but not its value: the file is secret."""
    return KeyFileError(f"the setting {name!r} {origin} {problem}")


def _rate_setting(value: str, origin: str) -> Rate:
    try:
        return parse_rate(value)
    except ValueError:
        raise _setting_error(
            "rate", origin, "must be N/PERIOD, such as 60/min, 2/s or 1000/day"
        ) from None


def _streams_setting(value: str, origin: str) -> int:
    if not _STREAMS.fullmatch(value) or int(value) < 1:
        raise _setting_error("streams", origin, "must be a whole number of at least 1")
    return int(value)


def _credits_setting(value: str, origin: str) -> CreditBudget:
    match = _CREDITS.fullmatch(value.lower())
    periods = {p.value: p for p in CreditPeriod}
    if match is not None and match.group(2) in periods:
        credits = float(match.group(1))
        if 0 < credits < math.inf:
            return CreditBudget(credits, periods[match.group(2)])
    raise _setting_error(
        "credits", origin, "must be a positive number per day, week or month, such as 500/month"
    )


def _seat_setting(value: str, origin: str) -> str:
    # A seat names a file (seats/NAME): the same characters as a key's name,
    # but never "." or "..".
    if not _NAME_CHARS.fullmatch(value) or value in (".", ".."):
        raise _setting_error("seat", origin, "must be 1-64 letters, digits or ._@:+- characters")
    return value


def parse_key_settings(words: Sequence[str], origin: str) -> KeySettings:
    """
    A key's settings from the words after its name: C{admin},
    C{rate=N/PERIOD}, C{streams=N}, C{credits=N/day|week|month} and
    C{seat=NAME}, each at most once, in any order.

    @param origin: where the words came from, for error messages, which name
        the setting but never echo a value.
    @raise KeyFileError: for an unknown or repeated setting, or a bad value.
    """
    seen: set[str] = set()
    admin = False
    rate: Rate | None = None
    streams: int | None = None
    credits: CreditBudget | None = None
    seat: str | None = None
    for word in words:
        name, has_value, value = word.partition("=")
        if name not in ("admin", "rate", "streams", "credits", "seat"):
            if _SHOWABLE_SETTING.fullmatch(name):
                raise KeyFileError(f"unknown setting {name!r} {origin}; known: {_SETTING_FORMS}")
            raise KeyFileError(f"a word {origin} is not a setting; known: {_SETTING_FORMS}")
        if name in seen:
            raise _setting_error(name, origin, "is given twice")
        seen.add(name)
        if name == "admin":
            if has_value:
                raise _setting_error(name, origin, "takes no value")
            admin = True
        elif not value:
            raise _setting_error(name, origin, f"needs a value: {name}=...")
        elif name == "rate":
            rate = _rate_setting(value, origin)
        elif name == "streams":
            streams = _streams_setting(value, origin)
        elif name == "credits":
            credits = _credits_setting(value, origin)
        else:
            seat = _seat_setting(value, origin)
    return KeySettings(admin, rate, streams, credits, seat)


def parse_keys_file(text: str, path: str) -> list[ClientKey]:
    """
    The keys in a keys file's text: C{KEY [NAME [SETTING ...]]} per line
    (see L{parse_key_settings}); blank lines and everything from a C{#} that
    starts a word on are ignored.  The second word is always the name, so
    settings need one before them.
    """
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        words = []
        for word in line.split():
            if word.startswith("#"):
                break
            words.append(word)
        if not words:
            continue
        origin = f"on line {number} of {path}"
        name = words[1] if len(words) >= 2 else None
        keys.append(client_key(words[0], name, origin, parse_key_settings(words[2:], origin)))
    return keys


def parse_keys_env(value: str) -> list[ClientKey]:
    """The keys in C{PROXY_CLIENT_KEYS}: comma-separated, unnamed."""
    keys = []
    for number, key in enumerate((k.strip() for k in value.split(",") if k.strip()), 1):
        keys.append(client_key(key, None, f"number {number} in PROXY_CLIENT_KEYS"))
    return keys


def read_keys_file(path: str) -> list[ClientKey]:
    """
    Read and parse a keys file.

    @raise KeyFileError: naming the file (not its content) when it cannot be
        read, is not a regular file, is larger than C{KEYS_FILE_LIMIT} or
        holds a bad line.
    """
    try:
        text = read_operator_file(path, KEYS_FILE_LIMIT).decode("utf-8")
    except OSError as e:
        raise KeyFileError(f"cannot read client keys file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"client keys file {path} is not text") from None
    return parse_keys_file(text, path)


def readable_by_others(path: str) -> bool:
    """Whether users other than the owner may read the keys file."""
    try:
        return bool(os.stat(path).st_mode & 0o044)
    except OSError:
        return False


def presented_keys(headers: Headers) -> list[bytes]:
    """
    The keys a request presents: C{Authorization: Bearer <key>} (OpenAI SDKs)
    and C{x-api-key: <key>} (Anthropic SDKs).  A client may send both, with
    a placeholder in one of them; either may carry the real key.
    """
    found = []
    for value in headers.getRawHeaders(b"authorization", ()):
        scheme, _, credential = value.strip().partition(b" ")
        if scheme.lower() == b"bearer" and credential.strip():
            found.append(credential.strip())
    for value in headers.getRawHeaders(b"x-api-key", ()):
        if value.strip():
            found.append(value.strip())
    return found[:4]


class KeyStore(Protocol):
    """
    What the proxy asks of the keys it knows: per process today, and the
    seam where a store shared between worker processes would go.
    """

    def __len__(self) -> int:
        """How many keys are configured; none means the proxy is open."""

    def identify(self, presented: Sequence[bytes]) -> str | None:
        """The label of the key among C{presented} that is known, or L{None}."""

    def find(self, presented: Sequence[bytes]) -> ClientKey | None:
        """
        The known key among C{presented}, with its settings as they are now
        (after the latest reload), or L{None}.
        """


class ClientKeys:
    """
    The keys of one process, replaceable at once (see L{replace}).
    """

    def __init__(self, keys: Iterable[ClientKey] = ()) -> None:
        self._keys: tuple[ClientKey, ...] = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"ClientKeys({len(self._keys)} keys)"

    def replace(self, keys: Iterable[ClientKey]) -> None:
        """Use these keys from now on: requests already admitted are unaffected."""
        self._keys = tuple(keys)

    def identify(self, presented: Sequence[bytes]) -> str | None:
        found = self.find(presented)
        return found.label if found is not None else None

    def find(self, presented: Sequence[bytes]) -> ClientKey | None:
        # Digests make every comparison the same length, and every key is
        # compared whatever matched, so timing tells nothing about the keys.
        found = None
        for candidate in presented:
            digest = _digest(candidate)
            for key in self._keys:
                if hmac.compare_digest(digest, key.digest) and found is None:
                    found = key
        return found


class KeysFromFile(ClientKeys):
    """
    Keys from a file plus fixed ones (from the environment), re-read from the
    file by L{reload}.
    """

    def __init__(self, path: str | None, fixed: Iterable[ClientKey] = ()) -> None:
        self.path = path
        self._fixed = tuple(fixed)
        super().__init__(self._load())

    def _load(self) -> list[ClientKey]:
        from_file = []
        if self.path is not None:
            from_file = read_keys_file(self.path)
            if not from_file:
                # An empty file must not silently open the proxy to anyone.
                raise KeyFileError(f"client keys file {self.path} holds no key")
        return [*from_file, *self._fixed]

    def reload(self) -> int:
        """
        Re-read the file; on any error keep the keys in use.

        @return: how many keys are in use now.
        @raise KeyFileError: when the file cannot be used (nothing changed).
        """
        self.replace(self._load())
        return len(self)


#: What a client without a valid key is told (401), wherever it is refused.
KEY_REQUIRED = (
    "a valid client key is required: send it as 'Authorization: Bearer <key>' or "
    "'x-api-key: <key>'"
)
#: The challenge of that 401.
KEY_CHALLENGE = b'Bearer realm="copilot-proxy"'


@dataclass(frozen=True)
class KeyCheck:
    """
    The verdict on the client key a request presents.

    @ivar allowed: whether the request may pass (a known key, or no keys
        configured).
    @ivar name: the known key's name, or L{None}.
    @ivar settings: the known key's settings (none without a known key).
    """

    allowed: bool
    name: str | None
    settings: KeySettings = field(default_factory=KeySettings)


def check_client_key(keys: KeyStore | None, headers: Headers) -> KeyCheck:
    """
    The one check of a request's client key, made by the access gate and,
    before the body is read, by the HTTP channel.
    """
    if keys is None or not len(keys):
        return KeyCheck(True, None)
    found = keys.find(presented_keys(headers))
    if found is None:
        return KeyCheck(False, None)
    return KeyCheck(True, found.label, found.settings)
