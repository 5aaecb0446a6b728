"""
One request's trip upstream and back: the exchange, the body sinks, the
watchdog, the requests in flight.
"""

from ._exchange import (
    CLIENT_KEY_ATTRIBUTE,
    COMPLETE,
    InFlight,
    REFUSED,
    RefuseRequest,
    RelayOptions,
    UpstreamRelay,
    _path_for_log,
    relay_factory,
    upstream_error_text,
)

__all__ = [
    "CLIENT_KEY_ATTRIBUTE",
    "COMPLETE",
    "InFlight",
    "REFUSED",
    "RefuseRequest",
    "RelayOptions",
    "UpstreamRelay",
    "_path_for_log",
    "relay_factory",
    "upstream_error_text",
]
