"""Small clients and waits for end-to-end tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from copilot_proxy.access import AccessConfig
from copilot_proxy.app import build_proxy
from copilot_proxy.server import ProxyService
from copilot_proxy.settings import ProxyConfig, upstream_base
from copilot_proxy.shared import SharedState
from copilot_proxy.testing.fake_github import FakeGitHub
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN, FakeUpstream, Received
from copilot_proxy.tokens import StaticToken
from copilot_proxy.upstream import BufferedBody
from copilot_proxy.wire import Secret


@dataclass
class Upstream:
    fake: FakeUpstream
    url: str


@dataclass
class GitHub:
    fake: FakeGitHub
    url: str
    port: Any


@dataclass
class Proxy:
    service: ProxyService
    url: str
    shared: SharedState | None = None


class Collector(Protocol):
    """Collects a response body, noting when the first chunk came."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.first: Deferred[bytes] = Deferred()
        self.done: Deferred[None] = Deferred()
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        if not self.first.called:
            self.first.callback(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self.reason = reason
        self.done.callback(None)

    @property
    def complete(self) -> bool:
        """The body arrived whole, properly framed."""
        return self.reason is not None and self.reason.check(ResponseDone) is not None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def port_number(port: IListeningPort) -> int:
    """The number of a port listening on TCP (plain or TLS)."""
    address = port.getHost()
    assert isinstance(address, IPv4Address), address
    return address.port


async def stop_listening(port: IListeningPort) -> None:
    """Stop a port listening and wait until it has."""
    stopped = port.stopListening()
    if stopped is not None:
        await stopped


def timeout(d: Deferred[Any], seconds: float = 5.0) -> Deferred[Any]:
    return d.addTimeout(seconds, reactor)


async def send(
    url: str,
    method: bytes = b"GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[IResponse, Collector]:
    """Send one request on a fresh connection; returns before the body is read."""
    agent = Agent(reactor)
    raw = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
    producer = BufferedBody(body) if body is not None else None
    response: IResponse = await timeout(agent.request(method, url.encode(), raw, producer))
    collector = Collector()
    response.deliverBody(collector)
    return response, collector


async def fetch(
    url: str,
    method: bytes = b"GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[IResponse, bytes]:
    """Send one request and read the whole answer, which must complete."""
    response, collector = await send(url, method, headers, body)
    await timeout(collector.done)
    assert collector.complete, collector.reason
    return response, collector.body


def stream_request(**shape: Any) -> tuple[dict[str, str], bytes]:
    """Headers and body of a streaming chat request shaped by the fake's headers."""
    headers = {"content-type": "application/json"}
    headers.update({f"x-fake-{k}": str(v) for k, v in shape.items()})
    body = json.dumps(
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    return headers, body


async def until(predicate: Any, seconds: float = 5.0, step: float = 0.01) -> None:
    """Wait for a condition that has no event of its own to wait on."""
    waited = 0.0
    while not predicate():
        if waited > seconds:
            raise AssertionError("condition not reached in time")
        await deferLater(reactor, step, lambda: None)
        waited += step


def client_requests(fake: FakeUpstream) -> list[Received]:
    """
    What the fake received on behalf of clients: without the proxy's own
    C{GET /models}, which routing fetches once in a while (it says
    C{x-interaction-type: model-access}).
    """
    return [r for r in fake.received if r.header("x-interaction-type") != "model-access"]


def start_proxy(
    reactor: Any,
    upstream_url: str,
    token: str = ACCEPTED_TOKEN,
    access: AccessConfig | None = None,
    shared: SharedState | None = None,
    **settings: Any,
) -> Proxy:
    """
    A proxy in this process in front of C{upstream_url}; with C{shared}
    (Redis, the usage ledger) started first, as the daemon does.
    """
    config = ProxyConfig(
        listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(upstream_url), **settings
    )
    if shared is not None and not shared.running:
        shared.startService()
    service: ProxyService = build_proxy(
        reactor, config, StaticToken(Secret(token)), access, shared=shared
    )
    service.startService()  # type: ignore[no-untyped-call]
    return Proxy(service, f"http://127.0.0.1:{port_number(service.port)}", shared)


async def stop_proxy(proxy: Proxy) -> None:
    """Stop a proxy of L{start_proxy}, then its shared state (its last counts flushed)."""
    if proxy.service.running:
        await proxy.service.stopService()
    if proxy.shared is not None and proxy.shared.running:
        await proxy.shared.stopService()
