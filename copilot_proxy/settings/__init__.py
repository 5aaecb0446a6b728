"""The proxy's option values and their validation (pure)."""

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

__all__ = [
    "DEFAULT_ADMIN_PREFIX",
    "DEFAULT_PORT",
    "DEFAULT_UPSTREAM",
    "ConfigError",
    "LogFormat",
    "MessagesMode",
    "ProxyConfig",
    "admin_prefix",
    "check_token",
    "keepalive_seconds",
    "listen_description",
    "log_format_option",
    "messages_mode",
    "pem_certificates",
    "positive_seconds",
    "upstream_base",
]
