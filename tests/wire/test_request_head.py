"""Which request heads may be read on: methods, framing, chunk sizes (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot_proxy.wire import (
    ALLOWED_METHODS,
    ChunkSizeGuard,
    framing_problem,
    method_problem,
)


@pytest.mark.parametrize("method", [b"TRACE", b"TRACK"])
def test_echoing_methods_are_refused(method: bytes) -> None:
    problem = method_problem(method)
    assert problem is not None and problem[0] == "method_not_allowed"
    assert method not in ALLOWED_METHODS


@pytest.mark.parametrize("method", [b"GET", b"POST", b"OPTIONS", b"DELETE", b"trace", b"PROPFIND"])
def test_other_methods_pass(method: bytes) -> None:
    assert method_problem(method) is None


def _framing(
    version: bytes = b"HTTP/1.1",
    hosts: tuple[bytes, ...] = (b"x",),
    lengths: tuple[bytes, ...] = (),
    codings: tuple[bytes, ...] = (),
) -> str | None:
    problem = framing_problem(version, hosts, lengths, codings)
    return None if problem is None else problem[0]


@pytest.mark.parametrize(
    "codings",
    [
        (b"identity",),
        (b"gzip, chunked",),
        (b"chunked, identity",),
        (b"chunked, chunked",),
        (b"chunked", b"chunked"),
        (b"identity", b"chunked"),
        (b"chunked", b""),
        (b"",),
        (b"chunked;q=1",),
    ],
)
def test_any_coding_but_one_final_chunked_is_bad_framing(codings: tuple[bytes, ...]) -> None:
    assert _framing(codings=codings) == "bad_framing"


def test_chunked_alone_or_a_length_alone_frame_a_body() -> None:
    assert _framing(codings=(b"chunked",)) is None
    assert _framing(codings=(b" Chunked ",)) is None
    assert _framing(lengths=(b"10",)) is None
    assert _framing() is None


def test_a_length_and_a_coding_together_are_bad_framing() -> None:
    assert _framing(lengths=(b"10",), codings=(b"chunked",)) == "bad_framing"
    assert _framing(lengths=(b"10",), codings=(b"identity",)) == "bad_framing"


def test_any_transfer_coding_on_http_1_0_is_bad_framing() -> None:
    assert _framing(b"HTTP/1.0", codings=(b"chunked",)) == "bad_framing"


@pytest.mark.parametrize(
    ("version", "hosts"),
    [
        (b"HTTP/1.1", ()),
        (b"HTTP/1.1", (b"a", b"b")),
        (b"HTTP/1.1", (b"a", b"a")),
        (b"HTTP/1.0", (b"a", b"b")),
        (b"HTTP/1.1", (b"a/b",)),
        (b"HTTP/1.1", (b"user@host",)),
        (b"HTTP/1.1", (b"a b",)),
        (b"HTTP/1.1", (b"host?x",)),
    ],
)
def test_host_must_be_one_plain_authority(version: bytes, hosts: tuple[bytes, ...]) -> None:
    assert _framing(version, hosts) == "bad_host"


@pytest.mark.parametrize(
    ("version", "hosts"),
    [
        (b"HTTP/1.1", (b"api.example:8443",)),
        (b"HTTP/1.1", (b"[::1]:80",)),
        (b"HTTP/1.1", (b"127.0.0.1",)),
        (b"HTTP/1.1", (b"",)),
        (b"HTTP/1.0", ()),
    ],
)
def test_plain_hosts_pass(version: bytes, hosts: tuple[bytes, ...]) -> None:
    assert _framing(version, hosts) is None


def _chunk(data: bytes, size_digits: int = 0) -> bytes:
    return b"%0*x;ext=1\r\n" % (size_digits, len(data)) + data + b"\r\n"


def _chunked(chunks: list[bytes], size_digits: int = 0, trailer: bytes = b"") -> bytes:
    body = b"".join(_chunk(chunk, size_digits) for chunk in chunks)
    return body + b"0\r\n" + trailer + b"\r\n"


def _feed_split(guard: ChunkSizeGuard, data: bytes, cuts: list[int]) -> bool:
    at = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        if not guard.feed(data[at:cut]):
            return False
        at = cut
    return True


# Chunk data that looks like size lines: the guard must skip it as data.
_DATA = st.binary(max_size=40) | st.just(b"00000000000000000000001\r\n")


@given(
    st.lists(_DATA.filter(bool), max_size=5),
    st.integers(0, 16),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_a_valid_chunked_body_split_anywhere_passes_and_ends(
    chunks: list[bytes], digits: int, cuts: list[int]
) -> None:
    guard = ChunkSizeGuard()
    data = _chunked(chunks, digits, b"x-trailer: 1\r\n") + b"GET /next HTTP/1.1\r\n"
    assert _feed_split(guard, data, cuts)
    assert guard.done


@given(
    st.lists(_DATA.filter(bool), min_size=1, max_size=5),
    st.integers(0, 4),
    st.integers(17, 40),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_a_chunk_size_of_more_than_16_digits_is_refused_wherever_it_is_split(
    chunks: list[bytes], where: int, digits: int, cuts: list[int]
) -> None:
    where %= len(chunks)
    long_one = _chunk(chunks[where], digits)
    data = _chunked(chunks[:where]).removesuffix(b"0\r\n\r\n") + long_one + _chunked([])
    assert not _feed_split(ChunkSizeGuard(), data, cuts)


def test_a_long_size_is_refused_before_its_line_ends() -> None:
    guard = ChunkSizeGuard()
    assert guard.feed(b"0" * 16)
    assert not guard.feed(b"0")


def test_a_malformed_size_line_is_left_to_the_http_parser() -> None:
    guard = ChunkSizeGuard()
    assert guard.feed(b"zz\r\n" + b"0" * 40)
    assert guard.done
