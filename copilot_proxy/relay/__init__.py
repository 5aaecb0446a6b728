"""
One request's trip upstream and back: the exchange, the body sinks, the
watchdog, the requests in flight.
"""

from ._budget import BodyBudget
from ._context import RefuseRequest, RelayContext, RelayOptions, UpstreamCall
from ._exchange import Exchange
from ._holds import UpstreamHolds
from ._inflight import InFlight, Relay
from ._record import record_end
from ._sinks import BodySink, Collect, Translate
from ._strategy import PASSTHROUGH, OpenAIPassthrough, RelayStrategy, default_sink

__all__ = [
    "PASSTHROUGH",
    "BodyBudget",
    "BodySink",
    "Collect",
    "Exchange",
    "InFlight",
    "OpenAIPassthrough",
    "RefuseRequest",
    "Relay",
    "RelayContext",
    "RelayOptions",
    "RelayStrategy",
    "Translate",
    "UpstreamCall",
    "UpstreamHolds",
    "default_sink",
    "record_end",
]
