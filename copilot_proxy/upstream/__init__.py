"""
How the proxy reaches the Copilot API: the HTTP agent and its pool, CONNECT
tunnels through a forward proxy.
"""

from ._agent import Upstream, _BufferedBody, _EndpointPerOrigin
from ._tunnel import ProxiedEndpoints

__all__ = [
    "ProxiedEndpoints",
    "Upstream",
    "_BufferedBody",
    "_EndpointPerOrigin",
]
