"""
A key's AI-credits budget (C{credits=N/PERIOD}): once the usage ledger says
it is spent, the key's requests get 429 naming the budget and its reset,
nothing reaches the upstream, and a restart remembers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from copilot_proxy.access import AccessConfig
from copilot_proxy.shared import SharedConfig, SharedState, SqliteLedger

from .._helpers import Proxy, Upstream, client_requests, fetch, start_proxy, stop_proxy

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"
# A priced Claude model: one small answer costs about 0.0015 credits.
MODEL = "claude-sonnet-4.5"


def _proxy(upstream: Upstream, keys: Path, ledger: Path) -> tuple[Proxy, SharedState, str]:
    shared = SharedState(reactor, SharedConfig(), SqliteLedger(ledger))
    proxy = start_proxy(
        reactor, upstream.url, access=AccessConfig(keys_file=str(keys)), shared=shared
    )
    return proxy, shared, proxy.url


async def _ask(url: str, key: str) -> tuple[int, dict[str, Any], Any]:
    body = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    response, answer = await fetch(
        url + "/v1/messages", b"POST", headers, json.dumps(body).encode()
    )
    return response.code, json.loads(answer), response.headers


@pytest_twisted.ensureDeferred
async def test_a_spent_budget_refuses_until_it_resets_and_survives_a_restart(
    upstream: Upstream, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{ALICE} alice credits=0.001/day\n{BOB} bob credits=100/month\n")
    keys.chmod(0o600)
    ledger = tmp_path / "usage.sqlite3"
    proxy, shared, url = _proxy(upstream, keys, ledger)
    try:
        assert (await _ask(url, ALICE))[0] == 200
        sent = len(client_requests(upstream.fake))
        code, error, headers = await _ask(url, ALICE)
        assert code == 429
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
        message = error["error"]["message"]
        assert "budget of key alice (0.001/day credits) is used up" in message
        tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
        assert f"resets at {tomorrow}T00:00:00Z" in message
        wait = int(headers.getRawHeaders(b"retry-after")[0])
        assert 0 < wait <= 86400
        assert len(client_requests(upstream.fake)) == sent
        # bob's budget is his own.
        assert (await _ask(url, BOB))[0] == 200
    finally:
        await stop_proxy(proxy)
    proxy, shared, url = _proxy(upstream, keys, ledger)
    try:
        assert (await _ask(url, ALICE))[0] == 429
        document = await shared.ledger.usage(1) if shared.ledger is not None else {}
        alice = document["keys"]["alice"]
        # Counted under the model the upstream served.
        (served,) = (model for model in alice if model != "-")
        assert alice[served]["requests"] == 1 and alice[served]["nano_aiu"] > 10**6
        assert alice["-"]["refused"] == 2
    finally:
        await stop_proxy(proxy)
