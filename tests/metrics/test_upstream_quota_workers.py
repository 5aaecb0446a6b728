"""
With C{--workers}, the upstream quota gauges show the freshest reading of any
process, whichever process answers the scrape.
"""

from __future__ import annotations

import pytest_twisted

from .._helpers import Upstream, fetch, timeout, until
from ..app.test_workers import process_alive, start_with_workers
from ..server.test_admin import samples
from .test_metrics_workers import _chat

SESSION = ("copilot_proxy_upstream_quota_remaining_percent", (("quota", "session"),))


@pytest_twisted.ensureDeferred
async def test_quota_gauges_show_the_latest_answer_of_any_worker(upstream: Upstream) -> None:
    process, watch, url = await start_with_workers(upstream, workers=2)
    [worker] = watch.worker_pids()
    try:
        # The chats land on both processes (see test_metrics_workers); the
        # fake's session limit falls by 1 % per call, so the last answer of
        # all says 90 %, and an older reading of either process says more.
        for _ in range(10):
            await _chat(url)
        scrapes = []
        for _ in range(20):
            _, text = await fetch(url + "/_proxy/metrics")
            scrapes.append(samples(text.decode()))
    finally:
        process.signalProcess("TERM")
        assert await timeout(watch.ended, 20) == 0, watch.text
    await until(lambda: not process_alive(worker), 10)
    assert {s[SESSION] for s in scrapes} == {100.0 - upstream.fake.model_calls}
    assert upstream.fake.model_calls == 10
