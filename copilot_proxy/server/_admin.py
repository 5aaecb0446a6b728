"""
The proxy's own pages, answered by the proxy and never forwarded: health for
load balancers and init systems, metrics for Prometheus, usage, and the
status page for people.

They live under one prefix (C{--admin-prefix}, default C{/_proxy/}) that no
Copilot API path uses, so they cannot shadow an upstream path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from .._version import __version__
from ..access import KeyStore, check_client_key, presented_keys
from ..metrics import CONTENT_TYPE, ProxyMetrics, QuotaBoard
from ..relay import InFlight, RecentErrors
from ..shared import DEFAULT_USAGE_DAYS, SharedState
from ..tokens import TokenSource
from ..wire import openai_error
from ._seat_login import SeatLogins
from ._status_page import StatusPage

DEFAULT_PREFIX = b"/_proxy/"


class AdminPages:
    """
    Renders C{<prefix>healthz}, C{<prefix>metrics}, C{<prefix>usage} and the
    status page (C{<prefix>}, its files and C{<prefix>status.json}); anything
    else under the prefix is a 404.

    @ivar prefix: the path prefix, starting and ending with C{/}.
    """

    def __init__(
        self,
        prefix: bytes,
        reactor: IReactorTime,
        upstream: Callable[[], bytes],
        tokens: TokenSource,
        in_flight: Callable[[], int],
        metrics: ProxyMetrics,
        keys: KeyStore | None = None,
        quota: QuotaBoard | None = None,
        shared: SharedState | None = None,
        *,
        exchanges: InFlight | None = None,
        recent: RecentErrors | None = None,
        several: bool = False,
    ) -> None:
        """
        @param upstream: the upstream base URL in use now (it follows the API
            host a Copilot token names).
        @param keys: the client keys; when any are configured, every page but
            health requires one (health stays open for load balancers and
            init systems, and shows nothing secret).
        @param quota: the upstream's quotas as its answers showed them, for
            the health document's C{upstream_quota} (empty without a board).
        @param shared: Redis and the usage ledger, for health's
            C{shared_state} and the C{usage} page.
        @param exchanges: the exchanges in flight, listed on the status page.
        @param recent: the last errors and refusals, for the status page.
        @param several: whether this process is one of several (C{--workers}):
            the status page says whose in-flight requests and errors it shows.
        """
        self.prefix = prefix
        self._keys = keys
        self._reactor = reactor
        self._started = reactor.seconds()
        self._upstream = upstream
        self._tokens = tokens
        self._in_flight = in_flight
        self._metrics = metrics
        self._quota = quota
        self._shared = shared
        self._status = StatusPage(reactor, self.health, keys, shared, exchanges, recent, several)
        #: The self-service seat logins, when the proxy holds seats.
        self.seat_logins: SeatLogins | None = None

    def handles(self, uri: bytes) -> bool:
        """Whether a request target is one of ours, whatever its method."""
        return uri.startswith(self.prefix)

    def health(self) -> tuple[int, dict[str, object]]:
        """
        The health document and its status: 200, or 503 when the token source
        says it has no usable token (requests would fail until it does).

        C{upstream_quota} is what this process's latest upstream answers said
        of each quota (see L{QuotaBoard.document}); with C{--workers} it is
        the answering process's view, which may lag behind another's.
        """
        usable = self._tokens.usable
        expires_in = self._tokens.expires_in()
        now = self._reactor.seconds()
        quota = {} if self._quota is None else self._quota.document(now)
        document: dict[str, object] = {
            "status": "ok" if usable else "token_unavailable",
            "version": __version__,
            "uptime_s": round(now - self._started, 3),
            # With --workers, which process answered.
            "pid": os.getpid(),
            "in_flight": self._in_flight(),
            "upstream": self._upstream().decode("ascii"),
            "token": {
                "source": self._tokens.source.value,
                "expires_in_s": None if expires_in is None else round(expires_in, 1),
            },
            "upstream_quota": quota,
        }
        if self._shared is not None:
            document["shared_state"] = self._shared.health()
        return (200 if usable else 503), document

    def render(self, request: Request) -> bytes | int:
        """Answer a request whose target starts with the prefix."""
        name = request.uri[len(self.prefix) :].partition(b"?")[0]
        request.responseHeaders.removeHeader(b"server")
        request.setHeader(b"cache-control", b"no-store")
        if name in (b"seat", b"seat/login"):
            return self._seat(request, name)
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            return self._json_error(
                request, "the proxy's own pages only answer GET", "method_not_allowed"
            )
        page = self._status.serve_file(request, name)
        if page is not None:
            return page
        if name == b"healthz":
            code, document = self.health()
            request.setResponseCode(code)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(document).encode("utf-8")
        if name != b"healthz" and not self._key_accepted(request):
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", b'Bearer realm="copilot-proxy"')
            return self._json_error(
                request,
                "a valid client key is required: send it as 'Authorization: Bearer <key>'",
                "invalid_api_key",
            )
        if name == b"metrics":
            request.setHeader(b"content-type", CONTENT_TYPE.encode("ascii"))
            return self._metrics.exposition()
        if name == b"usage":
            return self._usage(request)
        if name == b"status.json":
            return self._status.status(request)
        request.setResponseCode(404)
        prefix = self.prefix.decode("ascii")
        return self._json_error(
            request,
            f"no such page; the proxy serves {prefix} (the status page), {prefix}healthz, "
            f"{prefix}metrics and {prefix}usage",
            "not_found",
        )

    def _usage(self, request: Request) -> bytes | int:
        """
        C{usage?days=N&key=NAME}: the usage ledger's document.  A client key
        sees its own usage only; a key marked C{admin}, or anyone when the
        proxy has no keys, sees every key's.
        """
        request.setHeader(b"content-type", b"application/json")
        ledger = self._shared.ledger if self._shared is not None else None
        if ledger is None:
            request.setResponseCode(404)
            return self._json_error(request, "this proxy keeps no usage ledger", "not_found")
        args: Any = request.args or {}
        try:
            days = int(args.get(b"days", [b"%d" % DEFAULT_USAGE_DAYS])[-1])
            if not 1 <= days <= 400:
                raise ValueError(days)
        except ValueError:
            request.setResponseCode(400)
            return self._json_error(
                request, "days must be a whole number from 1 to 400", "invalid_request"
            )
        wanted = args.get(b"key", [None])[-1]
        key = wanted.decode("utf-8", "replace") if wanted is not None else None
        check = check_client_key(self._keys, request.requestHeaders)
        if check.name is not None and not check.settings.admin:
            if key is not None and key != check.name:
                request.setResponseCode(403)
                return self._json_error(
                    request,
                    "a client key sees its own usage only; a key marked admin sees all",
                    "forbidden",
                )
            key = check.name
        d = ledger.usage(days, key)

        def send(document: dict[str, Any]) -> None:
            if request.channel is not None:
                request.write(json.dumps(document).encode("utf-8"))
                request.finish()

        def failed(failure: Failure) -> None:
            if request.channel is not None:
                request.setResponseCode(503)
                request.write(
                    self._json_error(
                        request,
                        f"the usage ledger cannot be read now ({failure.getErrorMessage()})",
                        "ledger_unavailable",
                    )
                )
                request.finish()

        d.addCallbacks(send, failed)
        return NOT_DONE_YET

    def _seat(self, request: Request, name: bytes) -> bytes | int:
        """
        C{POST seat/login}: start the device flow of the seat the client key
        is bound to; C{GET seat}: where that login stands.
        """
        request.setHeader(b"content-type", b"application/json")
        wanted = b"POST" if name == b"seat/login" else b"GET"
        if request.method != wanted:
            request.setResponseCode(405)
            request.setHeader(b"allow", wanted)
            return self._json_error(request, f"use {wanted.decode()} here", "method_not_allowed")
        check = check_client_key(self._keys, request.requestHeaders)
        if check.name is None:
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", b'Bearer realm="copilot-proxy"')
            return self._json_error(
                request,
                "a client key bound to a seat is required: send it as "
                "'Authorization: Bearer <key>'",
                "invalid_api_key",
            )
        seat = check.settings.seat
        logins = self.seat_logins
        if seat is None or logins is None:
            request.setResponseCode(400)
            return self._json_error(
                request,
                f"key {check.name} is bound to no seat: add seat=NAME to its line in the "
                "keys file",
                "no_seat",
            )
        if name == b"seat":
            return json.dumps(logins.state(seat)).encode("utf-8")

        def started(answer: dict[str, Any]) -> None:
            if request.channel is not None:
                request.write(json.dumps(answer).encode("utf-8"))
                request.finish()

        def failed(failure: Failure) -> None:
            if request.channel is not None:
                request.setResponseCode(502)
                request.write(
                    self._json_error(
                        request,
                        f"GitHub did not start the login: {failure.getErrorMessage()[:200]}",
                        "github_unavailable",
                    )
                )
                request.finish()

        logins.start(seat).addCallbacks(started, failed)
        return NOT_DONE_YET

    def _key_accepted(self, request: Request) -> bool:
        if self._keys is None or not len(self._keys):
            return True
        return self._keys.identify(presented_keys(request.requestHeaders)) is not None

    def _json_error(self, request: Request, message: str, code: str) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return openai_error(message, "invalid_request_error", code)
