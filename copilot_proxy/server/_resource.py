"""
The web resource every request lands on: it checks the request target, serves
the proxy's own pages, lets the access gate decide who gets through, and
hands the request to the relay its surface makes.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..access import AccessGate
from ..relay import Relay
from ..web import ProxyRequest, respond_error
from ..wire import target_problem
from ._admin import AdminPages


class ProxyResource(Resource):
    """
    Forwards every method and every path upstream.

    Only origin-form targets (C{/path?query}) that stay under the upstream
    base are accepted: an absolute-form target (C{GET http://elsewhere/}) or
    C{CONNECT} would make this a forward proxy, which it never is, and see
    L{target_problem} for paths.  Nothing refused here reaches the upstream.
    """

    isLeaf = True

    def __init__(
        self,
        make_relay: Callable[[ProxyRequest], Relay],
        admin: AdminPages | None = None,
        gate: AccessGate | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._make_relay = make_relay
        self._admin = admin
        self._gate = gate

    def render(self, request: ProxyRequest) -> bytes | int:
        # No invented Content-Type: an upstream answer without one stays so.
        request.defaultContentType = None
        problem = target_problem(request.method, request.uri)
        if problem is not None:
            code, message = problem
            return respond_error(request, 400, message, "invalid_request_error", code)
        if self._admin is not None and self._admin.handles(request.uri):
            return self._admin.render(request)
        if self._gate is None:
            self._forward(request)
            return NOT_DONE_YET
        return self._gate.admit(request, self._forward)

    def _forward(self, request: ProxyRequest) -> None:
        self._make_relay(request).start()
