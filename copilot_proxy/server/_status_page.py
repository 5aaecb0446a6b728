"""
The status page at C{<prefix>} (default C{/_proxy/}): one HTML page, its
stylesheet and script, shipped in the package (C{page/}), and the JSON
document it polls, C{<prefix>status.json}.

The page's files are not secret and are served to anyone (a browser loads
a script or stylesheet without the C{Authorization} header); the document
needs a client key when keys are configured, and shows what
C{<prefix>usage} would: a client key sees its own requests only, a key
marked C{admin} (or anyone on a proxy without keys) every key's.

The page polls instead of holding an event stream open: a poll is one
short request that every load balancer and corporate proxy passes as it
is, needs no long-lived connection (which would count as in flight, hold
a connection slot and be cut by idle timeouts), and with C{--workers} or
several hosts each poll may be answered by another process without
breaking anything; a few seconds of delay is what a person watching needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import NOT_DONE_YET, Request

from ..access import KeyStore, check_client_key
from ..relay import InFlight, RecentErrors
from ..shared import SharedState
from ..wire import openai_error

#: The page's files by the name they are served under, with their type.
PAGE_FILES: dict[bytes, tuple[str, bytes]] = {
    b"": ("index.html", b"text/html; charset=utf-8"),
    b"status.css": ("status.css", b"text/css; charset=utf-8"),
    b"status.js": ("status.js", b"text/javascript; charset=utf-8"),
}

#: What the page may load and do: its own script, stylesheet and JSON
#: document, no inline code, nothing from another origin, no forms sent,
#: no framing (the page holds a client key in its session storage).
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: The usage the document shows when C{?days=} is not given.
STATUS_USAGE_DAYS = 7


@cache
def page_file(name: str) -> bytes:
    """The bytes of one of the page's files, read once from the package."""
    return (files(__name__.rpartition(".")[0]) / "page" / name).read_bytes()


def secure_page(request: Request) -> None:
    """The headers of every answer of the page: a strict policy, no sniffing, no referrer."""
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")


class StatusPage:
    """
    The status page's files and its JSON document.

    @param health: the health document and its status (L{AdminPages.health}),
        which the document starts from.
    @param exchanges: the exchanges in flight in this process, or L{None}.
    @param recent: this process's last errors and refusals, or L{None}.
    @param several: whether this process is one of several on this host
        (C{--workers}).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        health: Callable[[], tuple[int, dict[str, object]]],
        keys: KeyStore | None,
        shared: SharedState | None,
        exchanges: InFlight | None = None,
        recent: RecentErrors | None = None,
        several: bool = False,
    ) -> None:
        self._reactor = reactor
        self._health = health
        self._keys = keys
        self._shared = shared
        self._exchanges = exchanges
        self._recent = recent
        self._several = several
        self._presence = shared.presence if shared is not None else None
        if self._presence is not None:
            # What the other processes show of this one.
            self._presence.describe = self._own_view

    def serve_file(self, request: Request, name: bytes) -> bytes | None:
        """The page file served as C{name}, or L{None} if there is none."""
        found = PAGE_FILES.get(name)
        if found is None:
            return None
        filename, content_type = found
        secure_page(request)
        request.setHeader(b"content-type", content_type)
        return page_file(filename)

    def status(self, request: Request) -> bytes | int:
        """
        C{status.json?days=N}: this process's state and the ledger's usage
        of the last N days (default 7), for a request whose key (if keys
        are configured) was accepted.
        """
        secure_page(request)
        request.setHeader(b"content-type", b"application/json")
        args: Any = request.args or {}
        try:
            days = int(args.get(b"days", [b"%d" % STATUS_USAGE_DAYS])[-1])
            if not 1 <= days <= 400:
                raise ValueError(days)
        except ValueError:
            request.setResponseCode(400)
            return openai_error(
                "days must be a whole number from 1 to 400",
                "invalid_request_error",
                "invalid_request",
            )
        check = check_client_key(self._keys, request.requestHeaders)
        # The rule of the usage page: a named key that is not an admin's
        # sees what was counted as its own, and only that.
        own = check.name if check.name is not None and not check.settings.admin else None
        document = self.document(days, own)
        document["viewer"] = {"key": check.name, "admin": own is None}
        ledger = self._shared.ledger if self._shared is not None else None
        if ledger is None:
            return _encode(document)
        Deferred.fromCoroutine(self._complete(request, document, days, own))
        return NOT_DONE_YET

    async def _complete(
        self, request: Request, document: dict[str, Any], days: int, own: str | None
    ) -> None:
        """Add the ledger's usage and the other processes' views, then answer."""
        ledger = self._shared.ledger if self._shared is not None else None
        assert ledger is not None
        try:
            document["usage"] = await ledger.usage(days, own)
        except Exception as e:
            document["usage_error"] = f"the usage ledger cannot be read now ({e})"
        if self._presence is not None:
            try:
                views = await self._presence.fleet()
            except Exception:
                views = []
            _merge_fleet(document, self._presence.name, views, own)
        if request.channel is not None:
            request.write(_encode(document))
            request.finish()

    def _own_view(self) -> dict[str, Any]:
        """This process's streams and last errors, every key's, for the fleet."""
        now = self._reactor.seconds()
        return {
            "pid": os.getpid(),
            "requests_in_flight": (
                [] if self._exchanges is None else self._exchanges.describe(now, None)
            ),
            "recent_errors": [] if self._recent is None else self._recent.documents(None),
        }

    def document(self, days: int, own: str | None) -> dict[str, object]:
        """
        The status document but its usage (which the ledger answers later):
        health's fields, the process, the requests in flight and the last
        errors and refusals.

        @param own: show only what was counted as this key, or L{None} for all.
        """
        _, document = self._health()
        now = self._reactor.seconds()
        shared = self._shared
        document.update(
            now=round(now, 3),
            token_usable=document["status"] == "ok",
            process={
                "pid": os.getpid(),
                "several": self._several,
                "fleet": shared is not None and shared.fleet is not None,
            },
            requests_in_flight=(
                [] if self._exchanges is None else self._exchanges.describe(now, own)
            ),
            recent_errors=[] if self._recent is None else self._recent.documents(own),
            usage_days=days,
            usage=None,
        )
        return document


def _merge_fleet(
    document: dict[str, Any], name: str, views: list[dict[str, Any]], own: str | None
) -> None:
    """
    With other processes publishing (C{--workers}, Redis), the requests in
    flight and the last errors become the fleet's: this process's live ones
    and the others' latest views, each tagged with its process, still only
    C{own}'s for a key that is not an admin's.
    """
    others = [v for v in views if v.get("process") != name]
    if not others:
        return
    processes = [{"process": name, "pid": os.getpid(), "seen_s_ago": 0.0, "this": True}]
    in_flight = [dict(r, process=name) for r in document["requests_in_flight"]]
    errors = [dict(e, process=name) for e in document["recent_errors"]]
    for view in others:
        process = str(view.get("process"))
        processes.append(
            {"process": process, "pid": view.get("pid"), "seen_s_ago": view.get("seen_s_ago")}
        )
        for entry in _entries(view, "requests_in_flight"):
            if own is None or entry.get("key") == own:
                in_flight.append(dict(entry, process=process))
        for entry in _entries(view, "recent_errors"):
            if own is None or entry.get("key") == own:
                errors.append(dict(entry, process=process))
    errors.sort(key=_when, reverse=True)
    document["requests_in_flight"] = in_flight
    document["recent_errors"] = errors[:50]
    document["process"]["fleet_processes"] = processes


def _when(entry: dict[str, Any]) -> float:
    at = entry.get("at")
    return float(at) if isinstance(at, (int, float)) else 0.0


def _entries(view: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = view.get(name)
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _encode(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode("utf-8")
