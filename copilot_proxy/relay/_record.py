"""
The end of an exchange, counted, logged and entered in the usage ledger in
one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.server import Request

from ..metrics import ProxyMetrics
from ..shared import Ledger, seat_label
from ..translate import UsageCounts
from ..web import log_access
from ..wire import Outcome

if TYPE_CHECKING:
    from ._recent import RecentErrors

#: The model a request is counted under when none is known.
NO_MODEL = "-"


def record_end(
    request: Request,
    outcome: Outcome,
    metrics: ProxyMetrics | None,
    *,
    received: int,
    duration: float,
    ttfb: float | None = None,
    model: str | None = None,
    recent: RecentErrors | None = None,
    cause: str | None = None,
) -> None:
    """
    Count the ended exchange of C{request} in C{metrics}, note it in
    C{recent} if it went wrong, and write its access line.

    @param received: the request body bytes read.
    @param duration: seconds from start to end.
    @param ttfb: seconds to the upstream's first byte, if it came.
    @param model: the model asked for, checked to look like a model id.
    @param recent: the status page's last errors and refusals, or L{None}.
    @param cause: the error code of the proxy's own answer, if it made one.
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
    if recent is not None:
        recent.ended(request, outcome, model, cause)
    log_access(request, outcome, received=received, ttfb=ttfb, duration=duration, model=model)


def count_usage(
    ledger: Ledger,
    who: str,
    model: str | None,
    outcome: Outcome,
    status: int | None,
    *,
    sent: bool,
    usage: UsageCounts | None,
    seat: str | None = None,
) -> None:
    """
    Enter an ended exchange in the usage ledger: a request the upstream
    answered (with the usage its answer carried), or an error of one that
    went upstream and failed (no answer, cut, timed out, or a 5xx).  One
    never sent counts nothing here (the gate counts its refusals).

    @param status: the upstream's status, if it answered.
    @param sent: whether the request went upstream.
    @param seat: the seat the request used, counted too (beside the key).
    """
    failed = outcome in (Outcome.UPSTREAM_ERROR, Outcome.TIMEOUT)
    if status is None and not (failed and sent):
        return
    counts: dict[str, int] = {}
    if failed or (status is not None and status >= 500):
        counts["errors"] = 1
    else:
        counts["requests"] = 1
    if usage is not None:
        counts.update(
            input_tokens=usage.input_tokens,
            cached_tokens=usage.cached_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            nano_aiu=usage.nano_aiu,
        )
    ledger.count(who, model or NO_MODEL, **counts)
    if seat is not None:
        ledger.count(seat_label(seat), model or NO_MODEL, **counts)
