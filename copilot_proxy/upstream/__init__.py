"""
How the proxy reaches the Copilot API: the HTTP agent and its pool, CONNECT
tunnels through a forward proxy.
"""

from ._agent import BufferedBody, QuietPool, Upstream
from ._endpoints import EndpointPerOrigin
from ._honest_client import HonestClientProtocol

__all__ = [
    "BufferedBody",
    "EndpointPerOrigin",
    "HonestClientProtocol",
    "QuietPool",
    "Upstream",
]
