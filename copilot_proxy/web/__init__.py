"""
The request as the proxy holds it: its own request class, the JSON answers it
makes itself, the access log line.
"""

from ._access_line import log_access
from ._answer import json_answer, respond_error
from ._request import ProxyRequest, client_label

__all__ = [
    "ProxyRequest",
    "client_label",
    "json_answer",
    "log_access",
    "respond_error",
]
