"""Which request targets may go upstream (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot_proxy.wire import target_problem

ESCAPES = [
    b"//evil.example/x",
    b"//",
    b"/../x",
    b"/v1/../../admin",
    b"/v1/..",
    b"/./models",
    b"/%2e%2e/x",
    b"/%2E%2e/x",
    b"/.%2e/x",
    b"/%2e/models",
    b"/v1/%252e%252e/x",
    b"/v1/%25252e%25252e/x",
    b"/a%2f..%2fb",
    b"/a%2F..%2Fb",
    b"/a%252f..",
    b"/a%5c..",
    b"/a\\..\\b",
    b"/..;/admin",
    b"/v1/%2e%2e;x/admin",
    b"/%2f%2fevil.example/",
    b"/models%00",
    b"/models\x7f",
]

FINE = [
    b"/chat/completions",
    b"/v1/messages?beta=true",
    b"/models",
    b"/",
    b"/models?next=/../x",
    b"/a/..b/c.",
    b"/file.txt",
    b"/v1/some%20thing",
]


@pytest.mark.parametrize("uri", ESCAPES)
def test_path_escapes_are_refused(uri: bytes) -> None:
    problem = target_problem(b"GET", uri)
    assert problem is not None and problem[0] == "invalid_path", uri


@pytest.mark.parametrize("uri", FINE)
def test_plain_paths_and_any_query_pass(uri: bytes) -> None:
    assert target_problem(b"POST", uri) is None


@pytest.mark.parametrize(
    ("method", "uri"),
    [(b"GET", b"http://other.example/"), (b"CONNECT", b"other.example:443"), (b"GET", b"*")],
)
def test_forward_proxy_forms_are_refused(method: bytes, uri: bytes) -> None:
    problem = target_problem(method, uri)
    assert problem is not None and problem[0] == "not_a_forward_proxy"


_SEGMENT = st.text(alphabet="abcxyz.-_~%2eEfF5c;", min_size=0, max_size=8)


@given(st.lists(_SEGMENT, min_size=1, max_size=6))
def test_no_accepted_path_has_a_dot_segment_after_decoding(segments: list[str]) -> None:
    from urllib.parse import unquote

    uri = ("/" + "/".join(segments)).encode()
    if target_problem(b"GET", uri) is not None:
        return
    path = uri.decode()
    for _ in range(4):
        path = unquote(path)
        assert not path.startswith("//")
        assert "\\" not in path
        for segment in path.split("/"):
            assert segment.split(";")[0] not in (".", "..")
