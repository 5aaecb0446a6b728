"""
The end of an exchange, counted and logged in one place.
"""

from __future__ import annotations

from twisted.web.server import Request

from ..metrics import ProxyMetrics
from ..web import log_access
from ..wire import Outcome


def record_end(
    request: Request,
    outcome: Outcome,
    metrics: ProxyMetrics | None,
    *,
    received: int,
    duration: float,
    ttfb: float | None = None,
    model: str | None = None,
) -> None:
    """
    Count the ended exchange of C{request} in C{metrics} and write its
    access line.

    @param received: the request body bytes read.
    @param duration: seconds from start to end.
    @param ttfb: seconds to the upstream's first byte, if it came.
    @param model: the model asked for, checked to look like a model id.
    """
    if metrics is not None:
        metrics.ended(
            request.method,
            request.uri,
            request.code,
            outcome,
            received,
            request.sentLength,
            duration,
        )
    log_access(request, outcome, received=received, ttfb=ttfb, duration=duration, model=model)
