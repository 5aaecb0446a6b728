"""
The bound on large request bodies held at once (C{--max-body-memory}).
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred

from copilot_proxy.relay import BodyBudget

from .._helpers import Upstream, client_requests, fetch, send, until

_MIB = 1024 * 1024


def test_small_bodies_are_never_counted_nor_refused() -> None:
    budget = BodyBudget(limit=1)
    assert budget.take(_MIB - 1) == 0
    assert budget.held == 0


def test_a_large_body_costs_twice_its_size_and_the_first_always_fits() -> None:
    budget = BodyBudget(limit=3 * _MIB)
    first = budget.take(2 * _MIB)
    assert first == 4 * _MIB
    assert budget.take(_MIB) is None
    assert first is not None
    budget.give_back(first)
    assert budget.take(_MIB) == 2 * _MIB


@given(st.lists(st.integers(min_value=0, max_value=40 * _MIB), max_size=30))
def test_what_is_held_never_passes_the_limit_unless_alone(sizes: list[int]) -> None:
    budget = BodyBudget(limit=32 * _MIB)
    held: list[int] = []
    for size in sizes:
        cost = budget.take(size)
        if cost:
            held.append(cost)
        assert budget.held <= 32 * _MIB or len(held) == 1
    for cost in held:
        budget.give_back(cost)
    assert budget.held == 0


def _large(mode: str = "") -> tuple[dict[str, str], bytes]:
    headers = {"content-type": "application/json"}
    if mode:
        headers["x-fake-mode"] = mode
    text = "x" * (2 * _MIB)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    return headers, json.dumps(body).encode()


@pytest_twisted.ensureDeferred
async def test_a_large_body_past_the_bound_gets_a_503_and_the_bound_frees_when_it_ends(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, body_memory=5 * _MIB)
    headers, body = _large("hang")
    d = Deferred.fromCoroutine(send(proxy.url + "/v1/chat/completions", b"POST", headers, body))
    d.addErrback(lambda _: None)
    await until(lambda: len(client_requests(upstream.fake)) == 1)
    headers, body = _large()
    response, answer = await fetch(proxy.url + "/v1/chat/completions", b"POST", headers, body)
    assert response.code == 503
    assert json.loads(answer)["error"]["code"] == "proxy_busy"
    d.cancel()
    await until(lambda: proxy.service.in_flight == 0)
    response, _ = await fetch(proxy.url + "/v1/chat/completions", b"POST", headers, body)
    assert response.code == 200
