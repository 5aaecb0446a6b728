"""
The fleet's shared decisions against a real Redis, with several clients
standing in for several processes: one limit for all of them, exactly.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater

from copilot_proxy.settings import parse_redis_url
from copilot_proxy.shared._fleet import CachedAnswer, Fleet
from copilot_proxy.shared._redis import RedisClient
from tests._redis_server import RedisServer, needs_redis

pytestmark = needs_redis


_count = [0]


def fleets(module_redis: RedisServer, n: int, lease_ttl: float = 30.0) -> list[Fleet]:
    _count[0] += 1
    prefix = f"test{_count[0]}:"
    out = []
    for _ in range(n):
        client = RedisClient(reactor, parse_redis_url(module_redis.url), 0.5)
        client.start()
        out.append(Fleet(client, prefix, lease_ttl))
    return out


async def close(group: list[Fleet]) -> None:
    for fleet in group:
        await fleet.client.stop()


@pytest_twisted.ensureDeferred
async def test_a_rate_holds_exactly_across_processes(module_redis: RedisServer) -> None:
    group = fleets(module_redis, 3)
    try:
        # 10 per minute, burst 10: 30 tries at once from three processes.
        waits = await gatherResults(
            [group[i % 3].rate("alice", 10 / 60, 10, "take") for i in range(30)]
        )
        assert sum(1 for w in waits if w == 0) == 10
        refused = [w for w in waits if w > 0]
        assert refused and all(0 < w <= 6.01 for w in refused)
        # Another client has its own bucket.
        assert await group[0].rate("bob", 10 / 60, 10, "take") == 0
    finally:
        await close(group)


@pytest_twisted.ensureDeferred
async def test_reservations_queue_and_refunds_give_back(module_redis: RedisServer) -> None:
    (fleet,) = fleets(module_redis, 1)
    try:
        assert await fleet.rate("carol", 1.0, 1, "reserve") == 0
        second = await fleet.rate("carol", 1.0, 1, "reserve")
        third = await fleet.rate("carol", 1.0, 1, "reserve")
        assert 0.9 < second <= 1.0 and 1.9 < third <= 2.0
        await fleet.rate("carol", 1.0, 1, "refund")
        await fleet.rate("carol", 1.0, 1, "refund")
        assert 0.9 < await fleet.rate("carol", 1.0, 1, "reserve") <= 1.0
    finally:
        await close(group=[fleet])


@pytest_twisted.ensureDeferred
async def test_leases_cap_the_fleet_and_each_client(module_redis: RedisServer) -> None:
    a, b = fleets(module_redis, 2)
    try:
        la, lb, lc = a.new_lease(), b.new_lease(), a.new_lease()
        assert await a.acquire(la, "alice", 2, 1)
        # alice's own cap is 1, wherever she asks.
        assert not await b.acquire(b.new_lease(), "alice", 2, 1)
        assert await b.acquire(lb, "bob", 2, 1)
        # The fleet's cap is 2.
        assert not await a.acquire(lc, "carol", 2, 1)
        await a.release(la, "alice")
        assert await a.acquire(lc, "carol", 2, 1)
    finally:
        await close([a, b])


@pytest_twisted.ensureDeferred
async def test_a_lease_not_renewed_expires_and_a_renewed_one_stays(
    module_redis: RedisServer,
) -> None:
    a, b = fleets(module_redis, 2, lease_ttl=0.5)
    try:
        dead, alive = a.new_lease(), b.new_lease()
        assert await a.acquire(dead, "alice", 2, None)
        assert await b.acquire(alive, "bob", 2, None)
        for _ in range(4):
            await deferLater(reactor, 0.25, lambda: None)
            await b.renew([(alive, "bob")])
        # alice's process "died" (never renewed): her slot is free again,
        # bob's is still held.
        assert await b.acquire(b.new_lease(), "carol", 2, None)
        assert not await b.acquire(b.new_lease(), "dave", 2, None)
    finally:
        await close([a, b])


@pytest_twisted.ensureDeferred
async def test_one_fetch_for_the_fleet_then_everyone_hits(module_redis: RedisServer) -> None:
    a, b = fleets(module_redis, 2)
    try:
        key = b"https://api/models|gzip"
        first, second = await gatherResults([a.cache_lookup(key, 5.0), b.cache_lookup(key, 5.0)])
        assert sorted([first[1], second[1]]) == [False, True]
        assert first[0] is None and second[0] is None
        entry = CachedAnswer(200, b"OK", [(b"content-type", [b"application/json"])], b"{}", 1.0)
        await a.cache_store(key, entry, 60)
        assert (await b.cache_lookup(key, 5.0)) == (entry, False)
    finally:
        await close([a, b])


@pytest_twisted.ensureDeferred
async def test_holds_are_seen_by_every_process_and_expire(module_redis: RedisServer) -> None:
    a, b = fleets(module_redis, 2)
    try:
        assert await b.holds() == {}
        await a.holds("*", 0.4)
        await a.holds("model:gpt-5", 30)
        seen = await b.holds()
        assert set(seen) == {"*", "model:gpt-5"} and 0 < seen["*"] <= 0.4
        await deferLater(reactor, 0.5, lambda: None)
        assert set(await b.holds()) == {"model:gpt-5"}
    finally:
        await close([a, b])
