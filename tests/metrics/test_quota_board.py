"""
The board of upstream quotas, and the gauges that follow it, driven directly
with a hand-turned clock.
"""

from __future__ import annotations

from prometheus_client import generate_latest
from twisted.internet.task import Clock

from copilot_proxy.metrics import ProxyMetrics, QuotaBoard
from copilot_proxy.tokens import StaticToken
from copilot_proxy.wire import MAX_SNAPSHOTS, QuotaSnapshot, Secret

from ..server.test_admin import samples

NOW = 1_776_000_000.0


def _board() -> tuple[QuotaBoard, Clock]:
    clock = Clock()
    clock.advance(NOW)
    return QuotaBoard(clock.seconds), clock


def test_the_board_keeps_the_latest_snapshot_of_each_quota() -> None:
    board, clock = _board()
    board.update([QuotaSnapshot("session", percent_remaining=80.0)])
    clock.advance(10)
    board.update(
        [
            QuotaSnapshot("session", percent_remaining=79.0),
            QuotaSnapshot("weekly", percent_remaining=95.0),
        ]
    )
    assert board.snapshot() == {
        "session": QuotaSnapshot("session", percent_remaining=79.0),
        "weekly": QuotaSnapshot("weekly", percent_remaining=95.0),
    }
    assert len(board) == 2


def test_the_document_says_when_it_resets_and_how_old_it_is() -> None:
    board, clock = _board()
    board.update(
        [
            QuotaSnapshot(
                "session",
                entitlement=0,
                overage=0.0,
                overage_permitted=False,
                percent_remaining=63.0,
                resets_at=NOW + 7800,
            ),
            QuotaSnapshot("chat", entitlement=-1),
        ]
    )
    clock.advance(30)
    document = board.document(clock.seconds())
    assert list(document) == ["chat", "session"]
    assert document["session"] == {
        "percent_remaining": 63.0,
        "resets_at": "2026-04-12T15:30:00Z",
        "resets_in_s": 7770.0,
        "entitlement": 0,
        "overage": 0.0,
        "overage_permitted": False,
        "seen_s_ago": 30.0,
    }
    assert document["chat"]["resets_at"] is None
    assert document["chat"]["entitlement"] == -1


def test_a_reset_time_out_of_range_shows_as_none() -> None:
    board, clock = _board()
    board.update([QuotaSnapshot("weekly", resets_at=1e300)])
    assert board.document(clock.seconds())["weekly"]["resets_at"] is None


def test_the_board_keeps_only_the_first_names_it_sees() -> None:
    board, _ = _board()
    board.update(QuotaSnapshot(f"q{i}", percent_remaining=1.0) for i in range(MAX_SNAPSHOTS))
    board.update([QuotaSnapshot("late", percent_remaining=1.0)])
    board.update([QuotaSnapshot("q0", percent_remaining=2.0)])
    held = board.snapshot()
    assert len(held) == MAX_SNAPSHOTS and "late" not in held
    assert held["q0"].percent_remaining == 2.0


def test_listeners_hear_only_what_the_board_stored() -> None:
    board = QuotaBoard(limit=1)
    heard: list[list[QuotaSnapshot]] = []
    board.listen(heard.append)
    board.update([])
    board.update([QuotaSnapshot("a", percent_remaining=1.0), QuotaSnapshot("b")])
    board.update([QuotaSnapshot("b")])
    assert heard == [[QuotaSnapshot("a", percent_remaining=1.0)]]


def test_gauges_follow_the_board_with_bounded_labels() -> None:
    metrics = ProxyMetrics(lambda: 0, StaticToken(Secret("t")))
    board, _ = _board()
    metrics.watch_quota(board)
    board.update(
        [
            QuotaSnapshot("session", percent_remaining=99.0, resets_at=NOW + 3600),
            QuotaSnapshot("weekly", resets_at=NOW + 86400),
        ]
    )
    found = samples(generate_latest(metrics.registry).decode())
    remaining = "copilot_proxy_upstream_quota_remaining_percent"
    reset = "copilot_proxy_upstream_quota_reset_timestamp_seconds"
    assert found[(remaining, (("quota", "session"),))] == 99.0
    assert (remaining, (("quota", "weekly"),)) not in found
    assert found[(reset, (("quota", "session"),))] == NOW + 3600
    assert found[(reset, (("quota", "weekly"),))] == NOW + 86400
    # A second board cannot grow the label set past the cap either.
    other = QuotaBoard()
    metrics.watch_quota(other)
    other.update(QuotaSnapshot(f"q{i}", percent_remaining=5.0) for i in range(MAX_SNAPSHOTS))
    found = samples(generate_latest(metrics.registry).decode())
    quotas = {labels for name, labels in found if name in (remaining, reset)}
    assert len(quotas) == MAX_SNAPSHOTS
    assert (("quota", "q15"),) not in quotas
