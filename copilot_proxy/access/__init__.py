"""
Who gets through, and when: client keys, rate limits, stream caps, the
response cache, and their settings.
"""

from ._cache import ResponseCache
from ._gate import AccessGate, respond_error
from ._keys import (
    ClientKeys,
    KeyFileError,
    KeyStore,
    KeysFromFile,
    parse_keys_env,
    parse_keys_file,
    presented_keys,
    readable_by_others,
)
from ._rate_limit import Rate, TokenBuckets, parse_rate, retry_after
from ._settings import (
    AccessConfig,
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_BODY,
    RequestLimits,
    byte_size,
    count_option,
    is_private_listener,
    non_negative_seconds,
    rate_option,
)
from ._stream_slots import StreamSlots

__all__ = [
    "AccessConfig",
    "AccessGate",
    "ClientKeys",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_MAX_BODY",
    "KeyFileError",
    "KeyStore",
    "KeysFromFile",
    "Rate",
    "RequestLimits",
    "ResponseCache",
    "StreamSlots",
    "TokenBuckets",
    "byte_size",
    "count_option",
    "is_private_listener",
    "non_negative_seconds",
    "parse_keys_env",
    "parse_keys_file",
    "parse_rate",
    "presented_keys",
    "rate_option",
    "readable_by_others",
    "respond_error",
    "retry_after",
]
