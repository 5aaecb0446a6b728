"""
Several real C{twistd} proxies sharing one real Redis, as several hosts
behind a load balancer would: one rate limit and one stream cap for all of
them, slots of a killed process freed, service through a Redis outage, and a
usage ledger that adds up to what the upstream reported.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN

from .._helpers import Upstream, client_requests, fetch, send, stream_request, timeout, until
from .._redis_server import RedisServer, needs_redis
from .._twistd import Twistd, clean_env, free_port

pytestmark = needs_redis

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"
OPS = "sk-ops-0123456789abcdef000"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice\n{BOB} bob\n{OPS} ops admin\n")
    path.chmod(0o600)
    return path


class Fleet:
    """Proxies started with the same options; each on its own port."""

    def __init__(self, upstream: Upstream, keys: Path, tmp: Path, *options: str) -> None:
        self.upstream = upstream
        self.keys = keys
        self.tmp = tmp
        self.options = options
        self.runs: list[Twistd] = []
        self.urls: list[str] = []

    async def start(self, count: int, *extra: str) -> None:
        for _ in range(count):
            await self.add(*extra)

    async def add(self, *extra: str) -> Twistd:
        port = free_port()
        run = Twistd.spawn(
            [
                *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
                *("--upstream", self.upstream.url, "--client-keys-file", str(self.keys)),
                *("--state-dir", str(self.tmp / f"state-{len(self.runs)}")),
                *self.options,
                *extra,
            ],
            env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN),
        )
        url = f"http://127.0.0.1:{port}"
        self.runs.append(run)
        self.urls.append(url)
        await run.serving(url + "/_proxy/healthz")
        return run

    async def stop(self) -> None:
        for run in self.runs:
            run.kill()
        for run in self.runs:
            if not run.ended.called:
                await timeout(run.ended, 20)

    @property
    def logs(self) -> str:
        return "\n".join(run.text for run in self.runs)


@pytest_twisted.async_yield_fixture
async def fleet_of(upstream: Upstream, keys: Path, tmp_path: Path) -> AsyncIterator[Any]:
    fleets: list[Fleet] = []

    def make(*options: str) -> Fleet:
        fleet = Fleet(upstream, keys, tmp_path, *options)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        await fleet.stop()


def _chat(key: str, **shape: Any) -> tuple[dict[str, str], bytes]:
    headers, body = stream_request(**shape)
    headers["authorization"] = f"Bearer {key}"
    return headers, body


async def _post(url: str, key: str, stream: bool = False, **shape: Any) -> tuple[int, bytes]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    headers.update({f"x-fake-{k}": str(v) for k, v in shape.items()})
    body = json.dumps(
        {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    response, answer = await fetch(url + "/chat/completions", b"POST", headers, body)
    return response.code, answer


async def _health(url: str) -> dict[str, Any]:
    _, body = await fetch(url + "/_proxy/healthz")
    document: dict[str, Any] = json.loads(body)
    return document


@pytest_twisted.ensureDeferred
async def test_a_rate_limit_holds_exactly_across_three_processes(
    fleet_of: Any, redis: RedisServer
) -> None:
    fleet = fleet_of("--redis", redis.url, "--rate-limit", "10/min")
    await fleet.start(3)
    codes = [(await _post(fleet.urls[i % 3], ALICE))[0] for i in range(30)]
    assert codes.count(200) == 10 and codes.count(429) == 20, codes
    # bob has a bucket of his own, shared too.
    codes = [(await _post(fleet.urls[i % 3], BOB))[0] for i in range(12)]
    assert codes.count(200) == 10, codes
    for url in fleet.urls:
        shared = (await _health(url))["shared_state"]
        assert shared["backend"] == "redis" and shared["status"] == "ok", shared


@pytest_twisted.ensureDeferred
async def test_stream_caps_hold_across_processes_and_a_killed_ones_slots_expire(
    fleet_of: Any, redis: RedisServer
) -> None:
    fleet = fleet_of("--redis", redis.url, "--max-streams", "2", "--redis-lease-ttl", "1.5")
    await fleet.start(2)
    first, second = fleet.urls
    streams = []
    for url in (first, first):
        headers, body = _chat(ALICE, events=200, interval=0.05)
        response, collector = await send(url + "/chat/completions", b"POST", headers, body)
        assert response.code == 200
        await timeout(collector.first)
        streams.append(collector)
    # The fleet's two slots are taken, whichever process is asked.
    code, answer = await _post(second, BOB)
    assert code == 429 and b"too_many_streams" in answer
    # The process holding them dies without a word: its leases are not
    # renewed, and within their lifetime the slots are the fleet's again.
    fleet.runs[0].signal("KILL")
    started = reactor.seconds()
    while (await _post(second, BOB))[0] != 200:
        assert reactor.seconds() - started < 5, "the dead process's slots never expired"
        await deferLater(reactor, 0.2, lambda: None)
    assert reactor.seconds() - started < 3.5


@pytest_twisted.ensureDeferred
async def test_a_redis_outage_serves_with_local_limits_then_shared_ones_resume(
    fleet_of: Any, redis: RedisServer
) -> None:
    fleet = fleet_of("--redis", redis.url, "--rate-limit", "5/min", "--redis-timeout", "0.2")
    await fleet.start(2)
    codes = [(await _post(fleet.urls[i % 2], ALICE))[0] for i in range(10)]
    assert codes.count(200) == 5
    redis.stop()
    # Each process now has its own 5/min for alice: still served, quickly.
    started = reactor.seconds()
    codes = [(await _post(fleet.urls[i % 2], ALICE))[0] for i in range(12)]
    assert codes.count(200) == 10, codes
    assert reactor.seconds() - started < 5
    health = await _health(fleet.urls[0])
    assert health["shared_state"]["status"] == "unavailable"
    assert health["status"] == "ok"
    redis.start()
    await until(
        lambda: all("is back; shared limits resume" in run.text for run in fleet.runs),
        seconds=15,
    )
    # A fresh Redis: the shared bucket starts full, one for both processes.
    codes = [(await _post(fleet.urls[i % 2], ALICE))[0] for i in range(10)]
    assert codes.count(200) == 5, codes
    logs = fleet.logs
    assert logs.count("is unavailable") == 2, logs  # once per process per outage
    _, metrics = await fetch(
        fleet.urls[0] + "/_proxy/metrics", headers={"authorization": f"Bearer {OPS}"}
    )
    assert b"copilot_proxy_shared_state_fallbacks_total" in metrics


@pytest_twisted.ensureDeferred
async def test_redis_required_refuses_while_redis_is_away(
    fleet_of: Any, redis: RedisServer
) -> None:
    fleet = fleet_of(
        "--redis",
        redis.url,
        "--rate-limit",
        "50/min",
        "--redis-required",
        "--redis-timeout",
        "0.2",
    )
    await fleet.start(1)
    assert (await _post(fleet.urls[0], ALICE))[0] == 200
    redis.stop()
    code, answer = await _post(fleet.urls[0], ALICE)
    assert code == 503 and b"shared_state_unavailable" in answer


async def _mixed_traffic(urls: list[str], count: int) -> None:
    """Chat (streamed and not), Responses and Messages, from two keys."""
    for i in range(count):
        url = urls[i % len(urls)]
        key = (ALICE, BOB)[i % 2]
        kind = i % 4
        auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        if kind in (0, 1):
            body = {
                "model": "gpt-4o",
                "stream": kind == 0,
                "messages": [{"role": "user", "content": "hi"}],
            }
            path = "/chat/completions"
        elif kind == 2:
            body = {"model": "gpt-5-mini", "stream": True, "input": "hi"}
            path = "/responses"
        else:
            body = {
                "model": "claude-sonnet-4.5",
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
            path = "/v1/messages"
            auth["anthropic-version"] = "2023-06-01"
        response, _ = await fetch(url + path, b"POST", auth, json.dumps(body).encode())
        assert response.code == 200, (path, response.code)


def _ledger_totals(document: dict[str, Any]) -> dict[str, dict[str, int]]:
    per_model: dict[str, dict[str, int]] = {}
    for models in document["keys"].values():
        for model, counts in models.items():
            into = per_model.setdefault(model, {})
            for name, value in counts.items():
                into[name] = into.get(name, 0) + value
    return per_model


@pytest_twisted.ensureDeferred
async def test_the_ledger_across_processes_equals_the_upstreams_usage(
    fleet_of: Any, redis: RedisServer, upstream: Upstream
) -> None:
    fleet = fleet_of("--redis", redis.url)
    await fleet.start(2)
    before = {m: t for m, t in upstream.fake.usage_totals.items()}
    assert not before
    await _mixed_traffic(fleet.urls, 100)

    async def ledger() -> dict[str, Any]:
        _, body = await fetch(
            fleet.urls[1] + "/_proxy/usage?days=1", headers={"authorization": f"Bearer {OPS}"}
        )
        document: dict[str, Any] = json.loads(body)
        return document

    served = upstream.fake.usage_totals
    expected = {
        model: {
            "input_tokens": t.input,
            "cached_tokens": t.cached,
            "output_tokens": t.output,
            "reasoning_tokens": t.reasoning,
            "nano_aiu": t.nano_aiu,
        }
        for model, t in served.items()
    }
    # The other process flushes its counts within a second.
    for _ in range(50):
        document = await ledger()
        totals = _ledger_totals(document)
        if sum(c["requests"] for c in totals.values()) == 100:
            break
        await deferLater(reactor, 0.1, lambda: None)
    assert sum(c["requests"] for c in totals.values()) == 100, document
    got = {
        model: {name: counts[name] for name in expected.get(model, {})}
        for model, counts in totals.items()
    }
    assert got == expected
    assert set(document["keys"]) == {"alice", "bob"}
    # A client key sees its own usage only.
    _, mine = await fetch(fleet.urls[0] + "/_proxy/usage", headers={"x-api-key": ALICE})
    assert set(json.loads(mine)["keys"]) == {"alice"}
    response, _ = await fetch(
        fleet.urls[0] + "/_proxy/usage?key=bob", headers={"x-api-key": ALICE}
    )
    assert response.code == 403


@pytest_twisted.ensureDeferred
async def test_the_sqlite_ledger_survives_a_restart_and_counts_every_worker(
    upstream: Upstream, keys: Path, tmp_path: Path
) -> None:
    port = free_port()
    args = [
        *("-n", "--pidfile=", "copilot-proxy", "--port", str(port), "--workers", "2"),
        *("--upstream", upstream.url, "--client-keys-file", str(keys)),
        *("--state-dir", str(tmp_path / "state")),
    ]
    url = f"http://127.0.0.1:{port}"
    for _ in (1, 2):
        run = Twistd.spawn(args, env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN))
        try:
            await run.serving(url + "/_proxy/healthz")
            for _ in range(20):
                assert (await _post(url, ALICE))[0] == 200
            # Refused requests count too.
            response, _ = await fetch(url + "/models", headers={"x-api-key": "wrong-key-00000000"})
            assert response.code == 401
        finally:
            assert await run.stop(20) == 0, run.text
    ledger = tmp_path / "state" / "usage.sqlite3"
    assert ledger.stat().st_mode & 0o777 == 0o600
    process = Twistd.spawn(
        ["usage", "--json", "--state-dir", str(tmp_path / "state")],
        env=clean_env(),
        executable=str(Path(sys.executable).with_name("copilot-proxy")),
    )
    code = await timeout(process.ended, 30)
    assert code == 0, process.text
    document = json.loads(b"".join(process.stdout))
    assert document["keys"]["alice"]["gpt-4o"]["requests"] == 40
    refused = sum(c["refused"] for m in document["keys"].values() for c in m.values())
    assert refused == 2


@pytest_twisted.ensureDeferred
async def test_an_upstream_retry_after_holds_back_the_whole_fleet(
    fleet_of: Any, redis: RedisServer, upstream: Upstream
) -> None:
    fleet = fleet_of("--redis", redis.url)
    await fleet.start(2)
    first, second = fleet.urls
    code, _ = await _post(first, ALICE, status=429)
    assert code == 429
    sent = len(client_requests(upstream.fake))
    # Within a second every process knows: the other answers at once,
    # without asking the upstream, and says how long to wait.
    await deferLater(reactor, 1.2, lambda: None)
    headers = {"content-type": "application/json", "authorization": f"Bearer {BOB}"}
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    response, answer = await fetch(second + "/chat/completions", b"POST", headers, body.encode())
    assert response.code == 429 and b"upstream_rate_limited" in answer
    wait = int(response.headers.getRawHeaders(b"retry-after", [b"0"])[0])
    assert 1 <= wait <= 6
    assert len(client_requests(upstream.fake)) == sent
    # Another model is not held (the upstream named no account-wide limit).
    other = json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]})
    response, _ = await fetch(second + "/chat/completions", b"POST", headers, other.encode())
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_one_models_fetch_serves_the_whole_fleet(
    fleet_of: Any, redis: RedisServer, upstream: Upstream
) -> None:
    fleet = fleet_of("--redis", redis.url, "--cache-ttl", "60")
    await fleet.start(3)

    def model_lists() -> int:
        return sum(1 for r in client_requests(upstream.fake) if r.path == "/models")

    bodies = set()
    for i in range(9):
        response, body = await fetch(fleet.urls[i % 3] + "/v1/models", headers={"x-api-key": BOB})
        assert response.code == 200
        bodies.add(body)
    assert model_lists() == 1
    assert len(bodies) == 1


@pytest_twisted.ensureDeferred
async def test_the_redis_password_is_never_shown(
    fleet_of: Any, upstream: Upstream, tmp_path: Path
) -> None:
    password = "redis-secret-password-4242"
    redis = RedisServer(password=password)
    redis.start()
    try:
        secret = tmp_path / "redis-password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        url = f"redis://127.0.0.1:{redis.port}/0"
        fleet = fleet_of(
            "--redis", url, "--redis-password-file", str(secret), "--rate-limit", "5/s"
        )
        await fleet.start(1)
        proxy = fleet.urls[0]
        assert (await _post(proxy, ALICE))[0] == 200
        health = await _health(proxy)
        assert health["shared_state"]["status"] == "ok"
        redis.stop()
        for _ in range(3):
            await _post(proxy, ALICE)
        health_text = json.dumps(await _health(proxy))
        assert "unavailable" in health_text
        _, metrics = await fetch(
            proxy + "/_proxy/metrics", headers={"authorization": f"Bearer {OPS}"}
        )
        # Named keys get their own series.
        assert b'copilot_proxy_key_requests_total{key="alice",result="requests"}' in metrics
        _, usage = await fetch(proxy + "/_proxy/usage", headers={"authorization": f"Bearer {OPS}"})
        # The password given in the URL instead: refused in ps, never shown.
        fleet2 = fleet_of("--redis", f"redis://:{password}@127.0.0.1:{redis.port}/0")
        await fleet2.start(1)
        for text in (health_text, metrics.decode(), usage.decode(), fleet.logs, fleet2.logs):
            assert password not in text
        assert "holds a password, which other users can see in ps" in fleet2.logs
    finally:
        redis.close()


@pytest_twisted.ensureDeferred
async def test_the_status_page_shows_the_streams_of_every_process(
    fleet_of: Any, redis: RedisServer
) -> None:
    fleet = fleet_of("--redis", redis.url)
    await fleet.start(2)
    first, second = fleet.urls
    headers, body = _chat(ALICE, events=200, interval=0.05)
    response, collector = await send(first + "/chat/completions", b"POST", headers, body)
    await timeout(collector.first)

    async def status(url: str, key: str) -> dict[str, Any]:
        _, answer = await fetch(url + "/_proxy/status.json", headers={"x-api-key": key})
        document: dict[str, Any] = json.loads(answer)
        return document

    # Within a publication (2 s), the other process lists alice's stream,
    # tagged with the process that carries it.
    for _ in range(40):
        document = await status(second, OPS)
        if document["requests_in_flight"]:
            break
        await deferLater(reactor, 0.1, lambda: None)
    (stream,) = document["requests_in_flight"]
    assert stream["key"] == "alice" and stream["process"].endswith(f":{fleet.runs[0].pid}")
    assert len(document["process"]["fleet_processes"]) == 2
    # bob sees only his own; alice sees hers.
    assert (await status(second, BOB))["requests_in_flight"] == []
    assert len((await status(second, ALICE))["requests_in_flight"]) == 1
    transport: Any = collector.transport
    transport.stopProducing()


@pytest_twisted.ensureDeferred
async def test_counts_redis_cannot_take_at_stop_wait_on_the_host_for_the_next_start(
    upstream: Upstream, keys: Path, tmp_path: Path, redis: RedisServer
) -> None:
    state = tmp_path / "state"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
        *("--upstream", upstream.url, "--client-keys-file", str(keys)),
        *("--state-dir", str(state), "--redis", redis.url, "--redis-timeout", "0.2"),
    ]
    run = Twistd.spawn(args, env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN))
    try:
        await run.serving(url + "/_proxy/healthz")
        redis.stop()
        for _ in range(3):
            assert (await _post(url, ALICE))[0] == 200
    finally:
        assert await run.stop(20) == 0, run.text
    assert "kept the counts of 1 key/model/day(s) on this host" in run.text
    assert (state / "usage-spool.sqlite3").exists()
    redis.start()
    again = Twistd.spawn(args, env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN))
    try:
        await again.serving(url + "/_proxy/healthz")
        await until(lambda: "kept at an earlier stop into the ledger" in again.text, seconds=10)
        _, body = await fetch(url + "/_proxy/usage?days=1", headers={"x-api-key": OPS})
        assert json.loads(body)["keys"]["alice"]["gpt-4o"]["requests"] == 3
    finally:
        assert await again.stop(20) == 0, again.text
    # Moved once: a third start adds nothing.
    assert "kept at an earlier stop" not in await _third_start(args, url)


async def _third_start(args: list[str], url: str) -> str:
    run = Twistd.spawn(args, env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN))
    try:
        await run.serving(url + "/_proxy/healthz")
        await deferLater(reactor, 1.5, lambda: None)
    finally:
        assert await run.stop(20) == 0, run.text
    return run.text
