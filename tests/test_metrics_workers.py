"""
With C{--workers}, C{/_proxy/metrics} counts what every process did, whichever
process answers the scrape.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest_twisted

from ._helpers import Upstream, fetch, stream_request, timeout, until
from .test_admin import requests_of, samples
from .test_workers import _alive, _start


async def _chat(url: str) -> None:
    headers, body = stream_request(events=2)
    response, _ = await fetch(url + "/chat/completions", b"POST", headers, body)
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_metrics_sum_every_worker_whoever_answers(upstream: Upstream) -> None:
    process, watch, url = await _start(upstream, workers=2)
    [worker] = watch.worker_pids()
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    (directory,) = [
        v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
    ]
    scrapes = []
    try:
        # Three requests the worker serves (the first process is frozen),
        # then two the first process serves, with a scrape by each.
        for frozen, requests in ((process.pid, 3), (worker, 2)):
            os.kill(frozen, signal.SIGSTOP)
            try:
                for _ in range(requests):
                    await _chat(url)
                _, text = await fetch(url + "/_proxy/metrics")
                scrapes.append(samples(text.decode()))
            finally:
                os.kill(frozen, signal.SIGCONT)
        _, text = await fetch(url + "/_proxy/healthz")
    finally:
        process.signalProcess("TERM")
        assert await timeout(watch.ended, 20) == 0, watch.text
    await until(lambda: not _alive(worker), 10)
    by_worker, by_first = scrapes
    assert requests_of(by_worker, "POST", "chat_completions", "2xx") == 3
    assert requests_of(by_first, "POST", "chat_completions", "2xx") == 5
    assert by_first[("copilot_proxy_in_flight", ())] == 0
    chat = (("route", "chat_completions"),)
    assert by_first[("copilot_proxy_request_duration_seconds_count", chat)] == 5
    # The run's metric files go with it.
    assert not os.path.exists(directory)
    assert "Traceback" not in watch.text
