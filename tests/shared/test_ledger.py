"""
The usage ledger: counting in memory, flushing to a store without losing a
count when the store fails, the usage document, UTC days, and the SQLite
store shared by the processes of one host.
"""

from __future__ import annotations

import calendar
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.python.failure import Failure

import copilot_proxy.shared as shared
from copilot_proxy.shared import (
    COUNTERS,
    DEFAULT_USAGE_DAYS,
    Ledger,
    LedgerRow,
    SqliteLedger,
    usage_document,
)
from copilot_proxy.shared._ledger import first_day, utc_day

_T = TypeVar("_T")
Cell = tuple[str, str, str]

# 2026-12-02 23:59:58 UTC: two seconds before a day ends.
LATE = float(calendar.timegm((2026, 12, 2, 23, 59, 58)))
PROJECT = Path(__file__).resolve().parents[2]


def _fired(d: Deferred[_T]) -> _T:
    """The result of a Deferred that has fired; its failure raised."""
    results: list[_T] = []
    failures: list[Failure] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, "the Deferred has not fired"
    return results[0]


def _zeros(**counts: int) -> dict[str, int]:
    return {**dict.fromkeys(COUNTERS, 0), **counts}


class MemoryStore:
    """A LedgerStore in a dict that can be told to fail or to answer later."""

    def __init__(self) -> None:
        self.cells: dict[Cell, dict[str, int]] = {}
        self.adds: list[dict[Cell, dict[str, int]]] = []
        self.failing = False
        self.later: list[Deferred[None]] = []
        self.answer_later = False
        self.closed = False

    def add(self, deltas: Mapping[Cell, Mapping[str, int]]) -> Deferred[None]:
        batch = {cell: dict(counts) for cell, counts in deltas.items()}
        self.adds.append(batch)
        if self.failing:
            return fail(sqlite3.OperationalError("database is locked"))
        if self.answer_later:
            d: Deferred[None] = Deferred()
            d.addCallback(lambda _: self._apply(batch))
            self.later.append(d)
            return d
        self._apply(batch)
        return succeed(None)

    def _apply(self, batch: dict[Cell, dict[str, int]]) -> None:
        for cell, counts in batch.items():
            totals = self.cells.setdefault(cell, {})
            for name, value in counts.items():
                totals[name] = totals.get(name, 0) + value

    def rows(self, since_day: str, key: str | None = None) -> Deferred[list[LedgerRow]]:
        return succeed(
            [
                LedgerRow(day, label, model, dict(counts))
                for (day, label, model), counts in sorted(self.cells.items())
                if day >= since_day and key in (None, label)
            ]
        )

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
        self.closed = True


def _ledger(start: float = LATE) -> tuple[Clock, MemoryStore, Ledger]:
    clock = Clock()
    clock.advance(start)
    store = MemoryStore()
    return clock, store, Ledger(clock, store)


# The aggregator -----------------------------------------------------------


def test_counts_stay_in_memory_until_the_flush_and_go_in_one_add() -> None:
    clock, store, ledger = _ledger()
    ledger.start()
    ledger.count("alice", "gpt-4.1", requests=1, input_tokens=10, cached_tokens=4)
    ledger.count("alice", "gpt-4.1", requests=1, input_tokens=5, output_tokens=7)
    ledger.count("bob", "claude-sonnet-4", refused=1)
    assert store.adds == []
    clock.advance(1)
    assert store.adds == [
        {
            ("2026-12-02", "alice", "gpt-4.1"): {
                "requests": 2,
                "input_tokens": 15,
                "cached_tokens": 4,
                "output_tokens": 7,
            },
            ("2026-12-02", "bob", "claude-sonnet-4"): {"refused": 1},
        }
    ]
    clock.advance(5)
    assert len(store.adds) == 1, "nothing counted, nothing added"


def test_an_unknown_counter_is_a_programming_error() -> None:
    _, _, ledger = _ledger()
    with pytest.raises(TypeError, match="tokens"):
        ledger.count("alice", "gpt-4.1", tokens=3)


def test_counts_a_failed_store_refused_are_merged_into_the_next_flush() -> None:
    clock, store, ledger = _ledger(LATE - 100)
    ledger.start()
    ledger.count("alice", "gpt-4.1", requests=1, nano_aiu=1_000)
    store.failing = True
    clock.advance(1)
    clock.advance(1)
    assert len(store.adds) == 2 and store.cells == {}
    ledger.count("alice", "gpt-4.1", requests=1, nano_aiu=500)
    ledger.count("bob", "gpt-4.1", errors=1)
    store.failing = False
    clock.advance(1)
    assert store.cells == {
        ("2026-12-02", "alice", "gpt-4.1"): {"requests": 2, "nano_aiu": 1_500},
        ("2026-12-02", "bob", "gpt-4.1"): {"errors": 1},
    }
    clock.advance(1)
    assert len(store.adds) == 3, "nothing is sent again once stored"


def test_a_failing_store_is_logged_once_and_its_recovery_once(
    log_events: list[dict[str, Any]],
) -> None:
    clock, store, ledger = _ledger()
    ledger.start()
    store.failing = True
    for _ in range(10):
        ledger.count("alice", "gpt-4.1", requests=1)
        clock.advance(1)
    store.failing = False
    clock.advance(1)
    store.failing = True
    ledger.count("alice", "gpt-4.1", requests=1)
    clock.advance(1)
    lines = [formatEvent(e) for e in log_events if "usage ledger" in formatEvent(e)]
    assert len(lines) == 3, lines
    assert "database is locked" in lines[0] and "keeping them" in lines[0]
    assert "stored again" in lines[1]
    assert "database is locked" in lines[2]


def test_flushes_never_overlap_and_a_second_one_waits_for_the_first() -> None:
    clock, store, ledger = _ledger()
    store.answer_later = True
    ledger.count("alice", "gpt-4.1", requests=1)
    first = ledger.flush()
    ledger.count("alice", "gpt-4.1", requests=1)
    second = ledger.flush()
    assert len(store.adds) == 1
    store.later[0].callback(None)
    _fired(first)
    assert len(store.adds) == 2
    store.later[1].callback(None)
    _fired(second)
    assert store.cells == {("2026-12-02", "alice", "gpt-4.1"): {"requests": 2}}


def test_a_flush_fails_when_the_store_fails_but_loses_nothing() -> None:
    clock, store, ledger = _ledger()
    ledger.count("alice", "gpt-4.1", requests=3)
    store.failing = True
    with pytest.raises(sqlite3.OperationalError):
        _fired(ledger.flush())
    store.failing = False
    _fired(ledger.flush())
    assert store.cells == {("2026-12-02", "alice", "gpt-4.1"): {"requests": 3}}


def test_stop_flushes_the_last_counts_and_closes_the_store() -> None:
    clock, store, ledger = _ledger()
    ledger.start()
    ledger.count("alice", "gpt-4.1", requests=1)
    _fired(ledger.stop())
    assert store.cells == {("2026-12-02", "alice", "gpt-4.1"): {"requests": 1}}
    assert store.closed
    clock.advance(10)
    assert len(store.adds) == 1, "no flush after stop"


def test_stop_closes_the_store_even_when_the_last_flush_fails() -> None:
    clock, store, ledger = _ledger()
    ledger.count("alice", "gpt-4.1", requests=1)
    store.failing = True
    _fired(ledger.stop())
    assert store.closed


def test_counts_go_to_the_utc_day_they_happen_in() -> None:
    clock, store, ledger = _ledger()
    ledger.count("alice", "gpt-4.1", requests=1)
    clock.advance(1.5)  # 23:59:59.5
    ledger.count("alice", "gpt-4.1", requests=1)
    clock.advance(0.5)  # midnight: the next day
    ledger.count("alice", "gpt-4.1", requests=1)
    _fired(ledger.flush())
    assert store.cells == {
        ("2026-12-02", "alice", "gpt-4.1"): {"requests": 2},
        ("2026-12-03", "alice", "gpt-4.1"): {"requests": 1},
    }


def test_day_arithmetic_is_utc_and_crosses_months_years_and_leap_days() -> None:
    assert utc_day(0) == "1970-01-01"
    assert utc_day(LATE) == "2026-12-02"
    assert utc_day(LATE + 2) == "2026-12-03"
    assert first_day("2026-12-02", 1) == "2026-12-02"
    assert first_day("2026-12-02", 30) == "2026-11-03"
    assert first_day("2027-01-01", 2) == "2026-12-31"
    assert first_day("2028-03-01", 2) == "2028-02-29"
    assert first_day("0001-01-05", 1000) == "0001-01-01"
    with pytest.raises(ValueError):
        first_day("2026-12-02", 0)


# The usage document --------------------------------------------------------


def test_the_usage_document_sums_days_sorts_keys_and_models_and_has_every_counter() -> None:
    rows = [
        LedgerRow("2026-12-01", "bob", "gpt-4.1", {"requests": 1}),
        LedgerRow("2026-12-02", "alice", "gpt-4.1", {"requests": 2, "nano_aiu": 7}),
        LedgerRow("2026-12-01", "alice", "gpt-4.1", {"requests": 3, "input_tokens": 9}),
        LedgerRow("2026-12-02", "alice", "claude-sonnet-4", {"refused": 1}),
        LedgerRow("2026-12-02", "seat/alice", "gpt-4.1", {"requests": 2}),
        LedgerRow("2026-11-30", "alice", "gpt-4.1", {"requests": 100}),  # before the span
        LedgerRow("2026-12-03", "carol", "gpt-4.1", {"requests": 100}),  # after it
    ]
    document = usage_document(rows, "2026-12-01", "2026-12-02", 2)
    assert document == {
        "since": "2026-12-01",
        "until": "2026-12-02",
        "days": 2,
        "keys": {
            "alice": {
                "claude-sonnet-4": _zeros(refused=1),
                "gpt-4.1": _zeros(requests=5, input_tokens=9, nano_aiu=7),
            },
            "bob": {"gpt-4.1": _zeros(requests=1)},
        },
        "seats": {"alice": {"gpt-4.1": _zeros(requests=2)}},
    }
    assert list(document["keys"]) == ["alice", "bob"]
    assert list(document["keys"]["alice"]) == ["claude-sonnet-4", "gpt-4.1"]
    assert list(document["keys"]["bob"]["gpt-4.1"]) == list(COUNTERS)


def test_an_empty_ledger_is_an_empty_document() -> None:
    assert usage_document([], "2026-12-02", "2026-12-02", 1) == {
        "since": "2026-12-02",
        "until": "2026-12-02",
        "days": 1,
        "keys": {},
        "seats": {},
    }


def test_usage_flushes_first_and_one_day_means_today_only() -> None:
    clock, store, ledger = _ledger()
    store.cells[("2026-12-01", "alice", "gpt-4.1")] = {"requests": 4}
    ledger.count("alice", "gpt-4.1", requests=1, output_tokens=3)
    today = _fired(ledger.usage(1))
    assert store.cells[("2026-12-02", "alice", "gpt-4.1")] == {"requests": 1, "output_tokens": 3}
    assert today["since"] == today["until"] == "2026-12-02"
    assert today["keys"] == {"alice": {"gpt-4.1": _zeros(requests=1, output_tokens=3)}}
    month = _fired(ledger.usage(DEFAULT_USAGE_DAYS))
    assert (month["since"], month["until"], month["days"]) == ("2026-11-03", "2026-12-02", 30)
    assert month["keys"]["alice"]["gpt-4.1"]["requests"] == 5


def test_usage_of_one_key_leaves_the_others_out() -> None:
    clock, store, ledger = _ledger()
    ledger.count("alice", "gpt-4.1", requests=1)
    ledger.count("bob", "gpt-4.1", requests=2)
    assert list(_fired(ledger.usage(7, key="bob"))["keys"]) == ["bob"]
    assert _fired(ledger.usage(7, key="nobody"))["keys"] == {}


def test_usage_still_shows_the_counts_a_failing_store_refused() -> None:
    clock, store, ledger = _ledger()
    ledger.count("alice", "gpt-4.1", requests=2)
    store.failing = True
    document = _fired(ledger.usage(1))
    assert document["keys"]["alice"]["gpt-4.1"]["requests"] == 2
    store.failing = False
    _fired(ledger.flush())
    assert store.cells == {("2026-12-02", "alice", "gpt-4.1"): {"requests": 2}}


def test_usage_at_a_given_time_covers_the_days_up_to_it() -> None:
    clock, store, ledger = _ledger()
    store.cells[("2026-12-02", "alice", "gpt-4.1")] = {"requests": 4}
    earlier = _fired(ledger.usage(1, now=LATE - 86400))
    assert (earlier["since"], earlier["until"]) == ("2026-12-01", "2026-12-01")
    assert earlier["keys"] == {}


def test_usage_of_no_days_is_refused() -> None:
    _, _, ledger = _ledger()
    with pytest.raises(ValueError):
        ledger.usage(0)


def test_spent_nano_aiu_sums_the_key_from_the_day_of_a_time_including_pending() -> None:
    clock, store, ledger = _ledger()
    store.cells[("2026-11-30", "alice", "gpt-4.1")] = {"nano_aiu": 1_000_000}
    store.cells[("2026-12-01", "alice", "gpt-4.1")] = {"nano_aiu": 20}
    store.cells[("2026-12-01", "alice", "claude-sonnet-4")] = {"nano_aiu": 300}
    store.cells[("2026-12-01", "bob", "gpt-4.1")] = {"nano_aiu": 4_000}
    ledger.count("alice", "gpt-4.1", requests=1, nano_aiu=5)
    ledger.count("bob", "gpt-4.1", nano_aiu=50_000)
    # Any time on 2026-12-01 counts that whole day.
    since = float(calendar.timegm((2026, 12, 1, 18, 0, 0)))
    assert _fired(ledger.spent_nano_aiu("alice", since)) == 325
    assert _fired(ledger.spent_nano_aiu("carol", since)) == 0
    assert store.adds == [], "asking what was spent flushes nothing"
    _fired(ledger.flush())
    assert _fired(ledger.spent_nano_aiu("alice", since)) == 325, "counted once after a flush"


def test_spent_nano_aiu_waits_for_a_running_flush_and_counts_it_once() -> None:
    clock, store, ledger = _ledger()
    store.answer_later = True
    ledger.count("alice", "gpt-4.1", nano_aiu=7)
    ledger.flush()
    spent = ledger.spent_nano_aiu("alice", LATE)
    assert not spent.called
    store.later[0].callback(None)
    assert _fired(spent) == 7


def test_the_ledger_is_exported_with_its_counters_in_order() -> None:
    ledger_names = {
        "COUNTERS",
        "DEFAULT_USAGE_DAYS",
        "Ledger",
        "LedgerRow",
        "LedgerStore",
        "SqliteLedger",
        "usage_document",
    }
    assert ledger_names <= set(shared.__all__)
    for name in shared.__all__:
        assert getattr(shared, name) is not None
    assert COUNTERS == (
        "requests",
        "refused",
        "errors",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "reasoning_tokens",
        "nano_aiu",
    )


# The SQLite store ----------------------------------------------------------


def test_two_sqlite_ledgers_on_one_file_add_up(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    first, second = SqliteLedger(path), SqliteLedger(path)
    cell = ("2026-12-02", "alice", "gpt-4.1")
    _fired(first.add({cell: {"requests": 1, "nano_aiu": 10}}))
    _fired(second.add({cell: {"requests": 2, "output_tokens": 5}}))
    _fired(first.add({("2026-12-02", "bob", "gpt-4.1"): {"errors": 1}}))
    for store in (first, second):
        assert _fired(store.rows("2026-12-02", "alice")) == [
            LedgerRow(*cell, _zeros(requests=3, nano_aiu=10, output_tokens=5))
        ]
    first.close()
    second.close()


def test_sqlite_rows_are_of_the_days_asked_for(tmp_path: Path) -> None:
    store = SqliteLedger(tmp_path / "usage.sqlite3")
    _fired(
        store.add(
            {
                ("2026-11-30", "alice", "gpt-4.1"): {"requests": 1},
                ("2026-12-01", "bob", "gpt-4.1"): {"requests": 2},
                ("2026-12-02", "alice", "claude-sonnet-4"): {"requests": 3},
            }
        )
    )
    assert [(r.day, r.key, r.model) for r in _fired(store.rows("2026-12-01"))] == [
        ("2026-12-01", "bob", "gpt-4.1"),
        ("2026-12-02", "alice", "claude-sonnet-4"),
    ]
    assert _fired(store.rows("2026-12-03")) == []
    store.close()


def test_sqlite_counts_and_quota_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    store = SqliteLedger(path)
    cell = ("2026-12-02", "alice", "gpt-4.1")
    _fired(store.add({cell: {"requests": 1, "nano_aiu": 2_500_000_000}}))
    _fired(store.save_quota({"x-quota-snapshot-chat": "ent=0&rem=100"}, 1000.5))
    store.close()
    again = SqliteLedger(path)
    _fired(again.add({cell: {"requests": 1}}))
    assert _fired(again.rows("2026-01-01")) == [
        LedgerRow(*cell, _zeros(requests=2, nano_aiu=2_500_000_000))
    ]
    assert _fired(again.load_quota()) == ({"x-quota-snapshot-chat": "ent=0&rem=100"}, 1000.5)
    again.close()


def test_sqlite_quota_keeps_the_newest_headers(tmp_path: Path) -> None:
    store = SqliteLedger(tmp_path / "usage.sqlite3")
    assert _fired(store.load_quota()) == ({}, None)
    _fired(store.save_quota({"a": "1"}, 200.0))
    _fired(store.save_quota({"b": "2"}, 100.0))  # an older answer, saved late
    assert _fired(store.load_quota()) == ({"a": "1"}, 200.0)
    _fired(store.save_quota({"c": "3"}, 300.0))
    assert _fired(store.load_quota()) == ({"c": "3"}, 300.0)
    store.close()


def test_the_sqlite_ledger_and_its_journal_are_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    old = os.umask(0o022)
    try:
        store = SqliteLedger(path)
        _fired(store.add({("2026-12-02", "alice", "gpt-4.1"): {"requests": 1}}))
        files = [p for p in tmp_path.iterdir() if p.name.startswith(path.name)]
        assert path in files and len(files) >= 2, files  # the WAL journal is there
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        store.close()
    finally:
        os.umask(old)


def test_the_sqlite_ledger_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    SqliteLedger(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA user_version").fetchone() == (2,)
    db.close()


def test_a_version_1_ledger_is_migrated_and_keeps_its_counts(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE usage (day TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, "
        + ", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in COUNTERS)
        + ", PRIMARY KEY (day, key, model)) WITHOUT ROWID"
    )
    db.execute("INSERT INTO usage (day, key, model, requests) VALUES ('2026-12-01', 'a', 'm', 3)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    ledger = SqliteLedger(path)
    rows: list[Any] = []
    ledger.rows("2026-12-01").addCallback(rows.extend)
    assert [(r.key, r.counts["requests"]) for r in rows] == [("a", 3)]
    views: list[Any] = []
    ledger.save_presence("host:1", "{}", 100.0)
    ledger.load_presence(50.0).addCallback(views.extend)
    assert views == [("host:1", "{}", 100.0)]
    ledger.close()


def test_a_ledger_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    SqliteLedger(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        SqliteLedger(path)


def test_a_ledger_in_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SqliteLedger(tmp_path / "nowhere" / "usage.sqlite3")


def test_sqlite_add_of_an_unknown_counter_fails_and_adds_nothing(tmp_path: Path) -> None:
    store = SqliteLedger(tmp_path / "usage.sqlite3")
    deltas = {
        ("2026-12-02", "alice", "gpt-4.1"): {"requests": 1},
        ("2026-12-02", "bob", "gpt-4.1"): {"bogus": 1},
    }
    with pytest.raises(ValueError, match="bogus"):
        _fired(store.add(deltas))
    assert _fired(store.rows("2026-01-01")) == []
    store.close()


def test_a_locked_sqlite_file_fails_the_flush_and_the_next_one_catches_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.sqlite3"
    clock = Clock()
    clock.advance(LATE)
    store = SqliteLedger(path)
    ledger = Ledger(clock, store)
    ledger.start()
    ledger.count("alice", "gpt-4.1", requests=1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO usage (day, key, model) VALUES ('2026-12-02', 'x', 'y')")
    clock.advance(1)
    ledger.count("alice", "gpt-4.1", requests=1)
    other.execute("ROLLBACK")
    other.close()
    clock.advance(1)
    rows = _fired(store.rows("2026-12-02"))
    assert rows == [LedgerRow("2026-12-02", "alice", "gpt-4.1", _zeros(requests=2))]
    _fired(ledger.stop())


# Written to a file and run by separate Python processes: each opens the
# ledger file, waits for the start signal, then counts and flushes ROUNDS
# times (one second a round, across midnight), retrying what the locked
# file refused, as the proxy's workers do.
_HAMMER = """
import sys, time
from pathlib import Path
from twisted.internet.task import Clock
from copilot_proxy.shared import Ledger, SqliteLedger

path, go, who = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
rounds, start = int(sys.argv[4]), float(sys.argv[5])
clock = Clock()
clock.advance(start)
ledger = Ledger(clock, SqliteLedger(path))
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
refused = 0
for i in range(rounds):
    ledger.count("shared", "gpt-4.1", requests=1, input_tokens=i)
    ledger.count(who, "claude-sonnet-4", nano_aiu=7, output_tokens=1)
    errors = []
    ledger.flush().addErrback(errors.append)
    refused += len(errors)
    clock.advance(1)
while True:
    errors = []
    ledger.flush().addErrback(errors.append)
    if not errors:
        break
    time.sleep(0.01)
ledger.stop()
print(refused, flush=True)
"""


def test_processes_adding_to_one_sqlite_file_at_once_lose_no_count(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    go = tmp_path / "go"
    script = tmp_path / "hammer.py"
    script.write_text(_HAMMER)
    rounds = 3000
    start = LATE - rounds // 2  # half of the rounds before midnight, half after
    names = ["p1", "p2"]
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), str(go), name, str(rounds), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT,
        )
        for name in names
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline() != "ready\n":
                pytest.fail(worker.communicate(timeout=60)[1])
        go.touch()
        outputs = [worker.communicate(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    store = SqliteLedger(path)
    rows = _fired(store.rows("2026-01-01"))
    store.close()
    days = {row.day for row in rows}
    assert days == {"2026-12-02", "2026-12-03"}
    document = usage_document(rows, "2026-12-02", "2026-12-03", 2)
    shared_counts = document["keys"]["shared"]["gpt-4.1"]
    assert shared_counts["requests"] == 2 * rounds
    assert shared_counts["input_tokens"] == 2 * sum(range(rounds))
    for name in names:
        own = document["keys"][name]["claude-sonnet-4"]
        assert (own["nano_aiu"], own["output_tokens"]) == (7 * rounds, rounds)
