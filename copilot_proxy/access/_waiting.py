"""
The requests that wait for their turn (C{--rate-limit-wait}): for a token
of their rate, or for a stream slot.  One room for both, so C{--max-queue}
bounds them together, and a stop can answer them all.
"""

from __future__ import annotations

from collections.abc import Callable

from ..web import ProxyRequest

#: What a refusal is made with: the request, the Retry-After seconds, the
#: message and the error code; it returns the answer's body.
Refuse = Callable[[ProxyRequest, int, str, str], bytes]


class WaitingRoom:
    """
    @param wait: whether requests over a limit wait (else they get 429).
    @param max_queue: at most this many wait at once.
    """

    def __init__(self, wait: bool, max_queue: int) -> None:
        self.wait = wait
        self.max_queue = max_queue
        # Each waiting request, with what takes it out of its queue.
        self._queued: dict[ProxyRequest, Callable[[], None]] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, request: object) -> bool:
        return request in self._queued

    def has_room(self) -> bool:
        """Whether one more request over a limit may wait (rather than get 429)."""
        return self.wait and len(self._queued) < self.max_queue

    def enter(self, request: ProxyRequest, leave: Callable[[], None]) -> None:
        """C{request} waits; C{leave} takes it out of whatever queue it is in."""
        self._queued[request] = leave

    def exit(self, request: ProxyRequest) -> Callable[[], None] | None:
        """C{request} waits no more: its C{leave}, if it was waiting."""
        return self._queued.pop(request, None)

    def empty(self) -> list[ProxyRequest]:
        """Take every request out (each leaves its queue): the proxy stops."""
        requests = list(self._queued)
        for request in requests:
            leave = self._queued.pop(request, None)
            if leave is not None:
                leave()
        return requests


def late(request: ProxyRequest, outcome: bytes | int) -> None:
    """Finish with an answer decided after C{render} has returned."""
    if isinstance(outcome, bytes) and request.channel is not None:
        request.write(outcome)
        request.finish()
