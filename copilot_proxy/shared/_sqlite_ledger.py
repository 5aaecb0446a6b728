"""
The usage ledger in one SQLite file, for the processes of one host.

The calls run on the reactor thread, so each is one short transaction: WAL
journal (readers never wait for a writer), C{synchronous=NORMAL} (no fsync
per commit; a power cut may lose the last second of counts, never corrupt
the file) and a short busy timeout.  A writer that still finds the file
locked fails at once, and the L{Ledger} sends the same counts again with the
next flush.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed

from ._ledger import COUNTERS, LedgerCell, LedgerRow

#: The schema this code writes, in C{PRAGMA user_version}: a later version
#: migrates from the number it finds.
SCHEMA_VERSION = 2

# Opening may wait for another process creating the schema: once, at start.
_OPEN_TIMEOUT_MS = 5000
# Each add and read afterwards: short, it holds up the reactor.
_BUSY_TIMEOUT_MS = 200

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    {", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in COUNTERS)},
    PRIMARY KEY (day, key, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    headers TEXT NOT NULL,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS presence (
    process TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    seen_at REAL NOT NULL
);
"""
# Version 2 added the presence table; every statement of the schema is
# "if not exists", so applying it whole migrates version 1.

# The statements are built from the column names in COUNTERS, constants;
# every value is bound.
_ADD = (
    f"INSERT INTO usage (day, key, model, {', '.join(COUNTERS)}) "  # noqa: S608
    f"VALUES (?, ?, ?, {', '.join('?' for _ in COUNTERS)}) "
    "ON CONFLICT (day, key, model) DO UPDATE SET "
    + ", ".join(f"{name} = {name} + excluded.{name}" for name in COUNTERS)
)

_ROWS = f"SELECT day, key, model, {', '.join(COUNTERS)} FROM usage WHERE day >= ?"  # noqa: S608

_SAVE_QUOTA = (
    "INSERT INTO quota (id, headers, seen_at) VALUES (1, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET headers = excluded.headers, seen_at = excluded.seen_at "
    "WHERE excluded.seen_at >= quota.seen_at"
)


class SqliteLedger:
    """
    A L{LedgerStore<copilot_proxy.shared.LedgerStore>} in an SQLite file
    that several processes of one host may open at once.  Every Deferred it
    returns has fired already.
    """

    def __init__(self, path: Path) -> None:
        """
        Open C{path}, creating it (mode 0600) and its schema if need be.

        @raise OSError: when the file cannot be created (its directory must
            exist).
        @raise sqlite3.Error: when it is not a usage ledger, is one of a
            newer schema, or stays locked.
        """
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            os.close(fd)
        self._db = sqlite3.connect(path, timeout=_OPEN_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"{self.path} has usage ledger schema {version}, newer than this "
                    f"copilot-proxy knows ({SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")

    def add(self, deltas: Mapping[LedgerCell, Mapping[str, int]]) -> Deferred[None]:
        """Add C{deltas} in one transaction: all of them or, failing, none."""
        values = []
        for (day, key, model), counts in deltas.items():
            unknown = set(counts).difference(COUNTERS)
            if unknown:
                return fail(ValueError(f"unknown ledger counter(s): {', '.join(sorted(unknown))}"))
            values.append((day, key, model, *(int(counts.get(name, 0)) for name in COUNTERS)))
        if not values:
            return succeed(None)
        try:
            self._write(_ADD, values)
        except sqlite3.Error as e:
            return fail(e)
        return succeed(None)

    def rows(self, since_day: str, key: str | None = None) -> Deferred[list[LedgerRow]]:
        """The rows of C{since_day} on, of C{key} only when given, by day, key and model."""
        query, parameters = _ROWS, [since_day]
        if key is not None:
            query += " AND key = ?"
            parameters.append(key)
        try:
            found = self._db.execute(query + " ORDER BY day, key, model", parameters).fetchall()
        except sqlite3.Error as e:
            return fail(e)
        return succeed(
            [
                LedgerRow(day, label, model, dict(zip(COUNTERS, counts, strict=True)))
                for day, label, model, *counts in found
            ]
        )

    def save_quota(self, headers: Mapping[str, str], seen_at: float) -> Deferred[None]:
        """Replace the saved quota headers, unless newer ones are saved already."""
        try:
            self._write(_SAVE_QUOTA, [(json.dumps(dict(headers), sort_keys=True), seen_at)])
        except sqlite3.Error as e:
            return fail(e)
        return succeed(None)

    def load_quota(self) -> Deferred[tuple[dict[str, str], float | None]]:
        """The saved quota headers and when they were seen; C{({}, None)} if none."""
        try:
            found = self._db.execute("SELECT headers, seen_at FROM quota WHERE id = 1").fetchone()
        except sqlite3.Error as e:
            return fail(e)
        if found is None:
            return succeed(({}, None))
        headers = json.loads(found[0])
        return succeed(({str(k): str(v) for k, v in headers.items()}, float(found[1])))

    def clear(self) -> Deferred[None]:
        """Forget every count."""
        try:
            self._write("DELETE FROM usage", [()])
        except sqlite3.Error as e:
            return fail(e)
        return succeed(None)

    def save_presence(self, process: str, document: str, seen_at: float) -> Deferred[None]:
        """Replace C{process}'s published view, and forget views long gone."""
        try:
            self._write(
                "INSERT INTO presence (process, document, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (process) DO UPDATE SET document = excluded.document, "
                "seen_at = excluded.seen_at",
                [(process, document, seen_at)],
            )
            self._write("DELETE FROM presence WHERE seen_at < ?", [(seen_at - 3600,)])
        except sqlite3.Error as e:
            return fail(e)
        return succeed(None)

    def load_presence(self, since: float) -> Deferred[list[tuple[str, str, float]]]:
        """The views published at C{since} or later."""
        try:
            found = self._db.execute(
                "SELECT process, document, seen_at FROM presence WHERE seen_at >= ?", (since,)
            ).fetchall()
        except sqlite3.Error as e:
            return fail(e)
        return succeed([(str(p), str(d), float(t)) for p, d, t in found])

    def close(self) -> None:
        """Close the file; calling it again does nothing."""
        self._db.close()

    def _write(self, statement: str, values: list[tuple[object, ...]]) -> None:
        # IMMEDIATE takes the write lock first, so a busy file fails here,
        # before anything is written, rather than at COMMIT.
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(statement, values)
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
