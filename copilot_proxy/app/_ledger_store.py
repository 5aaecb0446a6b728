"""
Which store the usage ledger of a deployment lives in: Redis when the
processes of several hosts share it (C{--redis}), else one SQLite file in
the state directory for the processes of one host.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed

from ..settings import DEFAULT_REDIS_PREFIX, ConfigError, parse_redis_url
from ..shared import LedgerRow, LedgerStore, RedisClient, SqliteLedger
from ..shared._redis_ledger import RedisLedger

LEDGER_FILE_NAME = "usage.sqlite3"


def ledger_path(state_dir: Path) -> Path:
    """The SQLite ledger of the proxy that keeps its state in C{state_dir}."""
    return state_dir / LEDGER_FILE_NAME


def open_ledger_store(
    reactor: Any,
    redis_url: str | None,
    state_dir: Path,
    *,
    create: bool = True,
    prefix: str = DEFAULT_REDIS_PREFIX,
    redis_timeout: float = 2.0,
) -> LedgerStore:
    """
    Open the ledger store of a deployment.

    @param redis_url: the C{--redis} URL, or L{None} for the SQLite file in
        C{state_dir}.
    @param create: whether a missing SQLite file is created (the proxy) or
        read as an empty ledger (a command that only reads, which must not
        leave behind a file the proxy's user may not be able to open).
    @param prefix: the deployment's C{--redis-prefix}.
    @param redis_timeout: the deadline of each Redis call (a command may wait
        longer than a request would).
    @raise ConfigError: with one line for the user, when the store cannot be
        opened; it never shows the URL, which may hold a password.
    """
    if redis_url:
        client = RedisClient(reactor, parse_redis_url(redis_url), redis_timeout)
        client.start()
        return RedisLedger(client, prefix, owns_client=True)
    path = ledger_path(state_dir)
    if not create and not path.exists():
        return _EmptyLedger()
    try:
        return SqliteLedger(path)
    except OSError as e:
        raise ConfigError(f"cannot open the usage ledger {path}: {e.strerror}") from None
    except sqlite3.Error as e:
        raise ConfigError(f"cannot open the usage ledger {path}: {e}") from None


class _EmptyLedger:
    """The ledger of a proxy that never ran: nothing in it, nothing kept."""

    def add(self, deltas: Mapping[tuple[str, str, str], Mapping[str, int]]) -> Deferred[None]:
        return succeed(None)

    def rows(self, since_day: str, key: str | None = None) -> Deferred[list[LedgerRow]]:
        return succeed([])

    def save_quota(self, headers: Mapping[str, str], seen_at: float) -> Deferred[None]:
        return succeed(None)

    def load_quota(self) -> Deferred[tuple[dict[str, str], float | None]]:
        return succeed(({}, None))

    def clear(self) -> Deferred[None]:
        return succeed(None)

    def save_presence(self, process: str, document: str, seen_at: float) -> Deferred[None]:
        return succeed(None)

    def load_presence(self, since: float) -> Deferred[list[tuple[str, str, float]]]:
        return succeed([])

    def close(self) -> None:
        pass
