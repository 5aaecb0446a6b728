"""
L{UsageTap} reads the usage of every answer shape Copilot sends, streamed or
not, from the head and tail of the upstream body alone: the same counts
however the body is chunked, nothing raised whatever the bytes.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st

from copilot_proxy.testing._fake_messages import native_events, native_message
from copilot_proxy.testing._fake_responses import plan_turn, response_body, response_events
from copilot_proxy.testing._fake_rules import (
    Tokens,
    anthropic_usage,
    copilot_usage,
    openai_usage,
)
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN, TOOL_SCRIPT, chunk_event
from copilot_proxy.translate import UsageCounts, UsageTap

from .._helpers import Upstream, send, timeout
from ._clients import split

JSON = dict[str, Any]

#: A text delta big enough to need many of them for a long answer.
_KILOBYTE = "word " * 200


def _counts(body: bytes, chunk: int = 0, **sizes: int) -> UsageCounts | None:
    """What a tap fed C{body} (in pieces of C{chunk} bytes, or whole) reads."""
    tap = UsageTap(**sizes)
    step = chunk or max(1, len(body))
    for at in range(0, len(body), step):
        tap.feed(body[at : at + step])
    return tap.counts()


def _data(obj: JSON) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _nano(model: str, tokens: Tokens) -> int:
    return int(copilot_usage(model, tokens)["total_nano_aiu"])


def _chat_chunk(delta: JSON | None, **fields: Any) -> JSON:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices, **fields}


def _chat_stream(tokens: Tokens, model: str, texts: list[str], usage_nulls: bool = True) -> bytes:
    """A chat stream: C{"usage": null} on each chunk (as OpenAI sends), then usage."""
    nulls = {"usage": None} if usage_nulls else {}
    out = b"".join(_data(_chat_chunk({"content": text}, **nulls)) for text in texts)
    out += _data(_chat_chunk({}, copilot_usage=copilot_usage(model, tokens), **nulls))
    out += _data(_chat_chunk(None, usage=openai_usage(tokens)))
    return out + b"data: [DONE]\n\n"


def _turn(deltas: list[str], **payload: Any) -> Any:
    return plan_turn({"model": "gpt-5.4", **payload}, deltas, None, reasons=True)


# Chat Completions ------------------------------------------------------------


def test_chat_body_counts_prompt_cached_completion_reasoning_and_cost() -> None:
    tokens = Tokens(input=120, output=40, cached=100, reasoning=25)
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}}],
        "usage": openai_usage(tokens),
        "copilot_usage": copilot_usage("gemini-3.1-pro-preview", tokens),
    }
    assert _counts(json.dumps(body).encode()) == UsageCounts(
        120, 100, 40, 25, _nano("gemini-3.1-pro-preview", tokens)
    )


def test_chat_stream_counts_the_usage_only_final_chunk() -> None:
    tokens = Tokens(input=30, output=9, cached=4, reasoning=2)
    body = _chat_stream(tokens, "gemini-3.1-pro-preview", ["Hel", "lo"])
    assert _counts(body, chunk=7) == UsageCounts(
        30, 4, 9, 2, _nano("gemini-3.1-pro-preview", tokens)
    )


def test_chat_stream_without_usage_counts_its_cost_records_tokens() -> None:
    tokens = Tokens(5, 3)
    out = _data(_chat_chunk({"content": "Hi"}))
    out += _data(_chat_chunk({}, copilot_usage=copilot_usage("claude-sonnet-4", tokens)))
    assert _counts(out + b"data: [DONE]\n\n") == UsageCounts(
        5, 0, 3, 0, nano_aiu=_nano("claude-sonnet-4", tokens)
    )


def test_chat_tool_script_usage_is_read() -> None:
    body = b"".join(_data(chunk) for chunk in TOOL_SCRIPT) + b"data: [DONE]\n\n"
    assert _counts(body, chunk=13) == UsageCounts(12, 2, 7, 0, 0)


def test_chat_stream_of_200_kilobytes_counts_the_usage_in_its_tail() -> None:
    tokens = Tokens(input=1000, output=200, cached=800)
    body = _chat_stream(tokens, "gpt-5.2", [_KILOBYTE] * 200)
    assert len(body) > 200_000
    assert _counts(body, chunk=1500) == UsageCounts(1000, 800, 200, 0, _nano("gpt-5.2", tokens))


def test_chat_stream_with_no_usage_at_all_counts_nothing() -> None:
    body = b"".join(chunk_event(i, "tok ") for i in range(50)) + b"data: [DONE]\n\n"
    assert _counts(body, chunk=64) is None


# Responses ---------------------------------------------------------------------


def test_responses_body_counts_its_usage() -> None:
    turn = _turn(["Hello"])
    body = json.dumps(response_body(turn)).encode()
    assert _counts(body) == UsageCounts(
        12, 2, turn.tokens.output, 8, _nano("gpt-5.4", turn.tokens)
    )


def test_responses_body_counts_its_usage_before_a_large_echo_of_tools() -> None:
    """The usage comes before instructions and tools echoed far past the tail."""
    tools = [
        {"type": "function", "name": f"tool_{i}", "description": _KILOBYTE, "parameters": {}}
        for i in range(60)
    ]
    turn = _turn(["Hello"], instructions=_KILOBYTE * 20, tools=tools, tool_choice="none")
    body = json.dumps(response_body(turn)).encode()
    assert len(body) > 70_000 and body.index(b'"usage"') < len(body) - 70_000
    assert _counts(body, chunk=4096) == UsageCounts(
        12, 2, turn.tokens.output, 8, _nano("gpt-5.4", turn.tokens)
    )


@pytest.mark.parametrize("terminal", ["completed", "incomplete", "failed"])
def test_responses_stream_counts_its_terminal_event(terminal: str) -> None:
    turn = _turn(["Hel", "lo"])
    body = b"".join(response_events(turn, terminal))
    assert b'"usage": null' in body  # response.created and in_progress carry none
    assert _counts(body, chunk=100) == UsageCounts(
        12, 2, turn.tokens.output, 8, _nano("gpt-5.4", turn.tokens)
    )


@pytest.mark.parametrize("terminal", ["error", "none"])
def test_responses_stream_without_a_usage_bearing_end_counts_nothing(terminal: str) -> None:
    body = b"".join(response_events(_turn(["Hel", "lo"]), terminal))
    assert _counts(body, chunk=100) is None


def test_responses_stream_of_200_kilobytes_counts_its_terminal_event() -> None:
    turn = _turn([_KILOBYTE] * 200)
    body = b"".join(response_events(turn))
    assert len(body) > 200_000
    expected = UsageCounts(12, 2, turn.tokens.output, 8, _nano("gpt-5.4", turn.tokens))
    assert _counts(body, chunk=1024) == expected


def test_responses_terminal_event_longer_than_the_tail_is_read_whole() -> None:
    """The terminal event echoes the response, instructions and tools after its usage."""
    tools = [
        {"type": "function", "name": f"tool_{i}", "description": _KILOBYTE, "parameters": {}}
        for i in range(40)
    ]
    turn = _turn([_KILOBYTE] * 20, instructions=_KILOBYTE * 20, tools=tools, tool_choice="none")
    body = b"".join(response_events(turn))
    assert body.rindex(b'"usage": {') < len(body) - 60_000
    expected = UsageCounts(12, 2, turn.tokens.output, 8, _nano("gpt-5.4", turn.tokens))
    assert _counts(body, chunk=1000) == expected
    # An event longer than whole is not kept whole: then only the tail is
    # read, where the cost record's token details still say all but reasoning.
    assert _counts(body, chunk=1000, whole=50_000) == UsageCounts(
        12, 2, turn.tokens.output, 0, _nano("gpt-5.4", turn.tokens)
    )


def test_a_tool_schema_property_named_usage_is_not_usage() -> None:
    schema = {
        "type": "object",
        "properties": {"usage": {"type": "object", "properties": {"input_tokens": {}}}},
    }
    tools = [{"type": "function", "name": "meter", "parameters": schema}]
    turn = _turn(["Hi"], tools=tools, tool_choice="none")
    body = b"".join(response_events(turn))
    expected = UsageCounts(12, 2, turn.tokens.output, 8, _nano("gpt-5.4", turn.tokens))
    assert _counts(body, chunk=50, head=256, tail=512) == expected


# Anthropic Messages ------------------------------------------------------------


def test_messages_body_adds_cache_reads_and_writes_to_input() -> None:
    tokens = Tokens(input=50, output=10, cached=30, reasoning=4)
    usage = {**anthropic_usage(tokens), "cache_creation_input_tokens": 7}
    body = {
        "type": "message",
        "content": [],
        "usage": usage,
        "copilot_usage": {"total_nano_aiu": 9},
    }
    assert _counts(json.dumps(body).encode()) == UsageCounts(57, 30, 10, 4, 9)


def test_messages_body_from_the_fake_is_counted() -> None:
    payload = {
        "model": "claude-sonnet-4.6",
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }
    message = native_message(payload, "tools")
    usage = message["usage"]
    assert _counts(json.dumps(message).encode()) == UsageCounts(
        3, 0, usage["output_tokens"], 3, message["copilot_usage"]["total_nano_aiu"]
    )


def _message_delta(usage: JSON, cost: int) -> JSON:
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    return {
        "type": "message_delta",
        "delta": delta,
        "usage": usage,
        "copilot_usage": {"total_nano_aiu": cost},
    }


def _anthropic_stream(start_usage: JSON, texts: list[str], final_usage: JSON, cost: int) -> bytes:
    def event(data: JSON) -> bytes:
        return f"event: {data['type']}\n".encode() + _data(data)

    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    out = event({"type": "message_start", "message": {**message, "usage": start_usage}})
    out += event({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    for text in texts:
        delta = {"type": "text_delta", "text": text}
        out += event({"type": "content_block_delta", "index": 0, "delta": delta})
    out += event({"type": "content_block_stop", "index": 0})
    out += event(_message_delta(final_usage, cost))
    return out + event({"type": "message_stop"})


_START = {
    "input_tokens": 20,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 100,
    "output_tokens": 1,
}
_FINAL = {"output_tokens": 77, "output_tokens_details": {"thinking_tokens": 30}}


def test_messages_stream_takes_input_from_message_start_and_output_from_message_delta() -> None:
    body = _anthropic_stream(_START, ["Hi"], _FINAL, 5)
    assert _counts(body, chunk=9) == UsageCounts(125, 100, 77, 30, 5)


def test_messages_stream_of_200_kilobytes_joins_its_head_and_tail() -> None:
    body = _anthropic_stream(_START, [_KILOBYTE] * 200, _FINAL, 5)
    assert len(body) > 200_000
    assert _counts(body, chunk=2000) == UsageCounts(125, 100, 77, 30, 5)


def test_messages_stream_input_repeated_in_message_delta_is_the_one_counted() -> None:
    final = {**_FINAL, "input_tokens": 21, "cache_read_input_tokens": 101}
    body = _anthropic_stream(_START, [_KILOBYTE] * 50, final, 5)
    assert _counts(body, chunk=2000) == UsageCounts(127, 101, 77, 30, 5)


def test_messages_stream_from_the_fake_is_counted() -> None:
    payload = {"model": "claude-sonnet-4.6", "thinking": {"type": "adaptive"}}
    events = native_events(payload, 40)
    final = json.loads(events[-2].split(b"data: ", 1)[1])
    expected = UsageCounts(
        3, 0, final["usage"]["output_tokens"], 3, final["copilot_usage"]["total_nano_aiu"]
    )
    assert _counts(b"".join(events), chunk=33, head=2048, tail=1024) == expected


# Cut tails, text that mentions usage, and garbage --------------------------------


def test_a_tail_that_begins_inside_an_event_does_not_matter() -> None:
    tokens = Tokens(input=30, output=9, cached=4)
    body = _chat_stream(tokens, "gpt-4o", [_KILOBYTE] * 30)
    usage_event = len(body) - body.rindex(b"data: {")
    for tail in range(usage_event, usage_event + 3000, 37):
        # The tail alone, cut wherever it falls.
        assert _counts(body, chunk=333, tail=tail, whole=0) == UsageCounts(30, 4, 9, 0, 0)
    for tail in range(len(b"data: [DONE]\n\n") + 1, usage_event):
        # The event the tail begins in is kept whole.
        assert _counts(body, chunk=333, tail=tail) == UsageCounts(30, 4, 9, 0, 0)
    # Not kept whole, an event cut inside its usage key does not count.
    inside_key = len(body) - body.rindex(b'"usage": {') - 1
    assert _counts(body, chunk=333, tail=inside_key, whole=0) is None


def test_usage_written_inside_text_is_not_counted() -> None:
    said = json.dumps({"usage": {"prompt_tokens": 999, "completion_tokens": 999}})
    mention = {"copilot_usage": {"total_nano_aiu": 999}, "usage": {"input_tokens": 999}}
    texts = [said, ', "usage": {"prompt_tokens": 998}', json.dumps(mention)]
    body = b"".join(_data(_chat_chunk({"content": text})) for text in texts)
    assert b'\\"usage\\": {' in body
    assert _counts(body) is None
    tokens = Tokens(3, 2)
    assert _counts(body + _data(_chat_chunk(None, usage=openai_usage(tokens)))) == UsageCounts(
        3, 0, 2, 0, 0
    )


def test_bad_counts_are_ignored() -> None:
    usage = {
        "prompt_tokens": -5,
        "completion_tokens": True,
        "prompt_tokens_details": {"cached_tokens": 2.0},
        "completion_tokens_details": {"reasoning_tokens": "7"},
    }
    assert _counts(json.dumps({"usage": usage}).encode()) is None
    usage["completion_tokens"] = 4
    body = {"usage": usage, "copilot_usage": {"total_nano_aiu": 10**30}}
    assert _counts(json.dumps(body).encode()) == UsageCounts(output_tokens=4)


def test_null_usage_and_zero_cost_are_told_apart() -> None:
    assert _counts(b'{"usage": null, "copilot_usage": null}') is None
    assert _counts(b'{"usage": null, "copilot_usage": {"total_nano_aiu": 0}}') == UsageCounts()


def test_only_the_top_level_usage_of_a_body_counts() -> None:
    tool_use = {
        "type": "tool_use",
        "id": "t",
        "name": "n",
        "input": {"usage": {"input_tokens": 9}},
    }
    body = {"type": "message", "content": [tool_use]}
    assert _counts(json.dumps(body).encode()) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n\n  ",
        b'{"usage": ' * 5000,
        b"[" * 100_000,
        b'data: {"usage": ' + b"[" * 100_000 + b"\n\n",
        b'{"usage": {"prompt_tokens": 1' + b"0" * 10_000 + b"}}",
        b'data: {"usage": {"prompt_tokens": 1' + b"0" * 10_000 + b"}}\n\n",
        b'{"usage": {"input_tokens": 3}, "x": "\xff\xfe"}',
        gzip.compress(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 1}}'),
    ],
)
def test_garbage_gives_nothing_or_the_best_it_can(body: bytes) -> None:
    assert _counts(body, chunk=1000) in (None, UsageCounts(input_tokens=3))


# Properties ----------------------------------------------------------------------

_PAYLOAD = {"model": "claude-sonnet-4.6", "thinking": {"type": "enabled", "budget_tokens": 1024}}
_BODIES = [
    _chat_stream(Tokens(30, 9, 4, 2), "gemini-3.1-pro-preview", ["Hel", "lo"] * 40),
    b"".join(_data(chunk) for chunk in TOOL_SCRIPT),
    b"".join(response_events(_turn(["Hel", "lo"] * 40))),
    json.dumps(response_body(_turn(["Hi"]))).encode(),
    b"".join(native_events(_PAYLOAD, 60, None)),
    json.dumps(native_message(_PAYLOAD)).encode(),
    _anthropic_stream(_START, ["Hi"] * 80, _FINAL, 5),
]


@given(
    body=st.sampled_from(_BODIES),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=40),
    head=st.integers(min_value=0, max_value=3000),
    tail=st.integers(min_value=0, max_value=3000),
    whole=st.sampled_from([0, 500, 2000, 1 << 20]),
)
def test_any_chunking_of_a_body_gives_the_same_counts(
    body: bytes, cuts: list[int], head: int, tail: int, whole: int
) -> None:
    at_once = UsageTap(head=head, tail=tail, whole=whole)
    at_once.feed(body)
    tap = UsageTap(head=head, tail=tail, whole=whole)
    for piece in split(body, cuts):
        tap.feed(piece)
    assert tap.counts() == at_once.counts()


@given(body=st.sampled_from(_BODIES), cuts=st.lists(st.integers(0, 400), max_size=40))
def test_default_sizes_read_every_shape(body: bytes, cuts: list[int]) -> None:
    tap = UsageTap()
    for piece in split(body, cuts):
        tap.feed(piece)
    counts = tap.counts()
    assert counts is not None and counts.output_tokens > 0


@given(
    body=st.one_of(
        st.binary(max_size=3000),
        st.builds(
            lambda real, at, junk: real[:at] + junk + real[at:],
            st.sampled_from(_BODIES),
            st.integers(0, 20_000),
            st.binary(max_size=200),
        ),
        st.lists(
            st.sampled_from(
                [
                    *(b'{"usage":', b'"copilot_usage": ', b'"prompt_tokens": ', b"data: "),
                    *(b"{", b"}", b",", b"null", b'"', b"\\", b"1", b"\n", b"\r", b"\n\n"),
                ]
            ),
            max_size=200,
        ).map(b"".join),
    ),
    cuts=st.lists(st.integers(0, 300), max_size=20),
    tail=st.integers(0, 500),
    whole=st.sampled_from([0, 1000, 1 << 20]),
)
def test_arbitrary_bytes_never_raise(body: bytes, cuts: list[int], tail: int, whole: int) -> None:
    tap = UsageTap(head=tail, tail=tail, whole=whole)
    at_once = UsageTap(head=tail, tail=tail, whole=whole)
    at_once.feed(body)
    for piece in split(body, cuts):
        tap.feed(piece)
    counts = tap.counts()
    assert counts is None or isinstance(counts, UsageCounts)
    assert counts == at_once.counts()


# Through the real fake, over a socket ------------------------------------------------

_COPILOT = {
    "authorization": f"Bearer {ACCEPTED_TOKEN}",
    "copilot-integration-id": "vscode-chat",
    "editor-version": "vscode/1.124.2",
    "editor-plugin-version": "copilot-chat/0.52.0",
    "content-type": "application/json",
}


@pytest_twisted.ensureDeferred
async def test_taps_over_the_fakes_answers_add_up_to_its_totals(upstream: Upstream) -> None:
    asks: list[tuple[str, JSON, dict[str, str]]] = [
        ("/chat/completions", {"model": "gpt-5.2", "messages": []}, {}),
        (
            "/chat/completions",
            {"model": "gpt-5.2", "stream": True, "stream_options": {"include_usage": True}},
            {"x-fake-events": "300", "x-fake-bytes": "900", "x-fake-split": "1"},
        ),
        ("/responses", {"model": "gpt-5.4", "input": "hi"}, {}),
        ("/responses", {"model": "gpt-5.4", "stream": True}, {"x-fake-events": "250"}),
        ("/v1/messages", {"model": "claude-sonnet-4.6", "messages": []}, {}),
        (
            "/v1/messages",
            {"model": "claude-sonnet-4.6", "stream": True, "thinking": {"type": "adaptive"}},
            {"x-fake-events": "3000", "x-fake-split": "1"},
        ),
    ]
    read: dict[str, list[UsageCounts]] = {}
    for path, body, shape in asks:
        body.setdefault("messages", [{"role": "user", "content": "hi"}])
        headers = {**_COPILOT, **shape}
        response, collector = await send(
            upstream.url + path, b"POST", headers, json.dumps(body).encode()
        )
        tap = UsageTap()
        await timeout(collector.done)
        assert response.code == 200 and collector.complete
        for chunk in collector.chunks:
            tap.feed(chunk)
        counts = tap.counts()
        assert counts is not None, path
        read.setdefault(body["model"], []).append(counts)
    assert len(collector.body) > 100_000
    for model, counted in read.items():
        totals = upstream.fake.usage_totals[model]
        assert totals.answers == len(counted)
        assert totals.input == sum(c.input_tokens for c in counted)
        assert totals.cached == sum(c.cached_tokens for c in counted)
        assert totals.output == sum(c.output_tokens for c in counted)
        assert totals.reasoning == sum(c.reasoning_tokens for c in counted)
        assert totals.nano_aiu == sum(c.nano_aiu for c in counted) > 0
