"""
The usage ledger in a real Redis: flushes of many processes add up exactly,
and what C{/_proxy/usage} reads is what they added.
"""

from __future__ import annotations

import time

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults

from copilot_proxy.settings import parse_redis_url
from copilot_proxy.shared._ledger import Ledger, utc_day
from copilot_proxy.shared._redis import RedisClient
from copilot_proxy.shared._redis_ledger import RedisLedger
from tests._redis_server import RedisServer, needs_redis

pytestmark = needs_redis


def store(module_redis: RedisServer, prefix: str) -> RedisLedger:
    client = RedisClient(reactor, parse_redis_url(module_redis.url), 0.5)
    client.start()
    return RedisLedger(client, prefix)


@pytest_twisted.ensureDeferred
async def test_adds_from_many_processes_are_exact(module_redis: RedisServer) -> None:
    today = utc_day(time.time())
    stores = [store(module_redis, "ledger1:") for _ in range(3)]
    await gatherResults(
        [
            s.add({(today, "alice", "gpt-5"): {"requests": 1, "input_tokens": 7, "nano_aiu": 3}})
            for _ in range(50)
            for s in stores
        ]
    )
    await stores[0].add({(today, "bob", "claude-sonnet-4.5"): {"refused": 2}})
    rows = await stores[1].rows(today)
    by_key = {(r.key, r.model): dict(r.counts) for r in rows}
    assert by_key[("alice", "gpt-5")] == {"requests": 150, "input_tokens": 1050, "nano_aiu": 450}
    assert by_key[("bob", "claude-sonnet-4.5")] == {"refused": 2}
    only_bob = await stores[2].rows(today, "bob")
    assert [r.key for r in only_bob] == ["bob"]
    for s in stores:
        s.close()


@pytest_twisted.ensureDeferred
async def test_the_aggregator_over_redis_gives_the_usage_document(
    module_redis: RedisServer,
) -> None:
    ledger = Ledger(reactor, store(module_redis, "ledger2:"))
    ledger.count("alice", "gpt-5", requests=1, output_tokens=10, reasoning_tokens=4)
    ledger.count("alice", "gpt-5", requests=1, output_tokens=5)
    document = await ledger.usage(7)
    counts = document["keys"]["alice"]["gpt-5"]
    assert counts["requests"] == 2 and counts["output_tokens"] == 15
    assert counts["reasoning_tokens"] == 4 and counts["refused"] == 0
    await ledger.stop()


@pytest_twisted.ensureDeferred
async def test_quota_keeps_the_newest_snapshot(module_redis: RedisServer) -> None:
    ledger = store(module_redis, "ledger3:")
    assert await ledger.load_quota() == ({}, None)
    await ledger.save_quota({"x-usage-ratelimit-weekly": "rem=50"}, 200.0)
    await ledger.save_quota({"x-usage-ratelimit-weekly": "rem=70"}, 100.0)
    assert await ledger.load_quota() == ({"x-usage-ratelimit-weekly": "rem=50"}, 200.0)
    ledger.close()
