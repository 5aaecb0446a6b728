"""
The fake GitHub with several accounts, over a real loopback socket and the
proxy's own GitHub client: each account's tokens, plan, quota and API base
are its own, and device logins approve as the account a test chooses.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from copilot_proxy.testing.fake_github import DEFAULT_LOGIN, GITHUB_TOKEN, USER_CODE
from copilot_proxy.testing.fake_upstream import COPILOT_HEADERS
from copilot_proxy.tokens import DeviceCode, GitHubAPI, GitHubRefused, wait_for_approval
from copilot_proxy.wire import Secret

from .._helpers import GitHub, Upstream, fetch, timeout

BUSINESS_API = "http://business.copilot.invalid"


def _api(reactor: Any, github: GitHub) -> GitHubAPI:
    return GitHubAPI(reactor, github.url, github.url)


def _approved(reactor: Any, api: GitHubAPI, device: DeviceCode) -> Deferred[Secret]:
    return timeout(Deferred.fromCoroutine(wait_for_approval(reactor, api, device)))


@pytest_twisted.ensureDeferred
async def test_each_account_gets_copilot_tokens_of_its_own(reactor: Any, github: GitHub) -> None:
    fake = github.fake
    alice = fake.add_account("alice")
    api = _api(reactor, github)
    theirs = await timeout(api.exchange(Secret(alice)))
    ours = await timeout(api.exchange(Secret(GITHUB_TOKEN)))
    assert alice.startswith("gho_fake_alice_")
    assert fake.owner_of(theirs.token.reveal()) == "alice"
    assert fake.owner_of(ours.token.reveal()) == DEFAULT_LOGIN
    assert fake.issued_to("alice") == [theirs.token.reveal()]
    assert fake.issued_to(DEFAULT_LOGIN) == [ours.token.reveal()]
    assert fake.issued == [theirs.token.reveal(), ours.token.reveal()]
    assert fake.owner_of("tid=not-issued") is None


@pytest_twisted.ensureDeferred
async def test_each_account_has_its_own_login_plan_quota_and_api_base(
    reactor: Any, github: GitHub
) -> None:
    fake = github.fake
    alice = fake.add_account("alice", plan="business", api_base=BUSINESS_API)
    bob = fake.add_account("bob", "gho_fake_bob_token")
    fake.accounts["bob"].quota_remaining = 12
    fake.quota_remaining = 99
    api = _api(reactor, github)
    assert bob == "gho_fake_bob_token"
    assert (await timeout(api.user(Secret(alice))))["login"] == "alice"
    assert (await timeout(api.user(Secret(bob))))["login"] == "bob"
    assert (await timeout(api.user(Secret(GITHUB_TOKEN))))["login"] == DEFAULT_LOGIN
    business = await timeout(api.copilot_user(Secret(alice)))
    individual = await timeout(api.copilot_user(Secret(bob)))
    default = await timeout(api.copilot_user(Secret(GITHUB_TOKEN)))
    assert business["copilot_plan"] == "business"
    assert individual["copilot_plan"] == default["copilot_plan"] == "individual"
    quotas = [
        answer["quota_snapshots"]["premium_interactions"]["remaining"]
        for answer in (business, individual, default)
    ]
    assert quotas == [250, 12, 99]
    assert (await timeout(api.exchange(Secret(alice)))).api == BUSINESS_API.encode()
    assert fake.api_base is not None
    assert (await timeout(api.exchange(Secret(bob)))).api == fake.api_base.encode()


@pytest_twisted.ensureDeferred
async def test_revoking_one_account_leaves_the_others_working(
    reactor: Any, github: GitHub
) -> None:
    fake = github.fake
    alice = fake.add_account("alice")
    bob = fake.add_account("bob")
    fake.revoke(alice)
    api = _api(reactor, github)
    with pytest.raises(GitHubRefused):
        await timeout(api.exchange(Secret(alice)))
    with pytest.raises(GitHubRefused):
        await timeout(api.user(Secret(alice)))
    assert fake.owner_of((await timeout(api.exchange(Secret(bob)))).token.reveal()) == "bob"
    assert (await timeout(api.user(Secret(GITHUB_TOKEN))))["login"] == DEFAULT_LOGIN
    assert fake.issued_to("alice") == []


@pytest_twisted.ensureDeferred
async def test_a_new_token_of_an_account_heals_its_revoked_one(
    reactor: Any, github: GitHub
) -> None:
    fake = github.fake
    old = fake.add_account("alice")
    fake.revoke(old)
    fake.add_token("alice", "gho_fake_alice_new")
    api = _api(reactor, github)
    token = await timeout(api.exchange(Secret("gho_fake_alice_new")))
    assert fake.owner_of(token.token.reveal()) == "alice"
    with pytest.raises(ValueError, match="belongs to 'alice'"):
        fake.add_token("bob", "gho_fake_alice_new")
    with pytest.raises(ValueError, match="already has an account"):
        fake.add_account("alice")


@pytest_twisted.ensureDeferred
async def test_device_logins_in_a_row_approve_as_the_chosen_accounts(
    reactor: Any, github: GitHub
) -> None:
    fake = github.fake
    fake.pending_rounds = fake.slow_down_rounds = 0
    alice = fake.add_account("alice")
    bob = fake.add_account("bob")
    api = _api(reactor, github)
    granted = []
    for login in ("alice", "bob"):
        fake.approve_as(login)
        device = await timeout(api.device_code())
        granted.append((await _approved(reactor, api, device)).reveal())
    device = await timeout(api.device_code())
    granted.append((await _approved(reactor, api, device)).reveal())
    # A flow approved as nobody in particular grants `grant`, as before.
    assert granted == [alice, bob, GITHUB_TOKEN]
    assert fake.user_codes[0] == USER_CODE
    assert len(set(fake.user_codes)) == 3


@pytest_twisted.ensureDeferred
async def test_waiting_device_logins_each_get_the_account_that_approved_them(
    reactor: Any, github: GitHub
) -> None:
    fake = github.fake
    fake.pending_rounds = fake.slow_down_rounds = 0
    fake.auto_approve = False
    alice = fake.add_account("alice")
    bob = fake.add_account("bob")
    api = _api(reactor, github)
    first = await timeout(api.device_code())
    second = await timeout(api.device_code())
    waiting_first = _approved(reactor, api, first)
    waiting_second = _approved(reactor, api, second)
    await deferLater(reactor, 0.3, lambda: None)
    assert len(fake.polls) >= 4  # both still waiting, unapproved
    assert not waiting_first.called and not waiting_second.called
    fake.approve_as("bob", user_code=second.user_code)
    fake.approve_as("alice")
    assert (await timeout(waiting_second)).reveal() == bob
    assert (await timeout(waiting_first)).reveal() == alice


@pytest_twisted.ensureDeferred
async def test_the_account_of_a_request_the_upstream_received(
    reactor: Any, github: GitHub, upstream: Upstream
) -> None:
    fake = github.fake
    alice = fake.add_account("alice")
    token = await timeout(_api(reactor, github).exchange(Secret(alice)))
    headers = {name: "fake" for name in COPILOT_HEADERS}
    headers["authorization"] = token.authorization.decode()
    response, _ = await fetch(upstream.url + "/models", b"GET", headers)
    assert response.code == 200
    assert fake.account_of_request(upstream.fake.received[-1]) == "alice"
    await fetch(upstream.url + "/models", b"GET", dict(headers, authorization="Bearer nope"))
    assert fake.account_of_request(upstream.fake.received[-1]) is None
