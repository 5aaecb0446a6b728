"""
Who gets through, and when: client keys, rate limits, stream caps, the
response cache, and their settings.
"""

from ._cache import ResponseCache
from ._gate import AccessGate
from ._keys import (
    KEY_CHALLENGE,
    KEY_REQUIRED,
    ClientKeys,
    KeyFileError,
    KeysFromFile,
    KeyStore,
    check_client_key,
    parse_keys_env,
    parse_keys_file,
    presented_keys,
    readable_by_others,
)
from ._rate_limit import Rate, TokenBuckets, parse_rate, retry_after
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
    "AccessConfig",
    "AccessGate",
    "ClientKeys",
    "KeyFileError",
    "KeyStore",
    "KeysFromFile",
    "Rate",
    "RequestLimits",
    "ResponseCache",
    "StreamSlots",
    "TokenBuckets",
    "byte_size",
    "check_client_key",
    "count_option",
    "is_private_listener",
    "non_negative_seconds",
    "parse_keys_env",
    "parse_keys_file",
    "parse_rate",
    "presented_keys",
    "rate_option",
    "readable_by_others",
    "retry_after",
]
