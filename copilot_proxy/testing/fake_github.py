"""
A fake GitHub on a real socket: the device flow, the Copilot token exchange
and the account calls, handing out Copilot tokens that a L{FakeUpstream}
accepts until they expire.  For tests, and for trying the login by hand::

    python -m copilot_proxy.testing.fake_github --port 9001 --copilot-port 9000

serves a fake GitHub on 9001 and a fake Copilot API on 9000 that only accepts
the tokens the fake GitHub handed out.

Several accounts
================

The fake starts with one account, C{octocat}, whose GitHub token is
L{GITHUB_TOKEN}.  L{FakeGitHub.add_account} adds more, each with its own
GitHub token, Copilot plan, quota and C{endpoints.api} (a Business seat and
an individual one reach different hosts)::

    alice = fake.add_account("alice", plan="business", api_base=business_url)
    bob = fake.add_account("bob")

C{/user} and C{/copilot_internal/user} answer for the account of the token
presented; the exchange hands out Copilot tokens whose owner
L{FakeGitHub.owner_of} tells (L{FakeGitHub.issued_to} lists them per
account, L{FakeGitHub.account_of_request} reads a request the fake upstream
received).  L{FakeGitHub.revoke} forgets one GitHub token and no other.

The device flow grants L{FakeGitHub.grant} (the default account's token)
after C{pending_rounds} and C{slow_down_rounds} polls.  Each device code
request starts a flow of its own (the first one's codes are L{DEVICE_CODE}
and L{USER_CODE}); L{FakeGitHub.approve_as} approves the oldest flow still
waiting, or the next one to start, as a chosen account, so that alice and
then bob can log in through the same fake.  With C{auto_approve} off, flows
wait (C{authorization_pending}) until approved.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from .fake_upstream import FakeUpstream, Received

GITHUB_TOKEN = "gho_fake_github_token_0001"
DEFAULT_LOGIN = "octocat"
DEVICE_CODE = "fake-device-code"
USER_CODE = "FAKE-1234"
CLIENT_ID = "Iv1.b507a08c87ecfe98"

# The access_type_sku GitHub reports with each plan.
_PLAN_SKUS = {
    "individual": "free_limited_copilot",
    "business": "copilot_for_business_seat",
    "enterprise": "copilot_enterprise_seat",
}


@dataclass
class FakeAccount:
    """
    One GitHub account of the fake.

    @ivar login: its GitHub login.
    @ivar github_token: the GitHub token it was created with (more may be
        bound to it with L{FakeGitHub.add_token}).
    @ivar plan: its C{copilot_plan}: C{individual}, C{business}...
    @ivar api_base: the C{endpoints.api} its Copilot tokens name, or L{None}
        for the fake's C{api_base}.
    @ivar quota_remaining: premium requests left, of 300.
    @ivar id: its numeric GitHub id.
    """

    login: str
    github_token: str
    plan: str = "individual"
    api_base: str | None = None
    quota_remaining: int = 250
    id: int = 1


@dataclass
class _DeviceFlow:
    device_code: str
    user_code: str
    account: str | None = None
    granted: str | None = None


class _Resource(Resource):
    isLeaf = True

    def __init__(self, fake: FakeGitHub) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._fake = fake

    def render(self, request: Request) -> bytes:
        return self._fake.handle(request)


class FakeGitHub:
    """
    The fake's state: its accounts, which GitHub tokens are good, how long
    the Copilot tokens it hands out live, and how the device flow goes.

    @ivar accounts: the accounts by login; C{octocat} is always there.
    @ivar github_tokens: the GitHub tokens the exchange accepts.  A token
        added here directly belongs to the default account.
    @ivar copilot: the fake Copilot API whose C{accepted} tokens this fake
        feeds, or L{None}.
    @ivar lifetime: seconds each Copilot token lives.
    @ivar refresh_in: the C{refresh_in} hint to hand out, or L{None} for none.
    @ivar api_base: the C{endpoints.api} to hand out (to accounts without
        one of their own), or L{None}.
    @ivar exchange_status: when set, every exchange gets this status.
    @ivar exchanges: the GitHub token each exchange carried, in order.
    @ivar issued: the Copilot tokens handed out, in order, to any account.
    @ivar grant: the GitHub token a device flow not approved as a chosen
        account grants.
    @ivar auto_approve: whether device flows are approved without
        L{approve_as} (with C{grant}); else they wait.
    @ivar pending_rounds: how many polls get C{authorization_pending}...
    @ivar slow_down_rounds: ...then how many get C{slow_down}...
    @ivar device_outcome: ...then this error (C{expired_token},
        C{access_denied}) or, when L{None}, the token of the flow's account.
    @ivar polls: the reactor time of each device poll.
    """

    def __init__(
        self,
        reactor: Any,
        copilot: FakeUpstream | None = None,
        lifetime: float = 1800.0,
        refresh_in: float | None = None,
    ) -> None:
        self.reactor = reactor
        self.copilot = copilot
        if copilot is not None and copilot.accepted is None:
            copilot.accepted = {}
        self.accounts: dict[str, FakeAccount] = {
            DEFAULT_LOGIN: FakeAccount(DEFAULT_LOGIN, GITHUB_TOKEN)
        }
        self.github_tokens: set[str] = {GITHUB_TOKEN}
        self._logins: dict[str, str] = {GITHUB_TOKEN: DEFAULT_LOGIN}
        self.lifetime = lifetime
        self.refresh_in = refresh_in
        self.api_base: str | None = None
        self.exchange_status: int | None = None
        self.exchanges: list[str] = []
        self.issued: list[str] = []
        self._owners: dict[str, str] = {}
        self.grant = GITHUB_TOKEN
        self.auto_approve = True
        self.device_interval = 0.05
        self.pending_rounds = 1
        self.slow_down_rounds = 1
        self.device_outcome: str | None = None
        self.polls: list[float] = []
        self._flows: list[_DeviceFlow] = []
        self._approvals: list[str] = []
        self.site = Site(_Resource(self), reactor=reactor)
        self.site.noisy = False
        self.site.log = lambda request: None  # type: ignore[method-assign]

    @property
    def quota_remaining(self) -> int:
        """The default account's premium requests left, of 300."""
        return self.accounts[DEFAULT_LOGIN].quota_remaining

    @quota_remaining.setter
    def quota_remaining(self, value: int) -> None:
        self.accounts[DEFAULT_LOGIN].quota_remaining = value

    # Accounts ----------------------------------------------------------

    def add_account(
        self,
        login: str,
        github_token: str | None = None,
        *,
        plan: str = "individual",
        api_base: str | None = None,
    ) -> str:
        """
        Add an account that can log in and trade its GitHub token.

        @param github_token: its GitHub token, or L{None} for a new one
            (C{gho_fake_<login>_<random>}).
        @param api_base: the C{endpoints.api} of its Copilot tokens, or
            L{None} for the fake's C{api_base}.
        @return: the account's GitHub token.
        @raise ValueError: when the login or the token is taken.
        """
        if login in self.accounts:
            raise ValueError(f"the fake already has an account {login!r}")
        token = github_token or f"gho_fake_{login}_{secrets.token_hex(8)}"
        id_ = max(account.id for account in self.accounts.values()) + 1
        self.accounts[login] = FakeAccount(login, token, plan, api_base, id=id_)
        self.add_token(login, token)
        return token

    def add_token(self, login: str, github_token: str) -> None:
        """
        Accept one more GitHub token for account C{login} (a new login of
        the same person).

        @raise ValueError: when the token belongs to another account.
        """
        owner = self._logins.setdefault(github_token, login)
        if owner != login:
            raise ValueError(f"that GitHub token belongs to {owner!r}")
        self.github_tokens.add(github_token)

    def login_of(self, github_token: str) -> str | None:
        """The account of a GitHub token the fake accepts, else L{None}."""
        if github_token not in self.github_tokens:
            return None
        return self._logins.get(github_token, DEFAULT_LOGIN)

    def revoke(self, github_token: str) -> None:
        """GitHub forgets this token (only this one): calls with it get 401."""
        self.github_tokens.discard(github_token)

    def owner_of(self, copilot_token: str | None) -> str | None:
        """The login of the account a Copilot token was issued to, if any."""
        return None if copilot_token is None else self._owners.get(copilot_token)

    def issued_to(self, login: str) -> list[str]:
        """The Copilot tokens handed out to account C{login}, in order."""
        return [token for token in self.issued if self._owners[token] == login]

    def account_of_request(self, received: Received) -> str | None:
        """
        The account whose Copilot token a request to the fake upstream
        carried, or L{None} (no token, or one this fake did not issue).
        """
        return self.owner_of(received.token)

    def reject_copilot_tokens(self) -> None:
        """The Copilot API stops accepting every token handed out so far."""
        if self.copilot is not None and self.copilot.accepted is not None:
            self.copilot.accepted.clear()

    # The device flow ---------------------------------------------------

    def approve_as(self, login: str, user_code: str | None = None) -> None:
        """
        Approve a device flow as account C{login}: the one showing
        C{user_code}, else the oldest one still waiting, else the next one
        to start.  It grants that account's token once the pending and slow
        down rounds are spent.

        @raise KeyError: for an unknown account or user code.
        """
        account = self.accounts[login]
        waiting = [flow for flow in self._flows if flow.granted is None]
        if user_code is not None:
            matching = [flow for flow in waiting if flow.user_code == user_code]
            if not matching:
                raise KeyError(f"no device flow waits with user code {user_code!r}")
            matching[0].account = account.login
            return
        unapproved = [flow for flow in waiting if flow.account is None]
        if unapproved:
            unapproved[0].account = account.login
        else:
            self._approvals.append(account.login)

    @property
    def user_codes(self) -> list[str]:
        """The user code of each device flow started, in order."""
        return [flow.user_code for flow in self._flows]

    # Answering ---------------------------------------------------------

    def handle(self, request: Request) -> bytes:
        path = request.uri.decode("latin-1").partition("?")[0].rstrip("/")
        routes: dict[tuple[bytes, str], Callable[[Request], Any]] = {
            (b"POST", "/login/device/code"): self._device_code,
            (b"POST", "/login/oauth/access_token"): self._poll,
            (b"GET", "/copilot_internal/v2/token"): self._exchange,
            (b"GET", "/copilot_internal/user"): self._copilot_user,
            (b"GET", "/user"): self._user,
        }
        route = routes.get((request.method, path))
        if route is None:
            return self._json(request, {"message": "Not Found"}, 404)
        answer = route(request)
        if isinstance(answer, tuple):
            return self._json(request, answer[0], answer[1])
        return self._json(request, answer)

    def _json(self, request: Request, obj: object, code: int = 200) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(obj).encode()

    def _form(self, request: Request) -> dict[str, Any]:
        content: Any = request.content
        content.seek(0)
        try:
            body = json.loads(content.read() or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _account(self, request: Request) -> FakeAccount | None:
        value = (request.getHeader(b"authorization") or b"").decode("latin-1")
        if not value.startswith("token "):
            return None
        login = self.login_of(value[len("token ") :])
        return None if login is None else self.accounts[login]

    def _device_code(self, request: Request) -> Any:
        if self._form(request).get("client_id") != CLIENT_ID:
            return {"error": "unauthorized_client"}, 400
        n = len(self._flows)
        flow = _DeviceFlow(
            DEVICE_CODE if n == 0 else f"{DEVICE_CODE}-{n + 1}",
            USER_CODE if n == 0 else f"FAKE-{1234 + n}",
        )
        if self._approvals:
            flow.account = self._approvals.pop(0)
        self._flows.append(flow)
        base = f"http://{request.getHost().host}:{request.getHost().port}"
        return {
            "device_code": flow.device_code,
            "user_code": flow.user_code,
            "verification_uri": base + "/login/device",
            "expires_in": 900,
            "interval": self.device_interval,
        }

    def _poll(self, request: Request) -> Any:
        self.polls.append(self.reactor.seconds())
        form = self._form(request)
        flows = [flow for flow in self._flows if flow.device_code == form.get("device_code")]
        if not flows or form.get("client_id") != CLIENT_ID:
            return {"error": "incorrect_device_code"}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
            return {"error": "unsupported_grant_type"}
        flow = flows[0]
        if flow.granted is None:
            if self.pending_rounds > 0 or (flow.account is None and not self.auto_approve):
                self.pending_rounds = max(self.pending_rounds - 1, 0)
                return {"error": "authorization_pending"}
            if self.slow_down_rounds > 0:
                self.slow_down_rounds -= 1
                return {"error": "slow_down", "interval": self.device_interval + 5}
            if self.device_outcome is not None:
                return {"error": self.device_outcome}
            if flow.account is None:
                flow.granted = self.grant
            else:
                flow.granted = self.accounts[flow.account].github_token
        return {"access_token": flow.granted, "token_type": "bearer", "scope": "read:user"}

    def _exchange(self, request: Request) -> Any:
        value = (request.getHeader(b"authorization") or b"").decode("latin-1")
        self.exchanges.append(value[len("token ") :])
        if self.exchange_status is not None:
            return {"message": "fake failure"}, self.exchange_status
        account = self._account(request)
        if account is None:
            return {"message": "Bad credentials"}, 401
        expires_at = self.reactor.seconds() + self.lifetime
        token = f"tid=fake{len(self.issued) + 1};exp={int(expires_at)};sku=fake;8kp=1:" + (
            secrets.token_hex(16)
        )
        self.issued.append(token)
        self._owners[token] = account.login
        if self.copilot is not None and self.copilot.accepted is not None:
            self.copilot.accepted[token] = expires_at
        answer: dict[str, Any] = {
            "token": token,
            "expires_at": expires_at,
            "chat_enabled": True,
            "sku": "fake",
        }
        if self.refresh_in is not None:
            answer["refresh_in"] = self.refresh_in
        api_base = account.api_base if account.api_base is not None else self.api_base
        if api_base is not None:
            answer["endpoints"] = {"api": api_base}
        return answer

    def _user(self, request: Request) -> Any:
        account = self._account(request)
        if account is None:
            return {"message": "Bad credentials"}, 401
        return {"login": account.login, "id": account.id}

    def _copilot_user(self, request: Request) -> Any:
        account = self._account(request)
        if account is None:
            return {"message": "Bad credentials"}, 401
        answer: dict[str, Any] = {
            "login": account.login,
            "copilot_plan": account.plan,
            "quota_reset_date": "2026-12-01",
            "quota_snapshots": {
                "chat": {"unlimited": True, "quota_id": "chat"},
                "premium_interactions": {
                    "entitlement": 300,
                    "remaining": account.quota_remaining,
                    "percent_remaining": account.quota_remaining / 3,
                    "unlimited": False,
                    "quota_id": "premium_interactions",
                },
            },
        }
        sku = _PLAN_SKUS.get(account.plan)
        if sku is not None:
            answer["access_type_sku"] = sku
        return answer


def main(argv: list[str] | None = None) -> None:
    """Run a fake GitHub and a fake Copilot API that trusts it."""
    import argparse

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    parser = argparse.ArgumentParser(description="A fake GitHub for trying copilot-proxy.")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--copilot-port", type=int, default=9000)
    parser.add_argument("--lifetime", type=float, default=1800.0)
    args = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    tcp: Any = reactor
    copilot = FakeUpstream(reactor, require_token=None)
    github = FakeGitHub(reactor, copilot, lifetime=args.lifetime)
    github.api_base = f"http://127.0.0.1:{args.copilot_port}"
    tcp.listenTCP(args.copilot_port, copilot.site, interface="127.0.0.1")
    tcp.listenTCP(args.port, github.site, interface="127.0.0.1")
    print(
        f"fake GitHub on http://127.0.0.1:{args.port}, "
        f"fake Copilot API on http://127.0.0.1:{args.copilot_port}",
        file=sys.stderr,
    )
    tcp.run()


if __name__ == "__main__":
    main()
