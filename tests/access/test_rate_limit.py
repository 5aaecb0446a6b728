"""Token buckets and stream slots (pure, with a hand-driven clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot_proxy.access import (
    PerKeyRates,
    Rate,
    RateLimiter,
    StreamSlots,
    TokenBuckets,
    key_burst,
    parse_rate,
    retry_after,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("60/min", 1.0),
        ("2/s", 2.0),
        ("1000/day", 1000 / 86400),
        ("5/10s", 0.5),
        ("3 / hour", 3 / 3600),
    ],
)
def test_rates_parse(text: str, per_second: float) -> None:
    rate = parse_rate(text)
    assert rate.per_second == pytest.approx(per_second)
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["60", "/min", "0/s", "5/fortnight", "-1/s", "1/0s"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_burst_then_one_token_per_interval() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(2, 1), burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0, "each client has its own bucket"
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    assert retry_after(0.5) == 1 and retry_after(2.0) == 2 and retry_after(2.01) == 3


def test_reservations_queue_in_order_and_refunds_give_back() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(1, 1), burst=1, clock=clock)
    assert buckets.reserve("a") == 0.0
    waits = [buckets.reserve("a") for _ in range(3)]
    assert waits == pytest.approx([1.0, 2.0, 3.0])
    buckets.refund("a")
    assert buckets.reserve("a") == pytest.approx(3.0)


@given(
    rate=st.integers(1, 20),
    burst=st.integers(1, 10),
    gaps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=200),
)
def test_no_window_admits_more_than_burst_plus_rate_times_length(
    rate: int, burst: int, gaps: list[float]
) -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(rate, 1), burst=burst, clock=clock)
    admitted = []
    for gap in gaps:
        clock.now += gap
        if buckets.take("k") == 0.0:
            admitted.append(clock.now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            allowed = burst + rate * (admitted[j] - start)
            assert j - i + 1 <= allowed + 1e-6


@given(gaps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=100))
def test_a_refused_request_is_admitted_after_its_retry_after(gaps: list[float]) -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(3, 1), burst=2, clock=clock)
    for gap in gaps:
        clock.now += gap
        wait = buckets.take("k")
        if wait > 0:
            clock.now += wait
            assert buckets.take("k") == 0.0


def test_stream_slots_cap_total_and_per_key_and_serve_waiters_in_order() -> None:
    slots = StreamSlots(total=3, per_key=2)
    assert slots.try_acquire("a") and slots.try_acquire("a")
    assert not slots.try_acquire("a"), "a is at its own cap"
    assert slots.try_acquire("b")
    assert not slots.try_acquire("c"), "the proxy is at its cap"
    served: list[str] = []
    slots.wait("a", lambda: served.append("a1"))
    slots.wait("c", lambda: served.append("c1"))
    slots.wait("c", lambda: served.append("c2"))
    slots.release("b")
    assert served == ["c1"], "a is still at its cap: c goes first"
    assert not slots.try_acquire("c"), "a newcomer does not pass the waiters"
    slots.release("a")
    assert served == ["c1", "a1"]
    waiter = slots.wait("d", lambda: served.append("d1"))
    slots.cancel(waiter)
    slots.release("a")
    slots.release("c")
    assert served == ["c1", "a1", "c2"]
    assert slots.in_flight == 2 and len(slots) == 0


def test_a_keys_own_rate_replaces_the_proxy_wide_one_with_its_count_as_burst() -> None:
    clock = Clock()
    limits: RateLimiter = PerKeyRates(Rate(1, 1), burst=1, clock=clock)
    own = Rate(3, 60)
    assert key_burst(own) == 3 and key_burst(Rate(0.5, 1)) == 1
    assert [limits.take("alice", own) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.take("alice", own) == pytest.approx(20.0)
    assert limits.take("bob") == 0.0, "bob has the proxy-wide rate"
    assert limits.take("bob") == pytest.approx(1.0)
    clock.now += 1
    assert limits.take("bob") == 0.0
    assert limits.take("alice", own) == pytest.approx(19.0), "alice's own rate is slower"


def test_without_a_proxy_wide_rate_only_keys_with_their_own_are_limited() -> None:
    clock = Clock()
    limits = PerKeyRates(None, burst=1, clock=clock)
    assert all(limits.take("anyone") == 0.0 for _ in range(100))
    assert limits.reserve("anyone") == 0.0
    limits.refund("anyone")
    own = Rate(1, 60)
    assert limits.reserve("alice", own) == 0.0
    assert limits.reserve("alice", own) == pytest.approx(60.0)
    limits.refund("alice", own)
    assert limits.take("alice", own) == pytest.approx(60.0)


def test_a_keys_own_stream_cap_replaces_the_per_key_cap() -> None:
    slots = StreamSlots(total=None, per_key=1)
    assert slots.try_acquire("alice", cap=2) and slots.try_acquire("alice", cap=2)
    assert not slots.try_acquire("alice", cap=2) and slots.key_full("alice", cap=2)
    assert slots.try_acquire("bob") and not slots.try_acquire("bob")
    served: list[str] = []
    slots.wait("alice", lambda: served.append("alice"), cap=2)
    slots.wait("bob", lambda: served.append("bob"))
    slots.release("bob")
    assert served == ["bob"], "alice's waiter keeps its own cap"
    slots.release("alice")
    assert served == ["bob", "alice"]


def test_a_keys_own_stream_cap_holds_without_a_per_key_cap() -> None:
    slots = StreamSlots(total=None, per_key=None)
    assert slots.try_acquire("alice", cap=1)
    assert not slots.try_acquire("alice", cap=1)
    assert all(slots.try_acquire("bob") for _ in range(10))
    assert not slots.key_full("bob")
