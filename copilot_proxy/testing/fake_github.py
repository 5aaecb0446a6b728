"""
A fake GitHub on a real socket: the device flow, the Copilot token exchange
and the account calls, handing out Copilot tokens that a L{FakeUpstream}
accepts until they expire.  For tests, and for trying the login by hand::

    python -m copilot_proxy.testing.fake_github --port 9001 --copilot-port 9000

serves a fake GitHub on 9001 and a fake Copilot API on 9000 that only accepts
the tokens the fake GitHub handed out.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from .fake_upstream import FakeUpstream

GITHUB_TOKEN = "gho_fake_github_token_0001"
DEVICE_CODE = "fake-device-code"
USER_CODE = "FAKE-1234"
CLIENT_ID = "Iv1.b507a08c87ecfe98"


class _Resource(Resource):
    isLeaf = True

    def __init__(self, fake: FakeGitHub) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._fake = fake

    def render(self, request: Request) -> bytes:
        return self._fake.handle(request)


class FakeGitHub:
    """
    The fake's state: which GitHub tokens are good, how long the Copilot
    tokens it hands out live, and how the device flow goes.

    @ivar github_tokens: the GitHub tokens the exchange accepts.
    @ivar copilot: the fake Copilot API whose C{accepted} tokens this fake
        feeds, or L{None}.
    @ivar lifetime: seconds each Copilot token lives.
    @ivar refresh_in: the C{refresh_in} hint to hand out, or L{None} for none.
    @ivar api_base: the C{endpoints.api} to hand out, or L{None}.
    @ivar exchange_status: when set, every exchange gets this status.
    @ivar exchanges: the GitHub token each exchange carried, in order.
    @ivar issued: the Copilot tokens handed out, in order.
    @ivar pending_rounds: how many polls get C{authorization_pending}...
    @ivar slow_down_rounds: ...then how many get C{slow_down}...
    @ivar device_outcome: ...then this error (C{expired_token},
        C{access_denied}) or, when L{None}, the token C{grant}.
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
        self.github_tokens: set[str] = {GITHUB_TOKEN}
        self.lifetime = lifetime
        self.refresh_in = refresh_in
        self.api_base: str | None = None
        self.exchange_status: int | None = None
        self.exchanges: list[str] = []
        self.issued: list[str] = []
        self.grant = GITHUB_TOKEN
        self.device_interval = 0.05
        self.pending_rounds = 1
        self.slow_down_rounds = 1
        self.device_outcome: str | None = None
        self.polls: list[float] = []
        self.quota_remaining = 250
        self.site = Site(_Resource(self), reactor=reactor)
        self.site.noisy = False
        self.site.log = lambda request: None  # type: ignore[method-assign]

    def revoke(self, github_token: str) -> None:
        """GitHub forgets this token: exchanges with it get 401."""
        self.github_tokens.discard(github_token)

    def reject_copilot_tokens(self) -> None:
        """The Copilot API stops accepting every token handed out so far."""
        if self.copilot is not None and self.copilot.accepted is not None:
            self.copilot.accepted.clear()

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

    def _github_token(self, request: Request) -> str | None:
        value = (request.getHeader(b"authorization") or b"").decode("latin-1")
        token = value[len("token ") :] if value.startswith("token ") else None
        return token if token in self.github_tokens else None

    def _device_code(self, request: Request) -> Any:
        if self._form(request).get("client_id") != CLIENT_ID:
            return {"error": "unauthorized_client"}, 400
        base = f"http://{request.getHost().host}:{request.getHost().port}"
        return {
            "device_code": DEVICE_CODE,
            "user_code": USER_CODE,
            "verification_uri": base + "/login/device",
            "expires_in": 900,
            "interval": self.device_interval,
        }

    def _poll(self, request: Request) -> Any:
        self.polls.append(self.reactor.seconds())
        form = self._form(request)
        if form.get("device_code") != DEVICE_CODE or form.get("client_id") != CLIENT_ID:
            return {"error": "incorrect_device_code"}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
            return {"error": "unsupported_grant_type"}
        if self.pending_rounds > 0:
            self.pending_rounds -= 1
            return {"error": "authorization_pending"}
        if self.slow_down_rounds > 0:
            self.slow_down_rounds -= 1
            return {"error": "slow_down", "interval": self.device_interval + 5}
        if self.device_outcome is not None:
            return {"error": self.device_outcome}
        return {"access_token": self.grant, "token_type": "bearer", "scope": "read:user"}

    def _exchange(self, request: Request) -> Any:
        value = (request.getHeader(b"authorization") or b"").decode("latin-1")
        self.exchanges.append(value[len("token ") :])
        if self.exchange_status is not None:
            return {"message": "fake failure"}, self.exchange_status
        if self._github_token(request) is None:
            return {"message": "Bad credentials"}, 401
        expires_at = self.reactor.seconds() + self.lifetime
        token = f"tid=fake{len(self.issued) + 1};exp={int(expires_at)};sku=fake;8kp=1:" + (
            secrets.token_hex(16)
        )
        self.issued.append(token)
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
        if self.api_base is not None:
            answer["endpoints"] = {"api": self.api_base}
        return answer

    def _user(self, request: Request) -> Any:
        if self._github_token(request) is None:
            return {"message": "Bad credentials"}, 401
        return {"login": "octocat", "id": 1}

    def _copilot_user(self, request: Request) -> Any:
        if self._github_token(request) is None:
            return {"message": "Bad credentials"}, 401
        return {
            "copilot_plan": "individual",
            "access_type_sku": "free_limited_copilot",
            "quota_reset_date": "2026-12-01",
            "quota_snapshots": {
                "chat": {"unlimited": True, "quota_id": "chat"},
                "premium_interactions": {
                    "entitlement": 300,
                    "remaining": self.quota_remaining,
                    "percent_remaining": self.quota_remaining / 3,
                    "unlimited": False,
                    "quota_id": "premium_interactions",
                },
            },
        }


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
