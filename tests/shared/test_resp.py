"""
RESP2 in and out: commands encoded as Redis reads them, replies parsed as
they arrive, however they are split, and bounded against a broken server.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot_proxy.shared._resp import (
    MAX_DEPTH,
    ProtocolError,
    Reply,
    ReplyError,
    ReplyParser,
    encode_command,
)


def test_command_is_an_array_of_bulk_strings() -> None:
    assert encode_command("SET", b"k", 5, 1.5) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n$3\r\n1.5\r\n"
    )


def test_bool_is_not_an_argument() -> None:
    with pytest.raises(TypeError):
        encode_command("SET", "k", True)


def test_every_reply_type() -> None:
    parser = ReplyParser()
    replies = parser.feed(
        b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n-ERR no\r\n"
    )
    assert replies[:5] == [b"OK", 42, b"abc", None, [1, [b""]]]
    error = replies[5]
    assert isinstance(error, ReplyError) and error.kind == "ERR"


def _encode_reply(reply: Reply) -> bytes:
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % (reply,)
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    if isinstance(reply, list):
        return b"*%d\r\n" % (len(reply),) + b"".join(_encode_reply(r) for r in reply)
    raise AssertionError(reply)


_replies = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


@given(st.lists(_replies, min_size=1, max_size=6), st.data())
def test_any_split_gives_the_same_replies(replies: list[Reply], data: st.DataObject) -> None:
    wire = b"".join(_encode_reply(r) for r in replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    parser = ReplyParser()
    got: list[Reply] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got.extend(parser.feed(wire[start:cut]))
        start = cut
    assert got == replies


@given(st.binary(max_size=200))
def test_garbage_never_escapes_as_anything_but_a_protocol_error(data: bytes) -> None:
    parser = ReplyParser()
    try:
        parser.feed(data)
    except ProtocolError:
        pass


def test_huge_bulk_and_deep_nesting_are_refused() -> None:
    with pytest.raises(ProtocolError):
        ReplyParser().feed(b"$999999999999\r\n")
    with pytest.raises(ProtocolError):
        ReplyParser().feed(b"*1\r\n" * (MAX_DEPTH + 2) + b":1\r\n")
    with pytest.raises(ProtocolError):
        ReplyParser().feed(b":" + b"1" * 200)


def test_long_error_and_status_lines_are_read() -> None:
    text = "OOM command not allowed when used memory > 'maxmemory'. script: " + "a" * 200
    replies = ReplyParser().feed(b"-" + text.encode() + b"\r\n+" + b"s" * 300 + b"\r\n")
    error = replies[0]
    assert isinstance(error, ReplyError) and str(error) == text and error.kind == "OOM"
    assert replies[1] == b"s" * 300
