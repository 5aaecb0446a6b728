"""
The web resource every request lands on: it checks the request target and
hands the request to an L{UpstreamRelay}.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ._admin import AdminPages
from ._errors import openai_error
from ._relay import UpstreamRelay


class ProxyResource(Resource):
    """
    Forwards every method and every path upstream.

    Only origin-form targets (C{/path?query}) are accepted: an absolute-form
    target (C{GET http://elsewhere/}) or C{CONNECT} would make this a forward
    proxy, which it never is.
    """

    isLeaf = True

    def __init__(
        self,
        make_relay: Callable[[Request], UpstreamRelay],
        admin: AdminPages | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._make_relay = make_relay
        self._admin = admin

    def render(self, request: Request) -> bytes | int:
        # No invented Content-Type: an upstream answer without one stays so.
        request.defaultContentType = None
        if request.method == b"CONNECT" or not request.uri.startswith(b"/"):
            request.setResponseCode(400)
            request.responseHeaders.removeHeader(b"server")
            request.setHeader(b"content-type", b"application/json")
            return openai_error(
                "this proxy only serves origin-form requests such as POST /chat/completions",
                "invalid_request_error",
                "not_a_forward_proxy",
            )
        if self._admin is not None and self._admin.handles(request.uri):
            return self._admin.render(request)
        self._make_relay(request).start()
        return NOT_DONE_YET
