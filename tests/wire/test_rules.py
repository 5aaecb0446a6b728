"""The pure rules under the proxy path: header filtering and option checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.web.http_headers import Headers

from copilot_proxy.settings import (
    ConfigError,
    check_token,
    listen_description,
    positive_seconds,
    upstream_base,
)
from copilot_proxy.wire import (
    HOP_BY_HOP,
    client_response_headers,
    connection_tokens,
    upstream_request_headers,
)

AUTH = b"Bearer proxy-token"


def test_connection_named_headers_are_dropped_case_insensitively() -> None:
    client = Headers(
        {
            b"Connection": [b"Keep-Alive, X-Hop ,x-other"],
            b"X-HOP": [b"1"],
            b"X-Other": [b"2"],
            b"X-End-To-End": [b"3"],
        }
    )
    assert connection_tokens(client) == {b"keep-alive", b"x-hop", b"x-other"}
    sent = upstream_request_headers(client, AUTH)
    assert dict(sent.getAllRawHeaders()) == {
        b"X-End-To-End": [b"3"],
        b"Authorization": [AUTH],
    }


def test_repeated_headers_keep_all_values_in_order() -> None:
    client = Headers({b"Accept": [b"a", b"b"]})
    assert upstream_request_headers(client, AUTH).getRawHeaders(b"accept") == [b"a", b"b"]


def test_response_hop_by_hop_headers_are_dropped() -> None:
    upstream = Headers(
        {
            b"Content-Type": [b"text/event-stream"],
            b"Keep-Alive": [b"timeout=5"],
            b"Proxy-Authenticate": [b"Basic"],
            b"Upgrade": [b"h2c"],
            b"X-Request-Id": [b"r1"],
        }
    )
    assert dict(client_response_headers(upstream)) == {
        b"Content-Type": [b"text/event-stream"],
        b"X-Request-Id": [b"r1"],
    }


_names = st.sampled_from(
    [n.decode() for n in HOP_BY_HOP]
    + [
        "authorization",
        "Authorization",
        "host",
        "x-api-key",
        "content-length",
        "x-custom",
        "accept",
    ]
)


@given(st.dictionaries(_names, st.lists(st.text("abc ,", min_size=1), min_size=1, max_size=3)))
def test_forwarded_headers_never_carry_hop_by_hop_or_client_credentials(
    raw: dict[str, list[str]],
) -> None:
    client = Headers({k.encode(): [v.encode() for v in vs] for k, vs in raw.items()})
    sent = upstream_request_headers(client, AUTH)
    names = {name.lower() for name, _ in sent.getAllRawHeaders()}
    assert not names & (HOP_BY_HOP | {b"host", b"x-api-key", b"content-length"})
    assert sent.getRawHeaders(b"authorization") == [AUTH]


def test_bare_port_listens_on_loopback_only() -> None:
    assert listen_description("8080") == "tcp:8080:interface=127.0.0.1:backlog=1024"
    assert listen_description("tcp:8080:interface=::1") == "tcp:8080:interface=::1"
    with pytest.raises(ConfigError):
        listen_description("70000")
    with pytest.raises(ConfigError):
        listen_description(" ")


def test_upstream_base_keeps_prefix_and_refuses_what_cannot_be_a_base() -> None:
    assert upstream_base("https://api.example.com/") == b"https://api.example.com"
    assert upstream_base("http://127.0.0.1:9000/v/") == b"http://127.0.0.1:9000/v"
    for bad in ("ftp://x", "https://", "https://h/?q=1", "https://u:p@h", "https://h:99999"):
        with pytest.raises(ConfigError):
            upstream_base(bad)


def test_durations_must_be_positive_numbers() -> None:
    assert positive_seconds("--x", "2.5") == 2.5
    for bad in ("0", "-1", "inf", "nan", "soon"):
        with pytest.raises(ConfigError):
            positive_seconds("--x", bad)


def test_token_that_would_split_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        check_token("abc\r\nX-Evil: 1", "COPILOT_TOKEN")
    assert "abc" not in str(caught.value)
    assert check_token("tid=1;exp=2", "file") == "tid=1;exp=2"
