"""
The quota headers of Copilot answers, read into values.

Copilot answers carry C{x-quota-snapshot-<id>} (C{chat}, C{completions},
C{premium_interactions}, C{premium_models}) and C{x-usage-ratelimit-session}
and C{-weekly}, each a URL-encoded query string
C{ent=<int>&ov=<float>&ovPerm=<bool>&rem=<percent left>&rst=<ISO-8601>}
(the 2026 notes, 6.3).  They come from the network: nothing here raises on
what an upstream sends, a field that cannot be read is L{None}, and a header
with nothing readable is skipped.

Pure: no I/O, no Twisted; headers come in as (name, values) pairs, which is
what C{Headers.getAllRawHeaders()} yields.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

#: At most this many snapshots are read from one answer.
MAX_SNAPSHOTS = 16
#: A quota name longer than this is not a quota name.
MAX_NAME_LENGTH = 48
# A header value longer than this is not a quota header value (a real one
# is about 70 bytes); nor is a field value longer than _MAX_FIELD.
_MAX_VALUE = 512
_MAX_FIELD = 64

# Header name prefix (lower-case) -> nothing: the quota's name is the rest.
# Twisted hands names over capitalised (X-Quota-Snapshot-Chat), so they are
# lowered once, and only for names that start with "x-".
_PREFIXES = (b"x-quota-snapshot-", b"x-usage-ratelimit-")
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_-.")
_FIELDS = frozenset({"ent", "ov", "ovPerm", "rem", "rst"})


@dataclass(frozen=True)
class QuotaSnapshot:
    """
    One quota as one upstream answer saw it.

    @ivar name: the quota's name: the header's C{<id>} for
        C{x-quota-snapshot-<id>} (C{premium_interactions}, C{chat}, ...), or
        C{session} / C{weekly} for C{x-usage-ratelimit-*}.  Lower-case
        letters, digits, C{_}, C{-} and C{.}, at most L{MAX_NAME_LENGTH}.
    @ivar entitlement: C{ent}: what the plan grants, C{-1} for unlimited.
    @ivar overage: C{ov}: the overage used so far (never negative).
    @ivar overage_permitted: C{ovPerm}: whether use may go past the quota.
    @ivar percent_remaining: C{rem}: the share left, clamped to [0, 100].
    @ivar resets_at: C{rst}: when the quota resets, as POSIX seconds.
    """

    name: str
    entitlement: int | None = None
    overage: float | None = None
    overage_permitted: bool | None = None
    percent_remaining: float | None = None
    resets_at: float | None = None

    @property
    def unlimited(self) -> bool:
        """Whether the plan grants this quota without limit."""
        return self.entitlement == -1


def quota_name(header: bytes) -> str | None:
    """
    The quota a header name carries, or L{None} when it is not a quota
    header (or names its quota with anything but the few characters allowed).
    """
    if header[:2] not in (b"x-", b"X-"):
        return None
    lowered = header.lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            rest = lowered[len(prefix) :]
            if 0 < len(rest) <= MAX_NAME_LENGTH and _NAME_BYTES.issuperset(rest):
                return rest.decode("ascii")
            return None
    return None


def parse_quota_header(name: bytes, value: bytes) -> QuotaSnapshot | None:
    """
    Read one quota header.

    @param name: the header name, in any case.
    @param value: its value.
    @return: the snapshot, or L{None} when the name is no quota header's or
        the value has no field that can be read.  Never raises.
    """
    quota = quota_name(name)
    if quota is None:
        return None
    return _parse_value(quota, value)


def quota_headers(headers: Iterable[tuple[bytes, Sequence[bytes]]]) -> list[QuotaSnapshot]:
    """
    The quota snapshots of an answer's headers, at most L{MAX_SNAPSHOTS},
    one per name (the last value of a repeated header counts).

    Cheap for answers without any: each name is looked at once, and only
    names starting with C{x-} are looked at twice.  Never raises.

    @param headers: (name, values) pairs, such as
        C{Headers.getAllRawHeaders()} yields.
    """
    found: dict[str, QuotaSnapshot] = {}
    for name, values in headers:
        quota = quota_name(name)
        if quota is None or not values:
            continue
        if quota not in found and len(found) >= MAX_SNAPSHOTS:
            continue
        snapshot = _parse_value(quota, values[-1])
        if snapshot is not None:
            found[quota] = snapshot
    return list(found.values())


def _parse_value(name: str, value: bytes) -> QuotaSnapshot | None:
    if len(value) > _MAX_VALUE:
        return None
    fields: dict[str, str] = {}
    for pair in value.decode("latin-1").split("&"):
        key, _, raw = pair.strip().partition("=")
        if key in _FIELDS and key not in fields and len(raw) <= _MAX_FIELD * 3:
            fields[key] = unquote_plus(raw).strip()
    if not fields:
        return None
    snapshot = QuotaSnapshot(
        name,
        entitlement=_integer(fields.get("ent")),
        overage=_overage(fields.get("ov")),
        overage_permitted=_boolean(fields.get("ovPerm")),
        percent_remaining=_percent(fields.get("rem")),
        resets_at=_timestamp(fields.get("rst")),
    )
    if snapshot == QuotaSnapshot(name):
        return None
    return snapshot


def _integer(text: str | None) -> int | None:
    if text is None or len(text) > 18:
        return None
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    return int(text)


def _number(text: str | None) -> float | None:
    """A finite decimal number; L{None} for anything else (C{nan}, C{1e999})."""
    if text is None or len(text) > _MAX_FIELD or not text.isascii():
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _overage(text: str | None) -> float | None:
    number = _number(text)
    return None if number is None or number < 0 else number


def _percent(text: str | None) -> float | None:
    number = _number(text)
    return None if number is None else min(100.0, max(0.0, number))


def _boolean(text: str | None) -> bool | None:
    if text is None:
        return None
    return {"true": True, "false": False}.get(text.lower())


def _timestamp(text: str | None) -> float | None:
    """An ISO-8601 time as POSIX seconds; a time without a zone is UTC."""
    if text is None or len(text) > _MAX_FIELD or not text.isascii():
        return None
    if text[-1:] in ("Z", "z"):
        # Python 3.10's fromisoformat does not know the "Z" suffix.
        text = text[:-1] + "+00:00"
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
