"""
The upstream's quota headers, kept by the real proxy in front of the fake
upstream and shown on its health page and in its metrics.
"""

from __future__ import annotations

import datetime
import json

import pytest_twisted

from copilot_proxy.testing.fake_upstream import parse_quota

from .._helpers import Proxy, Upstream, fetch, stream_request
from .test_admin import scrape

REMAINING = "copilot_proxy_upstream_quota_remaining_percent"
RESET = "copilot_proxy_upstream_quota_reset_timestamp_seconds"
QUOTAS = {"premium_interactions", "chat", "session", "weekly"}


def _epoch(iso: str) -> float:
    when = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when.timestamp()


async def _chat(proxy: Proxy) -> dict[str, dict[str, str]]:
    """One chat through the proxy; the quota headers the client saw, by quota."""
    headers, body = stream_request(events=2)
    response, _ = await fetch(proxy.url + "/chat/completions", b"POST", headers, body)
    assert response.code == 200
    seen = {}
    for name, values in response.headers.getAllRawHeaders():
        lowered = name.decode().lower()
        for prefix in ("x-quota-snapshot-", "x-usage-ratelimit-"):
            if lowered.startswith(prefix):
                seen[lowered.removeprefix(prefix)] = parse_quota(values[-1].decode())
    assert set(seen) == QUOTAS
    return seen


async def _upstream_quota(proxy: Proxy) -> dict[str, dict[str, object]]:
    response, body = await fetch(proxy.url + "/_proxy/healthz")
    assert response.code == 200
    quota: dict[str, dict[str, object]] = json.loads(body)["upstream_quota"]
    return quota


@pytest_twisted.ensureDeferred
async def test_health_shows_the_quotas_of_the_latest_upstream_answer(
    proxy: Proxy, upstream: Upstream
) -> None:
    assert await _upstream_quota(proxy) == {}
    await _chat(proxy)
    sent = await _chat(proxy)
    quota = await _upstream_quota(proxy)
    assert set(quota) == QUOTAS
    for name, fields in sent.items():
        shown = quota[name]
        assert shown["percent_remaining"] == float(fields["rem"])
        assert shown["resets_at"] == fields["rst"]
        assert shown["entitlement"] == 0
        assert shown["overage"] == 0.0
        assert shown["overage_permitted"] is False
        assert isinstance(shown["seen_s_ago"], float) and 0 <= shown["seen_s_ago"] < 5
    # rem falls with each call: two calls of 1 % each on the session limit.
    assert quota["session"]["percent_remaining"] == 98.0
    resets_in = quota["session"]["resets_in_s"]
    assert isinstance(resets_in, float) and 4.9 * 3600 < resets_in <= 5 * 3600


@pytest_twisted.ensureDeferred
async def test_metrics_expose_the_quota_gauges(proxy: Proxy, upstream: Upstream) -> None:
    found = await scrape(proxy)
    assert not [key for key in found if key[0] in (REMAINING, RESET)]
    sent = await _chat(proxy)
    found = await scrape(proxy)
    for name, fields in sent.items():
        label = (("quota", name),)
        assert found[(REMAINING, label)] == float(fields["rem"])
        assert found[(RESET, label)] == _epoch(fields["rst"])
    assert {key[1] for key in found if key[0] == REMAINING} == {
        (("quota", name),) for name in QUOTAS
    }
