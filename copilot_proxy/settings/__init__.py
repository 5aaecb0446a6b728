"""
The proxy's option values and their validation (pure), and the one bounded
reader of the files they name.
"""

from ._config import (
    DEFAULT_ADMIN_PREFIX,
    DEFAULT_PORT,
    DEFAULT_UPSTREAM,
    ConfigError,
    LogFormat,
    MessagesMode,
    ProxyConfig,
    admin_prefix,
    check_token,
    keepalive_seconds,
    listen_description,
    log_format_option,
    messages_mode,
    pem_certificates,
    positive_seconds,
    upstream_base,
)
from ._operator_files import CA_BUNDLE_LIMIT, KEYS_FILE_LIMIT, TOKEN_FILE_LIMIT, read_operator_file
from ._redis_url import (
    DEFAULT_REDIS_PREFIX,
    DEFAULT_REDIS_TIMEOUT,
    RedisTarget,
    parse_redis_url,
    redis_prefix,
)

__all__ = [
    "CA_BUNDLE_LIMIT",
    "DEFAULT_ADMIN_PREFIX",
    "DEFAULT_PORT",
    "DEFAULT_REDIS_PREFIX",
    "DEFAULT_REDIS_TIMEOUT",
    "DEFAULT_UPSTREAM",
    "KEYS_FILE_LIMIT",
    "TOKEN_FILE_LIMIT",
    "ConfigError",
    "LogFormat",
    "MessagesMode",
    "ProxyConfig",
    "RedisTarget",
    "admin_prefix",
    "check_token",
    "keepalive_seconds",
    "listen_description",
    "log_format_option",
    "messages_mode",
    "parse_redis_url",
    "pem_certificates",
    "positive_seconds",
    "read_operator_file",
    "redis_prefix",
    "upstream_base",
]
