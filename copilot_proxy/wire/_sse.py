"""
Server-sent events: splitting a byte stream into events, and writing them.

TCP delivers an event stream in arbitrary pieces: an event, a line, even a
multi-byte character may be split across chunks.  L{SSESplitter} keeps the
unfinished tail between calls and returns only complete events.  Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One server-sent event: its C{event:} name (or C{""}) and joined C{data:} lines."""

    name: str
    data: str


class SSESplitter:
    """
    Incremental parser of a C{text/event-stream} body (the WHATWG rules that
    matter here: LF, CRLF or CR line ends, comment lines, multi-line data).
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        """Take the next piece of the stream; return the events it completed."""
        self._buffer += chunk
        events: list[Event] = []
        while True:
            end, width = _line_end(self._buffer)
            if end < 0:
                return events
            line = self._buffer[:end].decode("utf-8", "replace")
            self._buffer = self._buffer[end + width :]
            if not line:
                if self._data:
                    events.append(Event(self._name, "\n".join(self._data)))
                self._name = ""
                self._data = []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                self._data.append(value)
            elif field == "event":
                self._name = value

    def close(self) -> list[Event]:
        """The stream ended: an event left without its blank line still counts."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        self._buffer = b""
        return events


def _line_end(buffer: bytes) -> tuple[int, int]:
    """Index and width of the first line end in C{buffer}, or (-1, 0)."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr < 0:
        return lf, 1
    if lf >= 0 and lf < cr:
        return lf, 1
    # A CR as the very last byte may be the first half of a CRLF: wait.
    if cr == len(buffer) - 1:
        return -1, 0
    return cr, 2 if buffer[cr + 1 : cr + 2] == b"\n" else 1


# Built once: json.dumps with arguments builds a new encoder on every call,
# and translated streams encode every event.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(name: str, payload: object) -> bytes:
    """One named event whose data is C{payload} as compact JSON."""
    data = _COMPACT.encode(payload)
    return b"event: " + name.encode() + b"\ndata: " + data.encode() + b"\n\n"
