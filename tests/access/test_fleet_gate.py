"""
The gate with shared limits in a real Redis, in process: a Redis that
refuses a decision (out of memory) is treated as one that cannot answer,
and the request is served with the process's own limits, never left hanging.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from copilot_proxy.access import AccessConfig, Rate
from copilot_proxy.settings import parse_redis_url
from copilot_proxy.shared import SharedConfig, SharedState

from .._helpers import Upstream, fetch, start_proxy, stop_proxy, until
from .._redis_server import RedisServer, needs_redis

pytestmark = needs_redis


@pytest_twisted.ensureDeferred
async def test_a_redis_that_refuses_decisions_falls_back_to_local_limits(
    upstream: Upstream, redis: RedisServer, log_events: list[dict[str, Any]]
) -> None:
    shared = SharedState(reactor, SharedConfig(redis=parse_redis_url(redis.url)))
    access = AccessConfig(rate=Rate(3, 60), burst=3)
    proxy = start_proxy(reactor, upstream.url, access=access, shared=shared)
    url = proxy.url + "/chat/completions"
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})

    async def ask() -> int:
        headers = {"content-type": "application/json"}
        response, _ = await fetch(url, b"POST", headers, body.encode())
        code: int = response.code
        return code

    try:
        await until(lambda: shared.status == "ok")
        assert [await ask() for _ in range(4)] == [200, 200, 200, 429]
        # Redis now refuses every write (the shared bucket is gone, so each
        # decision must write): its decisions fail, the process decides.
        redis.command("FLUSHALL")
        redis.command("CONFIG", "SET", "maxmemory", "1")
        redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        codes = [await ask() for _ in range(4)]
        assert codes == [200, 200, 200, 429], codes
        warned = [e for e in log_events if "refused a decision" in str(e.get("log_format"))]
        assert len(warned) == 1
    finally:
        await stop_proxy(proxy)
