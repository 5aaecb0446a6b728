"""
What the client is told when an exchange fails before the upstream answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import CancelledError
from twisted.internet.error import TimeoutError as ConnectTimeoutError
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from ..tokens import TokenUnavailable
from ..wire import Outcome
from ._context import RefuseRequest


@dataclass(frozen=True)
class ErrorAnswer:
    """An error the proxy answers itself, and how the exchange ended."""

    status: int
    message: str
    code: str
    outcome: Outcome
    retry_after: int | None = None


def describe(failure: Failure) -> str:
    """A short, secret-free reason for an upstream failure."""
    value = failure.value
    if isinstance(value, (ResponseNeverReceived, ResponseFailed)) and value.reasons:
        return describe(value.reasons[0])
    text = str(value).strip() or type(value).__name__
    return text.splitlines()[0][:200]


def answer_for(failure: Failure, timed_out: float | None) -> ErrorAnswer | None:
    """
    The answer to a request that failed before any response headers came
    back, or L{None} when it was cancelled (the client left or the proxy cut
    it: nothing to answer).

    @param timed_out: the idle timeout, if the watchdog gave up on it.
    """
    if failure.check(TokenUnavailable):
        return ErrorAnswer(503, str(failure.value), "token_unavailable", Outcome.REFUSED)
    if failure.check(RefuseRequest):
        refused: RefuseRequest = failure.value  # type: ignore[assignment]
        return ErrorAnswer(
            refused.status, refused.message, refused.code, Outcome.REFUSED, refused.retry_after
        )
    if timed_out is not None or failure.check(ConnectTimeoutError):
        what = f"within {timed_out:g} s" if timed_out else "in time"
        return ErrorAnswer(
            504, f"the upstream did not answer {what}", "upstream_timeout", Outcome.TIMEOUT
        )
    if failure.check(CancelledError):
        return None
    return ErrorAnswer(
        502,
        f"the upstream is unreachable: {describe(failure)}",
        "upstream_unreachable",
        Outcome.UPSTREAM_ERROR,
    )
