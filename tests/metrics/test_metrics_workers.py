"""
With C{--workers}, C{/_proxy/metrics} counts what every process did, whichever
process answers the scrape.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest_twisted

from .._helpers import Upstream, fetch, stream_request, timeout, until
from ..app.test_workers import process_alive, start_with_workers
from ..server.test_admin import requests_of, samples


async def _chat(url: str) -> None:
    headers, body = stream_request(events=2)
    response, _ = await fetch(url + "/chat/completions", b"POST", headers, body)
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_metrics_sum_every_worker_whoever_answers(upstream: Upstream) -> None:
    process, watch, url = await start_with_workers(upstream, workers=2)
    [worker] = watch.worker_pids()
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    (directory,) = [
        v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
    ]
    try:
        # Each process has its own accept queue (SO_REUSEPORT), and the
        # kernel spreads fresh connections over them by a hash: the chats
        # land on both processes, and so do the scrapes.  Every scrape must
        # count all ten, whoever answers it.
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
    assert {requests_of(s, "POST", "chat_completions", "2xx") for s in scrapes} == {10}
    last = scrapes[-1]
    assert last[("copilot_proxy_in_flight", ())] == 0
    chat = (("route", "chat_completions"),)
    assert last[("copilot_proxy_request_duration_seconds_count", chat)] == 10
    # The run's metric files go with it.
    assert not os.path.exists(directory)
    assert "Traceback" not in watch.text
