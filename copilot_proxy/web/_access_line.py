"""
The access log: one line per request, however it ended, written here only.

The line holds no secret and no query value: the path keeps its parameter
names, the client key is its name, the model is checked to look like one.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.web.server import Request

from ..wire import Outcome, new_request_id, path_for_log
from ._request import ProxyRequest

_log = Logger(namespace="copilot_proxy.access")


def log_access(
    request: Request,
    outcome: Outcome,
    *,
    status: int | None = None,
    sent: int | None = None,
    received: int = 0,
    ttfb: float | None = None,
    duration: float = 0.0,
    model: str | None = None,
) -> None:
    """
    Write the access line of C{request}.

    @param status: the status answered, when not yet on C{request.code}.
    @param sent: the body bytes sent, when not C{request.sentLength}.
    @param received: the request body bytes read.
    @param ttfb: seconds to the upstream's first byte, or L{None}.
    @param duration: seconds from start to end.
    @param model: the model asked for (already checked by C{safe_model}).
    """
    if isinstance(request, ProxyRequest):
        client_key, request_id = request.client_key, request.request_id
    else:
        client_key, request_id = None, new_request_id()
    ttfb_s = None if ttfb is None else round(ttfb, 6)
    _log.info(
        "{method} {path} {status} {bytes}B ttfb={ttfb} {duration:.3f}s {outcome}"
        " model={model} key={client_key} id={request_id}",
        method=request.method.decode("ascii", "replace"),
        path=path_for_log(request.uri),
        status=request.code if status is None else status,
        bytes=request.sentLength if sent is None else sent,
        bytes_in=received,
        ttfb="-" if ttfb_s is None else f"{ttfb_s:.3f}",
        ttfb_s=ttfb_s,
        duration=duration,
        outcome=outcome.value,
        model=model or "-",
        client_key=client_key or "-",
        request_id=request_id,
    )
