"""
Who gets through, and when: client keys, rate limits, stream caps, the
response cache, and their settings.
"""

from ._budgets import CreditBudgets
from ._cache import ResponseCache
from ._fleet_access import FleetAccess
from ._gate import AccessGate
from ._keys import (
    KEY_CHALLENGE,
    KEY_REQUIRED,
    NANO_AIU_PER_CREDIT,
    ClientKey,
    ClientKeys,
    CreditBudget,
    CreditPeriod,
    KeyCheck,
    KeyFileError,
    KeySettings,
    KeysFromFile,
    KeyStore,
    check_client_key,
    parse_key_settings,
    parse_keys_env,
    parse_keys_file,
    period_bounds,
    presented_keys,
    readable_by_others,
)
from ._rate_limit import (
    PerKeyRates,
    Rate,
    RateLimiter,
    TokenBuckets,
    key_burst,
    parse_rate,
    retry_after,
)
from ._settings import (
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_BODY,
    AccessConfig,
    RequestLimits,
    byte_size,
    count_option,
    is_private_listener,
    non_negative_seconds,
    rate_option,
)
from ._stream_slots import StreamSlots

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_MAX_BODY",
    "KEY_CHALLENGE",
    "KEY_REQUIRED",
    "NANO_AIU_PER_CREDIT",
    "AccessConfig",
    "AccessGate",
    "ClientKey",
    "ClientKeys",
    "CreditBudget",
    "CreditBudgets",
    "CreditPeriod",
    "FleetAccess",
    "KeyCheck",
    "KeyFileError",
    "KeySettings",
    "KeyStore",
    "KeysFromFile",
    "PerKeyRates",
    "Rate",
    "RateLimiter",
    "RequestLimits",
    "ResponseCache",
    "StreamSlots",
    "TokenBuckets",
    "byte_size",
    "check_client_key",
    "count_option",
    "is_private_listener",
    "key_burst",
    "non_negative_seconds",
    "parse_key_settings",
    "parse_keys_env",
    "parse_keys_file",
    "parse_rate",
    "period_bounds",
    "presented_keys",
    "rate_option",
    "readable_by_others",
    "retry_after",
]
