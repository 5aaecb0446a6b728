"""
What every exchange of one proxy shares, and what one exchange sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from ..metrics import ProxyMetrics, QuotaBoard
from ..shared import Ledger
from ..tokens import SeatPool, TokenSource
from ..wire import BodyFacts, CopilotHeaders
from ._budget import BodyBudget
from ._holds import UpstreamHolds
from ._inflight import InFlight
from ._recent import RecentErrors


class UpstreamClient(Protocol):
    """What an exchange needs of the upstream: one request at a time."""

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        base: bytes | None = None,
    ) -> Deferred[IResponse]:
        """Send C{method} to C{target} under the upstream base."""


@dataclass(frozen=True)
class RelayOptions:
    """
    Per-proxy settings of the request and response shaping.

    @ivar copilot: the Copilot request headers to add.
    @ivar sse_keepalive: seconds without upstream bytes after which an event
        stream gets a keep-alive comment, or L{None} for never.
    """

    copilot: CopilotHeaders = field(default_factory=CopilotHeaders)
    sse_keepalive: float | None = 15.0


@dataclass(frozen=True)
class RelayContext:
    """
    The parts of one proxy that every exchange uses, handed to each one.

    @ivar upstream: the HTTP client of the Copilot API.
    @ivar tokens: where the C{Authorization} of each request comes from.
    @ivar reactor: the clock of timeouts and keep-alives.
    @ivar idle_timeout: seconds without an upstream byte before giving up.
    @ivar inflight: the exchanges not ended yet, for a graceful stop.
    @ivar metrics: where exchanges are counted, or L{None}.
    @ivar options: request and response shaping.
    @ivar budget: the request-body memory all exchanges may hold at once.
    @ivar quota: where the quota headers of upstream answers are kept, or
        L{None} to ignore them.
    @ivar ledger: where each exchange's usage is counted, or L{None}.
    @ivar holds: the upstream's announced waits, or L{None} to ignore them.
    @ivar seats: the seats keys may be bound to, or L{None} for none: every
        request then uses C{tokens}.
    """

    upstream: UpstreamClient
    tokens: TokenSource
    reactor: IReactorTime
    idle_timeout: float
    inflight: InFlight
    metrics: ProxyMetrics | None = None
    options: RelayOptions = field(default_factory=RelayOptions)
    budget: BodyBudget = field(default_factory=BodyBudget)
    quota: QuotaBoard | None = None
    ledger: Ledger | None = None
    holds: UpstreamHolds | None = None
    recent: RecentErrors | None = None
    seats: SeatPool | None = None


@dataclass(frozen=True)
class UpstreamCall:
    """
    The request to send upstream, decided once per exchange (a replay after
    a 401 sends the same call with a fresher token).

    @ivar target: the origin-form target (path and query) under the base.
    @ivar body: the body bytes to send.
    @ivar facts: what the Copilot headers need of the client's body (the
        parsed body itself is not kept).
    @ivar served: the model the upstream was asked for, when the proxy
        chose another name (a map, a newer alias): what the usage ledger
        counts, since it is what the upstream bills.
    @ivar model: the model the client asked for, for the log (checked to
        look like a model id), or L{None}.
    """

    target: bytes
    body: bytes
    facts: BodyFacts
    model: str | None
    served: str | None = None


class RefuseRequest(Exception):
    """
    Raised while preparing the upstream request: answer the client with this
    error instead of sending anything upstream.
    """

    def __init__(
        self, status: int, message: str, code: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after
