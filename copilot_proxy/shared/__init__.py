"""
State shared by every process of a deployment: the Redis client and what
lives in Redis (rate limits, stream leases, the C{/models} cache), and the
usage ledger (in Redis, or in an SQLite file in the state directory).
"""

from ._fleet import LEASE_RENEW_EVERY, LEASE_TTL, CachedAnswer, Fleet
from ._ledger import (
    COUNTERS,
    DEFAULT_USAGE_DAYS,
    Ledger,
    LedgerRow,
    LedgerStore,
    seat_label,
    usage_document,
)
from ._presence import PRESENCE_TTL, PUBLISH_EVERY, Presence, process_name
from ._redis import RedisClient, SharedStateUnavailable
from ._sqlite_ledger import SqliteLedger
from ._state import SharedConfig, SharedState

__all__ = [
    "COUNTERS",
    "DEFAULT_USAGE_DAYS",
    "LEASE_RENEW_EVERY",
    "LEASE_TTL",
    "PRESENCE_TTL",
    "PUBLISH_EVERY",
    "CachedAnswer",
    "Fleet",
    "Ledger",
    "LedgerRow",
    "LedgerStore",
    "Presence",
    "RedisClient",
    "SharedConfig",
    "SharedState",
    "SharedStateUnavailable",
    "SqliteLedger",
    "process_name",
    "seat_label",
    "usage_document",
]
