"""
The Redis client against a real C{redis-server}: calls, scripts, a
password, and what a caller sees when the server stops, stalls or returns.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from copilot_proxy.settings import parse_redis_url
from copilot_proxy.shared._redis import RedisClient, Script, SharedStateUnavailable
from copilot_proxy.shared._resp import ReplyError
from tests._helpers import until
from tests._redis_server import MODULE_REDIS_PASSWORD, RedisServer, needs_redis
from tests._tls import self_signed

pytestmark = needs_redis


def client(url: str, timeout: float = 0.5, states: list[bool] | None = None) -> RedisClient:
    on_state = states.append if states is not None else None
    c = RedisClient(reactor, parse_redis_url(url), timeout, on_state)
    c.start()
    return c


@pytest_twisted.ensureDeferred
async def test_calls_over_tcp_and_unix_socket(module_redis: RedisServer) -> None:
    for url in (module_redis.url, module_redis.unix_url):
        c = client(url)
        try:
            assert await c.call("SET", "test:k", "v") == b"OK"
            assert await c.call("GET", "test:k") == b"v"
            count = await c.call("INCRBY", "test:n", 2)
            assert isinstance(count, int) and count >= 2
            assert c.status == "ok"
        finally:
            await c.stop()


@pytest_twisted.ensureDeferred
async def test_server_errors_are_reply_errors(module_redis: RedisServer) -> None:
    c = client(module_redis.url)
    try:
        with pytest.raises(ReplyError):
            await c.call("NOSUCHCOMMAND")
        assert await c.call("PING") == b"PONG"
    finally:
        await c.stop()


@pytest_twisted.ensureDeferred
async def test_scripts_are_loaded_once_then_run_by_sha(module_redis: RedisServer) -> None:
    script = Script(f"return {{ARGV[1], KEYS[1], {time.monotonic_ns()}}}")
    c = client(module_redis.url)
    try:
        first = await c.run(script, ["test:a"], ["x"])
        assert isinstance(first, list) and first[:2] == [b"x", b"test:a"]
        assert await c.call("SCRIPT", "EXISTS", script.sha) == [1]
        assert await c.run(script, ["test:b"], ["y"]) == [b"y", b"test:b", first[2]]
    finally:
        await c.stop()


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_unavailable_and_never_shown(module_redis: RedisServer) -> None:
    wrong = "not-the-password-1234"
    states: list[bool] = []
    c = client(f"redis://:{wrong}@127.0.0.1:{module_redis.port}/0", states=states)
    try:
        with pytest.raises(SharedStateUnavailable) as caught:
            await c.call("PING")
        await until(lambda: states == [False])
        for text in (str(caught.value), repr(c), str(c.last_error), repr(c.target)):
            assert wrong not in text and MODULE_REDIS_PASSWORD not in text
        assert "password" in str(c.last_error)
    finally:
        await c.stop()


@pytest_twisted.ensureDeferred
async def test_outage_fails_fast_then_heals_on_demand() -> None:
    redis = RedisServer()
    redis.start()
    states: list[bool] = []
    c = client(redis.url, states=states)
    try:
        assert await c.call("PING") == b"PONG"
        redis.stop()
        await until(lambda: not c.available)
        started = time.monotonic()
        with pytest.raises(SharedStateUnavailable):
            await c.call("PING")
        assert time.monotonic() - started < 1.0
        assert states == [True, False]
        redis.start()
        # A call after the on-demand gap reconnects without waiting for the
        # background retry.
        await deferLater(reactor, 1.05, lambda: None)
        assert await c.call("PING") == b"PONG"
        assert states == [True, False, True]
    finally:
        await c.stop()
        redis.close()


@pytest_twisted.ensureDeferred
async def test_a_stalled_server_costs_a_call_its_deadline_only() -> None:
    redis = RedisServer()
    redis.start()
    c = client(redis.url, timeout=0.2)
    try:
        assert await c.call("PING") == b"PONG"
        redis.pause()
        started = time.monotonic()
        with pytest.raises(SharedStateUnavailable) as caught:
            await c.call("PING")
        elapsed = time.monotonic() - started
        assert 0.15 < elapsed < 1.0
        assert "0.2 s" in str(caught.value)
        await until(lambda: not c.available)
        redis.resume()
        await deferLater(reactor, 1.05, lambda: None)
        assert await c.call("PING") == b"PONG"
    finally:
        await c.stop()
        redis.close()


@pytest_twisted.ensureDeferred
async def test_pipelined_calls_keep_their_order(module_redis: RedisServer) -> None:
    c = client(module_redis.url)
    try:
        from twisted.internet.defer import gatherResults

        replies: Any = await gatherResults([c.call("ECHO", str(i)) for i in range(200)])
        assert replies == [str(i).encode() for i in range(200)]
    finally:
        await c.stop()


@pytest_twisted.ensureDeferred
async def test_tls_verifies_the_servers_certificate_and_name(tmp_path: Path) -> None:
    key, cert = self_signed(tmp_path, "localhost")
    redis = RedisServer(tls=(key, cert))
    redis.start()
    try:
        good = client(f"rediss://localhost:{redis.tls_port}/0?ca={cert}")
        try:
            assert await good.call("PING") == b"PONG"
        finally:
            await good.stop()
        # Not signed by a root the system trusts; the right root but the
        # wrong name: both refused.
        for url in (
            f"rediss://localhost:{redis.tls_port}/0",
            f"rediss://127.0.0.1:{redis.tls_port}/0?ca={cert}",
        ):
            bad = client(url, timeout=1.0)
            try:
                with pytest.raises(SharedStateUnavailable):
                    await bad.call("PING")
            finally:
                await bad.stop()
    finally:
        redis.close()
