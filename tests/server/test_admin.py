"""
The proxy's own pages: health and Prometheus metrics, answered by the proxy
and never forwarded; and the access log line's fields.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, fail, succeed

from copilot_proxy._version import __version__
from copilot_proxy.app import build_proxy
from copilot_proxy.metrics import method_label, route_group, status_class
from copilot_proxy.settings import ConfigError, ProxyConfig, admin_prefix, upstream_base
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN
from copilot_proxy.tokens import CredentialKind, TokenUnavailable
from copilot_proxy.wire import PARSE_LIMIT, model_from_body

from .._helpers import (
    Proxy,
    Upstream,
    fetch,
    port_number,
    send,
    stream_request,
    timeout,
    until,
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(proxy: Proxy) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response, body = await fetch(proxy.url + "/_proxy/metrics")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
    return samples(body.decode())


def requests_of(found: dict[Any, float], method: str, route: str, status: str) -> float:
    key = (
        "copilot_proxy_requests_total",
        (("method", method), ("route", route), ("status_class", status)),
    )
    return found.get(key, 0.0)


# Health --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_healthz_reports_state_without_forwarding_or_token(
    proxy: Proxy, upstream: Upstream
) -> None:
    response, body = await fetch(proxy.url + "/_proxy/healthz")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["version"] == __version__
    assert health["uptime_s"] >= 0
    assert health["pid"] == os.getpid()
    assert health["in_flight"] == 0
    assert health["upstream"] == upstream.url
    assert health["token"] == {"source": "static", "expires_in_s": None}
    assert ACCEPTED_TOKEN.encode() not in body
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_healthz_counts_streams_in_flight(proxy: Proxy, upstream: Upstream) -> None:
    headers, body = stream_request(events=1, mode="stall")
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.first)
    _, health = await fetch(proxy.url + "/_proxy/healthz")
    assert json.loads(health)["in_flight"] == 1
    found = await scrape(proxy)
    assert found[("copilot_proxy_in_flight", ())] == 1
    assert collector.transport is not None
    collector.transport.loseConnection()
    await until(lambda: len(proxy.service._inflight) == 0)
    _, health = await fetch(proxy.url + "/_proxy/healthz")
    assert json.loads(health)["in_flight"] == 0


class _BrokenRefreshingToken:
    """A token source that knows its token is unusable, as a refresher would."""

    source = CredentialKind.GITHUB
    refreshes = 3
    refresh_failures = 2
    usable = False

    def expires_in(self) -> float:
        return 0.0

    def authorization(self) -> Deferred[bytes]:
        return fail(TokenUnavailable("log in again: copilot-proxy login"))

    def refreshed_after(self, rejected: bytes) -> Deferred[bytes | None]:
        return succeed(None)


@pytest_twisted.ensureDeferred
async def test_healthz_is_503_when_the_token_is_unusable(reactor: Any, upstream: Upstream) -> None:
    config = ProxyConfig(listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(upstream.url))
    service = build_proxy(reactor, config, _BrokenRefreshingToken())
    service.startService()  # type: ignore[no-untyped-call]
    proxy = Proxy(service, f"http://127.0.0.1:{port_number(service.port)}")
    try:
        response, body = await fetch(proxy.url + "/_proxy/healthz")
        assert response.code == 503
        health = json.loads(body)
        assert health["status"] == "token_unavailable"
        assert health["token"] == {"source": "github", "expires_in_s": 0.0}
        found = await scrape(proxy)
        token_refreshes = "copilot_proxy_token_refreshes_total"
        assert found[(token_refreshes, (("result", "ok"),))] == 3
        assert found[(token_refreshes, (("result", "failed"),))] == 2
        assert found[("copilot_proxy_token_usable", ())] == 0
    finally:
        await service.stopService()


# Routing -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_admin_prefix_is_never_forwarded(proxy: Proxy, upstream: Upstream) -> None:
    response, body = await fetch(proxy.url + "/_proxy/anything?x=1")
    assert response.code == 404
    assert json.loads(body)["error"]["code"] == "not_found"
    response, body = await fetch(proxy.url + "/_proxy/healthz", b"POST", body=b"{}")
    assert response.code == 405
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_custom_admin_prefix_moves_the_pages(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url, admin_prefix=b"/ops/x/")
    response, _ = await fetch(proxy.url + "/ops/x/healthz")
    assert response.code == 200
    assert upstream.fake.received == []
    # The default prefix is an ordinary path again, so it goes upstream.
    await fetch(proxy.url + "/_proxy/healthz")
    assert upstream.fake.received[-1].path == "/_proxy/healthz"


@pytest.mark.parametrize("bad", ["", "/", "_proxy/", "/_proxy", "//", "/a b/", "/ä/"])
def test_admin_prefix_must_be_a_proper_path(bad: str) -> None:
    with pytest.raises(ConfigError, match="--admin-prefix"):
        admin_prefix(bad)


def test_admin_prefix_accepts_nested_paths() -> None:
    assert admin_prefix("/_proxy/") == b"/_proxy/"
    assert admin_prefix("/ops/proxy-1/") == b"/ops/proxy-1/"


# Metrics -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_metrics_count_what_the_clients_did(proxy: Proxy, upstream: Upstream) -> None:
    sent_out = 0
    sent_in = 0
    for _ in range(3):
        headers, body = stream_request(events=4)
        sent_in += len(body)
        _, answer = await fetch(proxy.url + "/chat/completions", b"POST", headers, body)
        sent_out += len(answer)
    _, answer = await fetch(proxy.url + "/v1/models")
    sent_out += len(answer)
    limited, answer = await fetch(
        proxy.url + "/chat/completions", headers={"x-fake-status": "429"}
    )
    assert limited.code == 429
    sent_out += len(answer)
    # An upstream that resets mid-stream: the client gets a cut answer.
    headers, body = stream_request(events=2, mode="reset", interval=0.02)
    sent_in += len(body)
    _, cut = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(cut.done)
    assert not cut.complete
    sent_out += len(cut.body)
    # A client that leaves while the answer streams.
    headers, body = stream_request(events=1, mode="stall")
    sent_in += len(body)
    response, gone = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await until(lambda: gone.body.endswith(b"\n\n"))
    sent_out += len(gone.body)
    assert gone.transport is not None
    gone.transport.loseConnection()
    await until(lambda: len(proxy.service._inflight) == 0)
    found = await scrape(proxy)

    assert requests_of(found, "POST", "chat_completions", "2xx") == 5
    assert requests_of(found, "GET", "models", "2xx") == 1
    assert requests_of(found, "GET", "chat_completions", "4xx") == 1
    assert found[("copilot_proxy_rate_limited_total", (("by", "upstream"),))] == 1
    assert found[("copilot_proxy_rate_limited_total", (("by", "proxy"),))] == 0
    assert found[("copilot_proxy_upstream_errors_total", (("kind", "error"),))] == 1
    assert found[("copilot_proxy_upstream_errors_total", (("kind", "timeout"),))] == 0
    assert found[("copilot_proxy_client_disconnects_total", ())] == 1
    assert found[("copilot_proxy_request_outcomes_total", (("outcome", "complete"),))] == 5
    assert found[("copilot_proxy_request_body_bytes_total", ())] == sent_in
    assert found[("copilot_proxy_response_body_bytes_total", ())] == sent_out
    chat = (("route", "chat_completions"),)
    assert found[("copilot_proxy_upstream_first_byte_seconds_count", chat)] == 6
    assert found[("copilot_proxy_request_duration_seconds_count", chat)] == 6
    models = (("route", "models"),)
    assert found[("copilot_proxy_request_duration_seconds_count", models)] == 1
    assert found[("copilot_proxy_in_flight", ())] == 0
    # The admin pages themselves are not counted as relayed requests.
    assert not any(labels and ("route", "other") in labels for _, labels in found)


@pytest_twisted.ensureDeferred
async def test_metric_labels_stay_bounded(proxy: Proxy, upstream: Upstream) -> None:
    await fetch(proxy.url + "/secret-path-abc123/models-xyz?key=sk-123")
    await fetch(proxy.url + "/models/gpt-4o-secret-id/policy", b"POST", body=b"{}")
    _, text = await fetch(proxy.url + "/_proxy/metrics")
    for leaked in (b"abc123", b"xyz", b"sk-123", b"gpt-4o-secret-id", ACCEPTED_TOKEN.encode()):
        assert leaked not in text
    found = samples(text.decode())
    assert requests_of(found, "GET", "other", "2xx") == 1
    assert requests_of(found, "POST", "models", "2xx") == 1


def test_route_groups_of_known_paths() -> None:
    assert route_group(b"/chat/completions?x=1") == "chat_completions"
    assert route_group(b"/v1/chat/completions") == "chat_completions"
    assert route_group(b"/v1/messages") == "messages"
    assert route_group(b"/v1/messages/count_tokens") == "count_tokens"
    assert route_group(b"/models/") == "models"
    assert route_group(b"/models/gpt-4o/policy") == "models"
    assert route_group(b"/embeddings") == "embeddings"
    assert route_group(b"/") == "other"


_ROUTE_NAMES = {
    "chat_completions",
    "completions",
    "embeddings",
    "models",
    "responses",
    "messages",
    "count_tokens",
    "other",
}


@given(st.binary(max_size=200))
def test_route_group_is_always_one_of_a_few_names(uri: bytes) -> None:
    assert route_group(uri) in _ROUTE_NAMES


@given(st.binary(max_size=20), st.integers(min_value=-1000, max_value=10_000))
def test_method_and_status_labels_are_bounded(method: bytes, code: int) -> None:
    assert method_label(method) in {
        "GET",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "HEAD",
        "OPTIONS",
        "other",
    }
    assert status_class(code) in {"1xx", "2xx", "3xx", "4xx", "5xx", "other"}


# Access log fields -----------------------------------------------------------


def test_model_is_read_from_small_and_large_json_bodies() -> None:
    small = json.dumps({"messages": [], "model": "gpt-4o"}).encode()
    assert model_from_body(small, b"application/json") == "gpt-4o"
    assert model_from_body(small, None) == "gpt-4o"
    large = json.dumps({"model": "claude-sonnet-4", "messages": ["x" * PARSE_LIMIT]}).encode()
    assert len(large) > PARSE_LIMIT
    assert model_from_body(large, b"application/json; charset=utf-8") == "claude-sonnet-4"


def test_model_is_absent_when_not_json_or_not_a_model_id() -> None:
    assert model_from_body(b'{"model":"gpt-4o"}', b"text/plain") is None
    assert model_from_body(b"not json", b"application/json") is None
    assert model_from_body(b'["model"]', b"application/json") is None
    assert model_from_body(b'{"model":"a b\\n injected"}', b"application/json") is None
    assert model_from_body(b'{"model": 3}', b"application/json") is None


@pytest_twisted.ensureDeferred
async def test_access_line_carries_request_id_model_and_outcome(
    proxy: Proxy, log_events: list[dict[str, Any]]
) -> None:
    headers, body = stream_request(events=2)
    await fetch(proxy.url + "/chat/completions?api-version=secret-value", b"POST", headers, body)
    await fetch(proxy.url + "/models")
    access = [e for e in log_events if e.get("log_namespace") == "copilot_proxy.access"]
    assert len(access) == 2
    chat, models = access
    assert chat["model"] == "gpt-4o"
    assert chat["status"] == 200
    assert chat["outcome"] == "complete"
    assert chat["path"] == "/chat/completions?api-version"
    assert chat["client_key"] == "-"
    assert isinstance(chat["ttfb_s"], float)
    assert chat["bytes_in"] == len(body)
    assert len(chat["request_id"]) == 32
    assert chat["request_id"] != models["request_id"]
    assert models["model"] == "-"
    for event in access:
        assert ACCEPTED_TOKEN not in repr(event)
        assert "secret-value" not in repr(event)


# With client keys ----------------------------------------------------------

_KEY = "sk-ops-0123456789abcdef00"


@pytest_twisted.ensureDeferred
async def test_with_client_keys_metrics_need_a_key_but_health_does_not(
    make_proxy: Any, upstream: Upstream
) -> None:
    from copilot_proxy.access import AccessConfig, parse_keys_env, parse_rate

    proxy = make_proxy(
        upstream.url,
        access=AccessConfig(env_keys=tuple(parse_keys_env(_KEY)), rate=parse_rate("1/min")),
    )
    response, _ = await fetch(proxy.url + "/_proxy/healthz")
    assert response.code == 200
    for headers in ({}, {"Authorization": "Bearer sk-wrong-0123456789abcdef"}):
        response, body = await fetch(proxy.url + "/_proxy/metrics", headers=headers)
        assert response.code == 401
        assert json.loads(body)["error"]["code"] == "invalid_api_key"
    # One request without a key (refused, 401), two with (the second over
    # the rate limit, 429 from the proxy itself).
    await fetch(proxy.url + "/models")
    key = {"Authorization": f"Bearer {_KEY}"}
    first, _ = await fetch(proxy.url + "/models", headers=key)
    second, _ = await fetch(proxy.url + "/models", headers=key)
    assert (first.code, second.code) == (200, 429)
    response, text = await fetch(proxy.url + "/_proxy/metrics", headers=key)
    assert response.code == 200
    found = samples(text.decode())
    assert requests_of(found, "GET", "models", "2xx") == 1
    assert requests_of(found, "GET", "models", "4xx") == 2
    assert found[("copilot_proxy_request_outcomes_total", (("outcome", "refused"),))] == 2
    assert found[("copilot_proxy_rate_limited_total", (("by", "proxy"),))] == 1
    assert found[("copilot_proxy_rate_limited_total", (("by", "upstream"),))] == 0
    assert _KEY.encode() not in text
    assert len(upstream.fake.received) == 1
