"""
One request's trip upstream and back: the exchange, the body sinks, the
watchdog, the requests in flight.
"""

from ._budget import BodyBudget
from ._context import RefuseRequest, RelayContext, RelayOptions, UpstreamCall
from ._exchange import Exchange
from ._holds import UpstreamHolds
from ._inflight import InFlight, Relay
from ._recent import RECENT_ERRORS, RecentError, RecentErrors
from ._record import NO_MODEL, count_usage, record_end
from ._sinks import BodySink, Collect, Translate
from ._strategy import PASSTHROUGH, OpenAIPassthrough, RelayStrategy, default_sink

__all__ = [
    "NO_MODEL",
    "PASSTHROUGH",
    "RECENT_ERRORS",
    "BodyBudget",
    "BodySink",
    "Collect",
    "Exchange",
    "InFlight",
    "OpenAIPassthrough",
    "RecentError",
    "RecentErrors",
    "RefuseRequest",
    "Relay",
    "RelayContext",
    "RelayOptions",
    "RelayStrategy",
    "Translate",
    "UpstreamCall",
    "UpstreamHolds",
    "count_usage",
    "default_sink",
    "record_end",
]
