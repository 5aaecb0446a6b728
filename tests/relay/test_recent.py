"""
The status page's last errors and refusals: a ring of the requests that went
wrong, bounded, newest first, filtered by key, holding no secret.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyChannel

from copilot_proxy.relay import RECENT_ERRORS, RecentErrors
from copilot_proxy.web import ProxyRequest
from copilot_proxy.wire import Outcome

KEY = "sk-alice-0123456789abcdef"


def _request(
    uri: bytes, code: int = 200, key: str | None = "alice", sent: bool = True
) -> ProxyRequest:
    request = ProxyRequest(DummyChannel())
    request.method = b"POST"
    request.uri = uri
    request.code = code
    request.client_key = key
    request.startedWriting = 1 if sent else 0
    request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {KEY}".encode()])
    return request


def test_only_requests_that_went_wrong_are_kept_newest_first() -> None:
    clock = Clock()
    recent = RecentErrors(clock.seconds)
    recent.ended(_request(b"/chat/completions"), Outcome.COMPLETE, "gpt-4o")
    recent.ended(_request(b"/v1/models"), Outcome.CACHED, None)
    assert len(recent) == 0
    clock.advance(10)
    recent.ended(_request(b"/v1/messages", 503), Outcome.COMPLETE, "claude-sonnet-4")
    clock.advance(1)
    recent.ended(_request(b"/chat/completions"), Outcome.CLIENT_GONE, "gpt-4o")
    clock.advance(1)
    recent.ended(
        _request(b"/responses", 502), Outcome.UPSTREAM_ERROR, None, "upstream_unreachable"
    )
    assert recent.documents() == [
        {
            "at": 12.0,
            "key": "alice",
            "model": "-",
            "route": "responses",
            "status": 502,
            "outcome": "upstream_error",
            "cause": "upstream_unreachable",
        },
        {
            "at": 11.0,
            "key": "alice",
            "model": "gpt-4o",
            "route": "chat_completions",
            "status": 200,
            "outcome": "client_gone",
            "cause": "the client left before the answer ended",
        },
        {
            "at": 10.0,
            "key": "alice",
            "model": "claude-sonnet-4",
            "route": "messages",
            "status": 503,
            "outcome": "complete",
            "cause": "answered 503",
        },
    ]


def test_a_request_cut_before_its_head_has_no_status() -> None:
    recent = RecentErrors(Clock().seconds)
    recent.ended(_request(b"/chat/completions", sent=False), Outcome.SHUTDOWN, "gpt-4o")
    (entry,) = recent.documents()
    assert entry["status"] is None
    assert entry["cause"] == "cut when the shutdown grace ran out"


def test_refusals_are_kept_under_the_key_or_address_they_count_as() -> None:
    recent = RecentErrors(Clock().seconds)
    recent.refused(_request(b"/chat/completions", key="bob"), 429)
    recent.refused(_request(b"/v1/models", key=None), 401)
    recent.refused_early(413, "addr:10.1.2.3")
    found = [(e["key"], e["status"], e["outcome"], e["route"]) for e in recent.documents()]
    assert found == [
        ("addr:10.1.2.3", 413, "refused", "-"),
        ("addr:192.168.1.1", 401, "refused", "models"),
        ("bob", 429, "refused", "chat_completions"),
    ]
    assert recent.documents()[1]["cause"] == "no valid client key"
    assert "limit" in str(recent.documents()[2]["cause"])


def test_the_ring_keeps_the_last_fifty_and_filters_by_key() -> None:
    recent = RecentErrors(Clock().seconds)
    for i in range(RECENT_ERRORS + 10):
        key = "alice" if i % 2 else "bob"
        recent.ended(_request(b"/chat/completions", 500, key), Outcome.COMPLETE, f"m-{i}")
    assert len(recent) == RECENT_ERRORS == 50
    everything = recent.documents()
    assert everything[0]["model"] == "m-59" and everything[-1]["model"] == "m-10"
    mine = recent.documents("alice")
    assert len(mine) == 25 and {e["key"] for e in mine} == {"alice"}
    assert KEY not in json.dumps(everything)
