"""
Rate limits and concurrency caps end to end: 429 with Retry-After, waiting
in arrival order, and caps that hold under load.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from copilot_proxy.access import AccessConfig, Rate, parse_keys_env
from copilot_proxy.testing.fake_upstream import FakeUpstream, Received

from .._helpers import Upstream, client_requests, fetch, send, stream_request, timeout, until

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"


def _keys() -> tuple[Any, ...]:
    return tuple(parse_keys_env(f"{ALICE},{BOB}"))


class Concurrency:
    """The most requests the fake upstream was serving at once."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.most = 0
        self._watch()

    def _watch(self) -> None:
        self.fake.next_request().addCallback(self._arrived)

    def _arrived(self, received: Received) -> None:
        busy = [
            r
            for r in client_requests(self.fake)
            if not r.finished and not r.connection_lost.called
        ]
        self.most = max(self.most, len(busy))
        self._watch()


@pytest_twisted.ensureDeferred
async def test_over_the_rate_gets_429_with_retry_after(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(
        upstream.url, access=AccessConfig(env_keys=_keys(), rate=Rate(1, 60), burst=2)
    )
    alice = {"x-api-key": ALICE}
    for _ in range(2):
        response, _ = await fetch(proxy.url + "/models", headers=alice)
        assert response.code == 200
    response, body = await fetch(proxy.url + "/models", headers=alice)
    assert response.code == 429
    retry = int(response.headers.getRawHeaders(b"retry-after")[0])
    assert 1 <= retry <= 60
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
    assert len(upstream.fake.received) == 2
    response, _ = await fetch(proxy.url + "/models", headers={"authorization": f"Bearer {BOB}"})
    assert response.code == 200, "another key has its own bucket"


@pytest_twisted.ensureDeferred
async def test_without_keys_the_limit_is_per_client_address(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, access=AccessConfig(rate=Rate(1, 60), burst=1))
    assert (await fetch(proxy.url + "/models"))[0].code == 200
    assert (await fetch(proxy.url + "/models"))[0].code == 429


@pytest_twisted.ensureDeferred
async def test_waiting_requests_are_served_in_arrival_order(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, access=AccessConfig(rate=Rate(10, 1), burst=1, wait=True))
    gate = proxy.service.gate
    pending = []
    for i in range(5):
        pending.append(
            Deferred.fromCoroutine(
                fetch(proxy.url + "/x", b"POST", {"x-fake-mode": "echo", "x-seq": str(i)}, b"{}")
            )
        )
        # Arrival order is the order sent: each is queued before the next goes.
        await until(lambda i=i: gate.waiting + len(upstream.fake.received) == i + 1)
    answers = await timeout(gatherResults(pending), 10)
    assert [r.code for r, _ in answers] == [200] * 5
    assert [r.header("x-seq") for r in upstream.fake.received] == ["0", "1", "2", "3", "4"]


@pytest_twisted.ensureDeferred
async def test_a_full_queue_refuses_and_a_client_that_leaves_gives_back_its_place(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(
        upstream.url, access=AccessConfig(rate=Rate(1, 3600), burst=1, wait=True, max_queue=1)
    )
    gate = proxy.service.gate
    assert (await fetch(proxy.url + "/models"))[0].code == 200
    from twisted.internet import reactor
    from twisted.web.client import Agent

    waiting = Agent(reactor).request(b"GET", (proxy.url + "/models").encode())
    await until(lambda: gate.waiting == 1)
    response, body = await fetch(proxy.url + "/models")
    assert response.code == 429, "the queue holds one request and it is taken"
    assert int(response.headers.getRawHeaders(b"retry-after")[0]) > 3000
    waiting.cancel()
    waiting.addErrback(lambda _: None)
    await until(lambda: gate.waiting == 0)
    assert len(client_requests(upstream.fake)) == 1


@pytest_twisted.ensureDeferred
async def test_max_streams_holds_under_three_times_the_load(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, access=AccessConfig(max_streams=2))
    watch = Concurrency(upstream.fake)
    # Long enough streams that all six requests arrive while two are in flight.
    headers, body = stream_request(events=100, interval=0.02)
    started = [
        Deferred.fromCoroutine(send(proxy.url + "/chat/completions", b"POST", headers, body))
        for _ in range(6)
    ]
    results = await timeout(gatherResults(started), 10)
    codes = sorted(r.code for r, _ in results)
    assert codes == [200, 200, 429, 429, 429, 429]
    for response, collector in results:
        await timeout(collector.done, 10)
        if response.code == 429:
            assert response.headers.getRawHeaders(b"retry-after") == [b"1"]
            assert json.loads(collector.body)["error"]["code"] == "too_many_streams"
        else:
            assert collector.complete
    assert watch.most == 2
    await until(lambda: proxy.service.gate.slots.in_flight == 0)


@pytest_twisted.ensureDeferred
async def test_max_streams_with_wait_serves_everyone_two_at_a_time(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, access=AccessConfig(max_streams=2, wait=True))
    watch = Concurrency(upstream.fake)
    headers, body = stream_request(events=10, interval=0.02)
    started = [
        Deferred.fromCoroutine(send(proxy.url + "/chat/completions", b"POST", headers, body))
        for _ in range(6)
    ]
    results = await timeout(gatherResults(started), 10)
    for response, collector in results:
        await timeout(collector.done, 10)
        assert response.code == 200 and collector.complete
    assert len(client_requests(upstream.fake)) == 6
    assert watch.most <= 2


@pytest_twisted.ensureDeferred
async def test_per_key_cap_leaves_room_for_other_keys(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(
        upstream.url, access=AccessConfig(env_keys=_keys(), max_streams=10, max_streams_per_key=1)
    )
    headers, body = stream_request(events=100, interval=0.02)
    first, first_body = await send(
        proxy.url + "/chat/completions", b"POST", dict(headers, **{"x-api-key": ALICE}), body
    )
    second, _ = await fetch(proxy.url + "/models", headers={"x-api-key": ALICE})
    other, _ = await fetch(proxy.url + "/models", headers={"x-api-key": BOB})
    assert (first.code, second.code, other.code) == (200, 429, 200)
    await timeout(first_body.done, 10)
    await until(lambda: proxy.service.gate.slots.in_flight == 0)
    again, _ = await fetch(proxy.url + "/models", headers={"x-api-key": ALICE})
    assert again.code == 200


@pytest_twisted.ensureDeferred
async def test_slots_are_released_when_clients_leave_or_upstream_fails(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, access=AccessConfig(max_streams=1), idle_timeout=0.3)
    headers, body = stream_request(events=1000, interval=0.02)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.first)
    assert collector.transport is not None
    collector.transport.loseConnection()
    await until(lambda: proxy.service.gate.slots.in_flight == 0)
    response, _ = await fetch(proxy.url + "/models", headers={"x-fake-mode": "hang"})
    assert response.code == 504
    await until(lambda: proxy.service.gate.slots.in_flight == 0)
    response, _ = await fetch(proxy.url + "/models", headers={"x-fake-status": "503"})
    assert response.code == 503
    assert response.headers.getRawHeaders(b"retry-after") == [b"7"]
    await until(lambda: proxy.service.gate.slots.in_flight == 0)


@pytest_twisted.ensureDeferred
async def test_stopping_answers_waiting_requests_503_and_lets_streams_finish(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(
        upstream.url,
        access=AccessConfig(max_streams=1, rate=Rate(1, 3600), burst=2, wait=True),
        shutdown_grace=10,
    )
    gate = proxy.service.gate
    headers, body = stream_request(events=30, interval=0.02)
    response, stream = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(stream.first)
    for_slot = Deferred.fromCoroutine(fetch(proxy.url + "/models"))
    await until(lambda: gate.waiting == 1)
    for_token = Deferred.fromCoroutine(fetch(proxy.url + "/models"))
    await until(lambda: gate.waiting == 2)
    stopped = proxy.service.stopService()
    for waited in (for_slot, for_token):
        answer, text = await timeout(waited)
        assert answer.code == 503
        assert answer.headers.getRawHeaders(b"retry-after") == [b"1"]
        assert json.loads(text)["error"]["code"] == "shutting_down"
    await timeout(stream.done)
    assert stream.complete
    await timeout(stopped, 10)
    assert len(client_requests(upstream.fake)) == 1
