"""
Where the shared state lives: C{--redis URL}, checked and kept with its
password hidden.

The forms are those Redis clients agree on: C{redis://[[user]:password@]
host[:port][/db]}, C{rediss://...} (TLS, the server's certificate verified
against the system's roots or C{?ca=PATH}) and C{unix://[[user]:password@]
/path/to/socket[?db=N]}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from ..wire import Secret
from ._config import ConfigError

DEFAULT_REDIS_PORT = 6379
DEFAULT_REDIS_PREFIX = "copilot-proxy:"
DEFAULT_REDIS_TIMEOUT = 0.5

_PREFIX_CHARS = re.compile(r"[A-Za-z0-9._:{}/-]{1,64}")


@dataclass(frozen=True)
class RedisTarget:
    """
    One Redis server and how to talk to it.

    @ivar tls: whether the connection is TLS (C{rediss://}).
    @ivar host: the host name or address, for TCP.
    @ivar port: the TCP port.
    @ivar path: the unix socket path, instead of a host.
    @ivar db: the database number C{SELECT}ed after connecting.
    @ivar username: the ACL user name, if any.
    @ivar password: the password, never shown.
    @ivar ca: a PEM file of roots to verify a TLS server with, instead of the
        system's.
    """

    tls: bool = False
    host: str | None = "127.0.0.1"
    port: int = DEFAULT_REDIS_PORT
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    ca: str | None = None

    def display(self) -> str:
        """The URL without its password: for logs, health and errors."""
        user = ""
        if self.password is not None or self.username:
            user = f"{self.username or ''}:***@"
        if self.path is not None:
            return f"unix://{user}{self.path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.db}"

    def __repr__(self) -> str:
        return f"RedisTarget({self.display()})"


def parse_redis_url(url: str) -> RedisTarget:
    """
    Check a C{--redis} URL.

    @raise ConfigError: with a message that never holds the password.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(
            "--redis must be redis://host:port/db, rediss://host:port/db or unix:///path"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            "--redis must start with redis://, rediss:// or unix:// "
            f"(not {scheme or 'nothing'}://)"
        )
    query = parse_qs(parts.query)
    username = unquote(parts.username) if parts.username else None
    password = Secret(unquote(parts.password)) if parts.password is not None else None
    ca = query.get("ca", [None])[-1]
    if scheme == "unix":
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigError(
                "--redis unix:// needs an absolute socket path: unix:///run/redis.sock"
            )
        return RedisTarget(
            host=None,
            path=path,
            db=_db(query.get("db", ["0"])[-1]),
            username=username,
            password=password,
        )
    host = parts.hostname
    if not host:
        raise ConfigError("--redis needs a host: redis://127.0.0.1:6379/0")
    db_text = parts.path.strip("/") or query.get("db", ["0"])[-1]
    return RedisTarget(
        tls=scheme == "rediss",
        host=host,
        port=port or DEFAULT_REDIS_PORT,
        db=_db(db_text),
        username=username,
        password=password,
        ca=ca,
    )


def _db(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ConfigError(f"--redis database must be a number (not {text[:20]!r})")
    return int(text)


def redis_prefix(text: str) -> str:
    """
    Check C{--redis-prefix}: the start of every key this deployment uses.

    @raise ConfigError: when it is empty, long or holds odd characters.
    """
    if not _PREFIX_CHARS.fullmatch(text):
        raise ConfigError(
            "--redis-prefix must be 1-64 letters, digits or ._:{}/- characters "
            f"(default {DEFAULT_REDIS_PREFIX})"
        )
    return text
