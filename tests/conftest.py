"""
Shared fixtures: a fake Copilot API and a proxy in front of it, both on real
loopback sockets in the test run's one reactor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import pytest_twisted
from hypothesis import settings
from twisted.internet import reactor as _reactor
from twisted.logger import ILogObserver, globalLogPublisher

from copilot_proxy.testing.fake_github import FakeGitHub
from copilot_proxy.testing.fake_upstream import FakeUpstream

from ._helpers import GitHub, Proxy, Upstream, start_proxy, stop_proxy
from ._redis_server import MODULE_REDIS_PASSWORD, RedisServer

# Property tests run on a machine shared with other test runs: a per-example
# time limit there fails at random, and says nothing about the code.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


@pytest.fixture
def reactor() -> Any:
    return _reactor


@pytest_twisted.async_yield_fixture
async def upstream(reactor: Any) -> Any:
    fake = FakeUpstream(reactor)
    port = reactor.listenTCP(0, fake.site, interface="127.0.0.1")
    yield Upstream(fake, f"http://127.0.0.1:{port.getHost().port}")
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def github(reactor: Any, upstream: Upstream) -> Any:
    """A fake GitHub whose Copilot tokens the C{upstream} fake accepts."""
    fake = FakeGitHub(reactor, upstream.fake)
    fake.api_base = upstream.url
    port = reactor.listenTCP(0, fake.site, interface="127.0.0.1")
    served = GitHub(fake, f"http://127.0.0.1:{port.getHost().port}", port)
    yield served
    await served.port.stopListening()


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Every log event emitted during the test."""
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


@pytest_twisted.async_yield_fixture
async def make_proxy(reactor: Any) -> Any:
    started: list[Proxy] = []

    def make(upstream_url: str, **settings: Any) -> Proxy:
        proxy = start_proxy(reactor, upstream_url, **settings)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await stop_proxy(proxy)


@pytest.fixture
def proxy(make_proxy: Any, upstream: Upstream) -> Proxy:
    p: Proxy = make_proxy(upstream.url)
    return p


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A real redis-server of this test's own, on a private port."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    """A real redis-server shared by one module's tests (with a password)."""
    server = RedisServer(password=MODULE_REDIS_PASSWORD)
    server.start()
    yield server
    server.close()
