"""
A key's own rate and stream cap from the keys file, end to end: they apply
to that key only, without the proxy-wide options, and follow a reload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred

from copilot_proxy.access import AccessConfig, Rate

from .._helpers import Upstream, client_requests, fetch, send, stream_request, timeout, until

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"


def _keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest_twisted.ensureDeferred
async def test_a_keys_own_rate_refuses_its_third_request_and_no_other_keys(
    make_proxy: Any, upstream: Upstream, tmp_path: Path
) -> None:
    path = _keys_file(tmp_path, f"{ALICE} alice rate=2/min\n{BOB} bob\n")
    proxy = make_proxy(upstream.url, access=AccessConfig(keys_file=str(path)))
    alice = {"x-api-key": ALICE}
    for _ in range(2):
        assert (await fetch(proxy.url + "/models", headers=alice))[0].code == 200
    response, body = await fetch(proxy.url + "/models", headers=alice)
    assert response.code == 429
    retry = int(response.headers.getRawHeaders(b"retry-after")[0])
    assert 1 <= retry <= 30
    error = json.loads(body)["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"] == f"rate limit of 2/min for key alice reached; retry after {retry} s"
    response, body = await fetch(
        proxy.url + "/v1/messages", b"POST", dict(alice, **{"content-type": "application/json"})
    )
    assert response.code == 429
    anthropic = json.loads(body)
    assert anthropic["type"] == "error"
    assert anthropic["error"]["message"].startswith("rate limit of 2/min for key alice")
    for _ in range(5):
        response, _ = await fetch(proxy.url + "/models", headers={"x-api-key": BOB})
        assert response.code == 200, "bob has no rate limit"
    assert len(upstream.fake.received) == 7


@pytest_twisted.ensureDeferred
async def test_a_keys_own_rate_replaces_the_proxy_wide_one(
    make_proxy: Any, upstream: Upstream, tmp_path: Path
) -> None:
    path = _keys_file(tmp_path, f"{ALICE} alice rate=3/min\n{BOB} bob\n")
    proxy = make_proxy(
        upstream.url, access=AccessConfig(keys_file=str(path), rate=Rate(1, 60), burst=1)
    )
    codes = []
    for _ in range(4):
        codes.append((await fetch(proxy.url + "/models", headers={"x-api-key": ALICE}))[0].code)
    assert codes == [200, 200, 200, 429], "alice's own burst is her rate's count"
    assert (await fetch(proxy.url + "/models", headers={"x-api-key": BOB}))[0].code == 200
    response, body = await fetch(proxy.url + "/models", headers={"x-api-key": BOB})
    assert response.code == 429
    assert json.loads(body)["error"]["message"].startswith("rate limit reached for this client")


@pytest_twisted.ensureDeferred
async def test_a_keys_own_stream_cap_refuses_its_second_stream_only(
    make_proxy: Any, upstream: Upstream, tmp_path: Path
) -> None:
    path = _keys_file(tmp_path, f"{ALICE} alice streams=1\n{BOB} bob\n")
    proxy = make_proxy(upstream.url, access=AccessConfig(keys_file=str(path)))
    headers, body = stream_request(events=50, interval=0.02)
    first, stream = await send(
        proxy.url + "/chat/completions", b"POST", dict(headers, **{"x-api-key": ALICE}), body
    )
    await timeout(stream.first)
    second, text = await fetch(proxy.url + "/models", headers={"x-api-key": ALICE})
    assert second.code == 429
    assert second.headers.getRawHeaders(b"retry-after") == [b"1"]
    error = json.loads(text)["error"]
    assert error["code"] == "too_many_streams"
    assert error["message"].startswith("stream limit of 1 in flight for key alice reached")
    bobs = [
        await send(
            proxy.url + "/chat/completions", b"POST", dict(headers, **{"x-api-key": BOB}), body
        )
        for _ in range(2)
    ]
    assert [r.code for r, _ in bobs] == [200, 200], "bob has no cap"
    for _, collector in [(first, stream), *bobs]:
        await timeout(collector.done, 10)
        assert collector.complete
    await until(lambda: proxy.service.gate.slots.in_flight == 0)
    assert (await fetch(proxy.url + "/models", headers={"x-api-key": ALICE}))[0].code == 200


@pytest_twisted.ensureDeferred
async def test_with_wait_a_keys_second_stream_queues_while_others_pass(
    make_proxy: Any, upstream: Upstream, tmp_path: Path
) -> None:
    path = _keys_file(tmp_path, f"{ALICE} alice streams=1\n{BOB} bob\n")
    proxy = make_proxy(upstream.url, access=AccessConfig(keys_file=str(path), wait=True))
    gate = proxy.service.gate
    headers, body = stream_request(events=30, interval=0.02)
    alice = dict(headers, **{"x-api-key": ALICE, "x-seq": "first"})
    first, stream = await send(proxy.url + "/chat/completions", b"POST", alice, body)
    await timeout(stream.first)
    queued = Deferred.fromCoroutine(
        fetch(proxy.url + "/chat/completions", b"POST", dict(alice, **{"x-seq": "second"}), body)
    )
    await until(lambda: gate.waiting == 1)
    response, _ = await fetch(proxy.url + "/models", headers={"x-api-key": BOB})
    assert response.code == 200, "bob is not held up by alice's queue"
    assert not stream.done.called, "bob passed while alice's first stream was still running"
    answer, _ = await timeout(queued, 10)
    assert answer.code == 200
    await timeout(stream.done, 10)
    assert first.code == 200 and stream.complete
    seqs = [r.header("x-seq") for r in client_requests(upstream.fake) if r.header("x-seq")]
    assert seqs == ["first", "second"]


@pytest_twisted.ensureDeferred
async def test_a_keys_limits_follow_a_reload(
    make_proxy: Any, upstream: Upstream, tmp_path: Path
) -> None:
    path = _keys_file(tmp_path, f"{ALICE} alice rate=1/hour\n")
    proxy = make_proxy(upstream.url, access=AccessConfig(keys_file=str(path)))
    alice = {"x-api-key": ALICE}
    assert (await fetch(proxy.url + "/models", headers=alice))[0].code == 200
    assert (await fetch(proxy.url + "/models", headers=alice))[0].code == 429

    path.write_text(f"{ALICE} alice streams=1\n")
    proxy.service.reload_client_keys()
    assert (await fetch(proxy.url + "/models", headers=alice))[0].code == 200, "no rate now"
    headers, body = stream_request(events=50, interval=0.02)
    _, stream = await send(proxy.url + "/chat/completions", b"POST", dict(headers, **alice), body)
    await timeout(stream.first)
    assert (await fetch(proxy.url + "/models", headers=alice))[0].code == 429, "capped now"
    await timeout(stream.done, 10)
    await until(lambda: proxy.service.gate.slots.in_flight == 0)

    path.write_text(f"{ALICE} alice\n")
    proxy.service.reload_client_keys()
    _, stream = await send(proxy.url + "/chat/completions", b"POST", dict(headers, **alice), body)
    await timeout(stream.first)
    assert (await fetch(proxy.url + "/models", headers=alice))[0].code == 200, "no cap now"
    await timeout(stream.done, 10)
