"""
Seats end to end: client keys bound to their own GitHub logins, against a
fake GitHub with several accounts and the fake Copilot API.  Each key's
requests carry Copilot tokens of its own seat (checked from the fake's
record of whose token each was), seats heal and renew on their own, a
Business seat reaches its own API host, and no seat's token shows anywhere.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from copilot_proxy.access import AccessConfig
from copilot_proxy.app import build_proxy
from copilot_proxy.server import ProxyService, SeatLogins
from copilot_proxy.settings import ProxyConfig, upstream_base
from copilot_proxy.shared import SharedConfig, SharedState, SqliteLedger
from copilot_proxy.testing.fake_github import FakeGitHub
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN, FakeUpstream
from copilot_proxy.tokens import (
    GitHubAPI,
    SeatPool,
    SeatsOnly,
    StaticToken,
    seat_token_path,
    store_seat_token,
)
from copilot_proxy.wire import Secret

from .._helpers import GitHub, Upstream, client_requests, fetch, port_number, until

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"
CAROL = "sk-carol-0123456789abcdef"
DAVE = "sk-dave-0123456789abcdef0"


@dataclass
class Seats:
    url: str
    github: FakeGitHub
    upstream: FakeUpstream
    business: FakeUpstream
    pool: SeatPool
    state: Path
    tokens: dict[str, str]
    shared: SharedState
    service: ProxyService
    logs: list[dict[str, Any]]
    business_port: Any


async def _start(
    upstream: Upstream,
    github: GitHub,
    tmp_path: Path,
    seats_only: bool = False,
) -> Seats:
    fake = github.fake
    # bob's seat is a Business one, on an API host of its own.
    business = FakeUpstream(reactor)
    accepted = upstream.fake.accepted
    assert accepted is not None
    # The proxy's own (static) token stays good for keys without a seat.
    accepted[ACCEPTED_TOKEN] = float("inf")
    business.accepted = accepted
    tcp: Any = reactor
    business_port = tcp.listenTCP(0, business.site, interface="127.0.0.1")
    business_url = f"http://127.0.0.1:{business_port.getHost().port}"
    tokens = {
        "alice": fake.add_account("alice"),
        "bob": fake.add_account("bob", plan="business", api_base=business_url),
    }
    fake.add_account("dave")
    state = tmp_path / "state"
    store_seat_token(state, "alice", Secret(tokens["alice"]))
    store_seat_token(state, "bob", Secret(tokens["bob"]))
    keys = tmp_path / "keys"
    keys.write_text(
        f"{ALICE} alice seat=alice\n{BOB} bob seat=bob\n{CAROL} carol\n{DAVE} dave seat=dave\n"
    )
    keys.chmod(0o600)
    api = GitHubAPI(reactor, github.url, github.url)
    pool = SeatPool(reactor, state, api.exchange, watch_interval=0.2, min_forced_gap=0.0)
    shared = SharedState(reactor, SharedConfig(), SqliteLedger(tmp_path / "usage.sqlite3"))
    shared.startService()
    config = ProxyConfig(listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(upstream.url))
    default = SeatsOnly() if seats_only else StaticToken(Secret(ACCEPTED_TOKEN))
    service = build_proxy(
        reactor,
        config,
        default,
        AccessConfig(keys_file=str(keys), seats_only=seats_only, cache_ttl=60),
        shared=shared,
        seats=pool,
        seat_logins=SeatLogins(reactor, api, pool, state),
    )
    service.startService()  # type: ignore[no-untyped-call]
    logs: list[dict[str, Any]] = []
    from twisted.logger import globalLogPublisher

    globalLogPublisher.addObserver(logs.append)  # type: ignore[arg-type]
    return Seats(
        f"http://127.0.0.1:{port_number(service.port)}",
        fake,
        upstream.fake,
        business,
        pool,
        state,
        tokens,
        shared,
        service,
        logs,
        business_port,
    )


@pytest_twisted.async_yield_fixture
async def seats(upstream: Upstream, github: GitHub, tmp_path: Path) -> AsyncIterator[Seats]:
    started = await _start(upstream, github, tmp_path)
    yield started
    await _stop(started)


async def _stop(seats: Seats) -> None:
    from twisted.logger import globalLogPublisher

    globalLogPublisher.removeObserver(seats.logs.append)  # type: ignore[arg-type]
    seats.pool.stop()
    await seats.service.stopService()
    await seats.shared.stopService()
    await seats.business_port.stopListening()


async def _chat(url: str, key: str) -> tuple[int, bytes]:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    response, answer = await fetch(url + "/chat/completions", b"POST", headers, body.encode())
    return response.code, answer


def _whose(seats: Seats, fake: FakeUpstream) -> list[str | None]:
    """Whose Copilot token each chat request to C{fake} carried."""
    return [
        seats.github.account_of_request(r) or _default(r)
        for r in client_requests(fake)
        if r.path == "/chat/completions"
    ]


def _default(received: Any) -> str | None:
    value = received.headers.get("authorization", [""])[0]
    return "default" if value == f"Bearer {ACCEPTED_TOKEN}" else None


@pytest_twisted.ensureDeferred
async def test_each_key_spends_its_own_seat_and_bob_reaches_his_own_host(seats: Seats) -> None:
    for key in (ALICE, BOB, CAROL, ALICE, BOB):
        code, answer = await _chat(seats.url, key)
        assert code == 200, answer
    assert _whose(seats, seats.upstream) == ["alice", "default", "alice"]
    # bob's Business seat named its own API host; he never reached the other.
    assert _whose(seats, seats.business) == ["bob", "bob"]
    # Each seat exchanged its own GitHub login, once.
    assert seats.github.exchanges.count(seats.tokens["alice"]) == 1
    assert seats.github.exchanges.count(seats.tokens["bob"]) == 1


@pytest_twisted.ensureDeferred
async def test_a_401_on_one_seat_renews_that_seat_only(seats: Seats) -> None:
    assert (await _chat(seats.url, ALICE))[0] == 200
    assert (await _chat(seats.url, BOB))[0] == 200
    accepted = seats.upstream.accepted
    assert accepted is not None
    for token in seats.github.issued_to("alice"):
        accepted.pop(token, None)
    code, _ = await _chat(seats.url, ALICE)
    assert code == 200
    assert _whose(seats, seats.upstream)[-1] == "alice"
    assert seats.github.exchanges.count(seats.tokens["alice"]) == 2
    assert seats.github.exchanges.count(seats.tokens["bob"]) == 1
    assert (await _chat(seats.url, BOB))[0] == 200
    assert seats.github.exchanges.count(seats.tokens["bob"]) == 1


@pytest_twisted.ensureDeferred
async def test_a_revoked_seat_heals_from_a_new_login_without_a_restart(seats: Seats) -> None:
    assert (await _chat(seats.url, ALICE))[0] == 200
    seats.github.revoke(seats.tokens["alice"])
    accepted = seats.upstream.accepted
    assert accepted is not None
    for token in seats.github.issued_to("alice"):
        accepted.pop(token, None)
    code, answer = await _chat(seats.url, ALICE)
    assert code in (401, 503), answer
    # bob is untouched.
    assert (await _chat(seats.url, BOB))[0] == 200
    # alice logs in again (as the CLI or the self-service login would store it).
    fresh = "gho_fake_alice_again_0001"
    seats.github.add_token("alice", fresh)
    store_seat_token(seats.state, "alice", Secret(fresh))
    for _ in range(50):
        code, _ = await _chat(seats.url, ALICE)
        if code == 200:
            break
        await deferLater(reactor, 0.1, lambda: None)
    assert code == 200
    assert _whose(seats, seats.upstream)[-1] == "alice"


@pytest_twisted.ensureDeferred
async def test_self_service_login_connects_a_seat_end_to_end(seats: Seats) -> None:
    seats.github.auto_approve = False
    # dave's seat has no login yet: his requests cannot be served, and the
    # answer says how to log it in.
    code, answer = await _chat(seats.url, DAVE)
    assert code == 503
    assert "seat dave has no GitHub login" in answer.decode()
    assert "copilot-proxy login --seat dave" in answer.decode()
    headers = {"authorization": f"Bearer {DAVE}"}
    response, body = await fetch(seats.url + "/_proxy/seat/login", b"POST", headers)
    assert response.code == 200, body
    started = json.loads(body)
    assert started["seat"] == "dave" and started["status"] == "pending"
    assert started["user_code"] and started["verification_uri"].startswith("http://127.0.0.1:")
    # Asking again while it waits gives the same code.
    _, again = await fetch(seats.url + "/_proxy/seat/login", b"POST", headers)
    assert json.loads(again)["user_code"] == started["user_code"]
    seats.github.approve_as("dave", started["user_code"])
    await until(lambda: seat_token_path(seats.state, "dave").exists(), seconds=10)
    assert seat_token_path(seats.state, "dave").stat().st_mode & 0o777 == 0o600
    _, state = await fetch(seats.url + "/_proxy/seat", headers=headers)
    assert json.loads(state)["status"] == "logged_in"
    for _ in range(50):
        code, _ = await _chat(seats.url, DAVE)
        if code == 200:
            break
        await deferLater(reactor, 0.1, lambda: None)
    assert code == 200
    assert _whose(seats, seats.upstream)[-1] == "dave"
    # A key bound to no seat has none to log in.
    response, body = await fetch(
        seats.url + "/_proxy/seat/login", b"POST", {"authorization": f"Bearer {CAROL}"}
    )
    assert response.code == 400 and b"no_seat" in body


@pytest_twisted.ensureDeferred
async def test_usage_is_kept_per_seat_beside_per_key(seats: Seats) -> None:
    for key in (ALICE, ALICE, BOB, CAROL):
        assert (await _chat(seats.url, key))[0] == 200
    ledger = seats.shared.ledger
    assert ledger is not None
    document = await ledger.usage(1)
    assert set(document["keys"]) == {"alice", "bob", "carol"}
    assert set(document["seats"]) == {"alice", "bob"}
    assert document["seats"]["alice"]["gpt-4o"]["requests"] == 2
    assert "carol" not in document["seats"]


@pytest_twisted.ensureDeferred
async def test_no_seat_token_shows_anywhere(seats: Seats) -> None:
    for key in (ALICE, BOB):
        assert (await _chat(seats.url, key))[0] == 200
    _, health = await fetch(seats.url + "/_proxy/healthz")
    _, metrics = await fetch(seats.url + "/_proxy/metrics", headers={"x-api-key": ALICE})
    _, usage = await fetch(seats.url + "/_proxy/usage", headers={"x-api-key": ALICE})
    _, seat = await fetch(seats.url + "/_proxy/seat", headers={"x-api-key": ALICE})
    seats.github.revoke(seats.tokens["bob"])
    accepted = seats.business.accepted
    assert accepted is not None
    for token in seats.github.issued_to("bob"):
        accepted.pop(token, None)
    _, refused = await _chat(seats.url, BOB)
    from twisted.logger import formatEvent

    logged = "\n".join(formatEvent(event) + repr(event) for event in seats.logs)
    secrets = [*seats.tokens.values(), *seats.github.issued]
    for text in (health.decode(), metrics.decode(), usage.decode(), seat.decode()):
        text += refused.decode() + logged
        for secret in secrets:
            assert secret not in text


@pytest_twisted.ensureDeferred
async def test_seats_only_refuses_keys_bound_to_no_seat(
    upstream: Upstream, github: GitHub, tmp_path: Path
) -> None:
    seats = await _start(upstream, github, tmp_path, seats_only=True)
    try:
        code, answer = await _chat(seats.url, CAROL)
        assert code == 403
        error = json.loads(answer)["error"]
        assert error["code"] == "seat_required" and "seat=NAME" in error["message"]
        assert (await _chat(seats.url, ALICE))[0] == 200
        _, health = await fetch(seats.url + "/_proxy/healthz")
        assert json.loads(health)["token"]["source"] == "seats"
    finally:
        await _stop(seats)


@pytest_twisted.ensureDeferred
async def test_the_models_cache_is_per_seat(seats: Seats) -> None:
    for key in (ALICE, ALICE, BOB, BOB):
        response, _ = await fetch(seats.url + "/v1/models", headers={"x-api-key": key})
        assert response.code == 200

    def lists(fake: FakeUpstream) -> list[str | None]:
        return [
            seats.github.account_of_request(r)
            for r in client_requests(fake)
            if r.path == "/models"
        ]

    # One fetch per seat, each from the seat's own host with its own token:
    # bob never got alice's cached list.
    assert lists(seats.upstream) == ["alice"]
    assert lists(seats.business) == ["bob"]
