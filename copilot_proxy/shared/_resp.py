"""
RESP2, the Redis wire protocol: commands out, replies in, incrementally.

Pure: bytes in, values out.  Replies are C{bytes} (simple and bulk
strings), C{int}, L{None} (a nil), lists of replies, and L{ReplyError} for
an error reply, which is a value here and an exception for the caller.
What the server sends is bounded (a bulk string, an array, nesting), so a
broken or hostile peer cannot make the proxy hold more than a few megabytes.
"""

from __future__ import annotations

from typing import TypeAlias

#: The largest bulk string and array accepted from a server.
MAX_BULK = 16 * 1024 * 1024
MAX_ARRAY = 1_000_000
MAX_DEPTH = 8
# A length line (type byte, a number) longer than this is garbage; a simple
# string or error line (an error's text) may be longer, up to _MAX_TEXT.
_MAX_LINE = 64
_MAX_TEXT = 64 * 1024


class ReplyError(Exception):
    """An error reply (C{-ERR ...}); its first word is the error's kind."""

    @property
    def kind(self) -> str:
        return str(self).partition(" ")[0]


class ProtocolError(Exception):
    """The server sent something that is not RESP: the connection is unusable."""


Reply: TypeAlias = "bytes | int | ReplyError | list[Reply] | None"

Arg: TypeAlias = bytes | str | int | float


def _arg(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        raise TypeError("a Redis argument is bytes, str or a number, not a bool")
    if isinstance(value, int):
        return b"%d" % (value,)
    return repr(float(value)).encode("ascii")


def encode_command(*args: Arg) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % (len(args),)]
    for value in args:
        data = _arg(value)
        parts.append(b"$%d\r\n" % (len(data),))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class _Incomplete(Exception):
    """More bytes are needed."""


class ReplyParser:
    """
    Turns the bytes a server sends into replies, as they arrive.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        """
        The replies completed by C{data}, in order.

        @raise ProtocolError: when the bytes are not RESP or exceed a bound.
        """
        self._buffer += data
        replies: list[Reply] = []
        position = 0
        buffer = self._buffer
        while position < len(buffer):
            try:
                reply, position = self._parse(buffer, position, 0)
            except _Incomplete:
                break
            replies.append(reply)
        del buffer[:position]
        if len(buffer) > MAX_BULK + _MAX_LINE:
            raise ProtocolError("a reply larger than the proxy accepts")
        return replies

    def _line(self, buffer: bytearray, position: int) -> tuple[bytes, int]:
        limit = _MAX_TEXT if bytes(buffer[position : position + 1]) in (b"+", b"-") else _MAX_LINE
        end = buffer.find(b"\r\n", position, position + limit + 2)
        if end < 0:
            if len(buffer) - position > limit + 2:
                raise ProtocolError("a reply line longer than RESP allows")
            raise _Incomplete()
        return bytes(buffer[position:end]), end + 2

    def _number(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise ProtocolError("a reply length that is not a number") from None

    def _parse(self, buffer: bytearray, position: int, depth: int) -> tuple[Reply, int]:
        if depth > MAX_DEPTH:
            raise ProtocolError("replies nested deeper than the proxy accepts")
        line, after = self._line(buffer, position)
        if not line:
            raise ProtocolError("an empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest, after
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace")), after
        if kind == b":":
            return self._number(rest), after
        if kind == b"$":
            size = self._number(rest)
            if size == -1:
                return None, after
            if not 0 <= size <= MAX_BULK:
                raise ProtocolError("a bulk string larger than the proxy accepts")
            end = after + size
            if len(buffer) < end + 2:
                raise _Incomplete()
            if buffer[end : end + 2] != b"\r\n":
                raise ProtocolError("a bulk string without its line end")
            return bytes(buffer[after:end]), end + 2
        if kind == b"*":
            count = self._number(rest)
            if count == -1:
                return None, after
            if not 0 <= count <= MAX_ARRAY:
                raise ProtocolError("an array longer than the proxy accepts")
            items: list[Reply] = []
            for _ in range(count):
                item, after = self._parse(buffer, after, depth + 1)
                items.append(item)
            return items, after
        raise ProtocolError("a reply of an unknown type")
