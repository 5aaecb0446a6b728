"""
A translated stream: upstream SSE bytes of one shape in, the client's shape
out, event by event as the bytes arrive.
"""

from __future__ import annotations

from ..wire import SSESplitter
from ._model import Codec, Event, Failed, Finished


class StreamTranslation:
    """
    One stream's translation, through the neutral events.

    @param upstream: the codec of the endpoint the stream comes from.
    @param client: the codec of the client's shape.
    @param model: the model name the client asked for (its answer says it).
    """

    def __init__(self, upstream: Codec, client: Codec, model: str) -> None:
        self._splitter = SSESplitter()
        self._decoder = upstream.stream_decoder()
        self._encoder = client.stream_encoder(model)
        self._ended = False

    def feed(self, data: bytes) -> bytes:
        """The client bytes completed by this piece of the upstream body."""
        events: list[Event] = []
        for sse in self._splitter.feed(data):
            events.extend(self._decoder.feed(sse.name or None, sse.data))
        return self._encode(events)

    def end(self) -> bytes:
        """The upstream body ended: what is left, ending the client's stream."""
        events: list[Event] = []
        for sse in self._splitter.close():
            events.extend(self._decoder.feed(sse.name or None, sse.data))
        events.extend(self._decoder.end())
        return self._encode(events)

    def cut(self, message: str) -> bytes:
        """The stream ends early: the client's error event, unless it has ended."""
        return self._encode([Failed(message)])

    def _encode(self, events: list[Event]) -> bytes:
        if self._ended:
            return b""
        for i, event in enumerate(events):
            if isinstance(event, (Finished, Failed)):
                events = events[: i + 1]
                self._ended = True
                break
        return self._encoder.feed(events) if events else b""
