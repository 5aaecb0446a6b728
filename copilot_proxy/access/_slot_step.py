"""
The stream-slot step of the access gate: a slot under the proxy's cap and
the client's (its key's own C{streams=}, or C{--max-streams-per-key}), held
until the request ends however it ends; past a cap, 429 with C{Retry-After:
1} or, with C{--rate-limit-wait}, a wait in arrival order.  The slots are
this process's or, with C{--redis}, leases in the fleet's (the process's own
while Redis cannot answer).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from ..web import ProxyRequest
from ._fleet_access import SLOT_POLL, FleetAccess
from ._stream_slots import StreamSlots
from ._waiting import Refuse, WaitingRoom, late

# How long a client told to retry because every stream slot is taken should
# wait: slots free up as streams end, which no clock predicts.
_RETRY_AFTER = 1
_CODE = "too_many_streams"


def _refusal(client: str, cap: int | None) -> str:
    if cap is not None:
        return f"stream limit of {cap} in flight for key {client} reached"
    return "too many requests in flight for this proxy or this client"


class SlotStep:
    """
    @param slots: the process's slots, and the caps.
    @param fleet: the fleet's leases in Redis, or L{None}.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        slots: StreamSlots,
        fleet: FleetAccess | None,
        room: WaitingRoom,
        refuse: Refuse,
    ) -> None:
        self._reactor = reactor
        self.slots = slots
        self._fleet = fleet
        self._room = room
        self._refuse = refuse

    def run(
        self,
        request: ProxyRequest,
        client: str,
        cap: int | None,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        """Forward C{request} once it holds a slot (C{cap}: its key's own)."""
        slots = self.slots
        per_client = cap if cap is not None else slots.per_key
        if self._fleet is not None and (slots.total is not None or per_client is not None):
            self._in_fleet(self._fleet, request, client, cap, per_client, forward)
            return NOT_DONE_YET
        return self._in_process(request, client, cap, forward)

    def _in_process(
        self,
        request: ProxyRequest,
        client: str,
        cap: int | None,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        slots, room = self.slots, self._room
        if slots.try_acquire(client, cap):
            self._hold(request, client, forward)
            return NOT_DONE_YET
        if not room.has_room():
            whose = cap if cap is not None and slots.key_full(client, cap) else None
            return self._refuse(request, _RETRY_AFTER, _refusal(client, whose), _CODE)

        def go() -> None:
            room.exit(request)
            if request.channel is None:
                slots.release(client)
                return
            self._hold(request, client, forward)

        waiter = slots.wait(client, go, cap)

        def left(_: Failure) -> None:
            if room.exit(request) is not None:
                slots.cancel(waiter)

        room.enter(request, lambda: slots.cancel(waiter))
        request.notifyFinish().addErrback(left)
        return NOT_DONE_YET

    def _hold(
        self, request: ProxyRequest, client: str, forward: Callable[[ProxyRequest], None]
    ) -> None:
        slots = self.slots
        request.notifyFinish().addBoth(lambda _: slots.release(client))
        forward(request)

    def _in_fleet(
        self,
        fleet: FleetAccess,
        request: ProxyRequest,
        client: str,
        cap: int | None,
        per_client: int | None,
        forward: Callable[[ProxyRequest], None],
    ) -> None:
        """
        A lease in Redis; a waiting request asks again every L{SLOT_POLL}
        seconds (a slot freed by another process sends no word).
        """
        total, room = self.slots.total, self._room

        def gone() -> bool:
            return request.channel is None or bool(request.finished)

        def decided(lease: str | None) -> None:
            if gone():
                room.exit(request)
                if lease is not None:
                    fleet.release(lease)
                return
            if lease is not None:
                room.exit(request)
                request.notifyFinish().addBoth(lambda _: fleet.release(lease))
                forward(request)
            elif request in room:
                self._reactor.callLater(SLOT_POLL, ask)
            elif not room.has_room():
                late(request, self._refuse(request, _RETRY_AFTER, _refusal(client, cap), _CODE))
            else:
                room.enter(request, lambda: None)
                request.notifyFinish().addErrback(lambda _: room.exit(request))
                self._reactor.callLater(SLOT_POLL, ask)

        def fall_back(failure: Failure) -> None:
            room.exit(request)
            if gone():
                return
            refusal = fleet.unavailable(failure, request)
            late(request, refusal or self._in_process(request, client, cap, forward))

        def ask() -> None:
            if gone():
                room.exit(request)
                return
            fleet.acquire(client, total, per_client).addCallbacks(decided, fall_back)

        ask()
