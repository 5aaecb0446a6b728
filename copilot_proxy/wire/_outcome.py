"""
How an exchange ended: the closed set the access log and the metrics report.
"""

from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    """
    The end of one request, as the access log and the metrics name it.

    A C{str} enum, so that the value is the word written to logs and labels.
    """

    #: The whole answer reached the client.
    COMPLETE = "complete"
    #: The client went away before the answer was complete.
    CLIENT_GONE = "client_gone"
    #: The upstream failed, before or during the answer.
    UPSTREAM_ERROR = "upstream_error"
    #: The upstream went silent for longer than the idle timeout.
    TIMEOUT = "timeout"
    #: Cut when the shutdown grace period ran out.
    SHUTDOWN = "shutdown"
    #: Answered by the proxy itself with an error, nothing sent upstream.
    REFUSED = "refused"
    #: Answered from the response cache.
    CACHED = "cached"

    def __str__(self) -> str:
        return self.value
