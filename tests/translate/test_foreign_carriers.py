"""
A client that switches models keeps in its history the reasoning this proxy
gave it for another endpoint; what each codec does with it when the body goes
to its own endpoint untranslated.  The carriers here are made by the codecs
themselves, as a client would have been handed them.
"""

from __future__ import annotations

from typing import Any

from copilot_proxy.translate import (
    Answer,
    ChatCodec,
    MessagesCodec,
    Reasoning,
    ResponsesCodec,
    Text,
)

JSON = dict[str, Any]

RESPONSES = ResponsesCodec()
MESSAGES = MessagesCodec()

#: A reasoning item as Copilot's /responses issues it.
COPILOT_ITEM: JSON = {
    "type": "reasoning",
    "id": "rs_copilot",
    "summary": [],
    "encrypted_content": "gAAAAcopilot",
}
#: A thinking block as Claude signs it.
CLAUDE_BLOCK: JSON = {"type": "thinking", "thinking": "Hm.", "signature": "EqQBCkYIBRgCKkA"}


def _answer(reasoning: Reasoning) -> Answer:
    return Answer(id="a", model="m", parts=[reasoning, Text("Hi.")])


def _responses_output(reasoning: Reasoning) -> list[JSON]:
    """The output items a Responses client got for an answer with this reasoning."""
    output: list[JSON] = RESPONSES.encode_answer(_answer(reasoning), "m")["output"]
    return output


def _messages_content(reasoning: Reasoning) -> list[JSON]:
    """The content blocks a Messages client got for an answer with this reasoning."""
    content: list[JSON] = MESSAGES.encode_answer(_answer(reasoning), "m")["content"]
    return content


def test_claude_thinking_given_to_a_responses_client_does_not_go_to_responses() -> None:
    # A Codex session on claude-sonnet-4.6 (translated), then on gpt-5.4
    # (passthrough): Copilot cannot verify these items and refuses the turn.
    signed = _responses_output(Reasoning(text="Hm.", signature="EqQBCkYIBRgCKkA"))
    redacted = _responses_output(Reasoning(redacted="EmwKAhgB"))
    history = [
        {"role": "user", "content": "hi"},
        *signed,
        *redacted,
        COPILOT_ITEM,
        {"role": "user", "content": "again"},
    ]
    body = {"model": "gpt-5.4", "input": history, "tools": [{"type": "web_search"}]}

    own = RESPONSES.without_foreign_carriers(body)

    assert own is not None
    reasoning = [i for i in own["input"] if i.get("type") == "reasoning"]
    assert reasoning == [COPILOT_ITEM]
    assert [i for i in own["input"] if i.get("type") != "reasoning"] == [
        i for i in history if i.get("type") != "reasoning"
    ]
    assert own["tools"] == body["tools"] and own["model"] == "gpt-5.4"


def test_a_responses_item_whose_id_came_late_goes_as_that_item() -> None:
    item = dict(COPILOT_ITEM, id="rs_streamed", encrypted_content="gAAAAcopilot@rs_copilot")
    own = RESPONSES.without_foreign_carriers({"model": "gpt-5.4", "input": [item]})
    assert own is not None and own["input"] == [COPILOT_ITEM]


def test_a_responses_body_without_carriers_is_left_alone() -> None:
    body: JSON = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}, COPILOT_ITEM]}
    assert RESPONSES.without_foreign_carriers(body) is None
    assert RESPONSES.without_foreign_carriers({"model": "gpt-5.4", "input": "hi"}) is None


def test_responses_reasoning_given_to_a_messages_client_does_not_go_to_claude() -> None:
    # An Anthropic client on gpt-5.4 (translated), then on a Claude model
    # (native): "Invalid signature in thinking block".
    carried = _messages_content(Reasoning(encrypted="gAAAAcopilot", item_id="rs_copilot"))
    assert "@" in carried[0]["signature"]
    only_thinking = [carried[0]]
    body = {
        "model": "claude-sonnet-4.6",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": carried},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": only_thinking},
            {"role": "user", "content": "and"},
            {"role": "assistant", "content": [CLAUDE_BLOCK, {"type": "text", "text": "Ok."}]},
            {"role": "user", "content": "more"},
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }

    own = MESSAGES.without_foreign_carriers(body)

    assert own is not None
    assert own["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": carried[1:]},
        {"role": "user", "content": "again"},
        {"role": "user", "content": "and"},
        {"role": "assistant", "content": [CLAUDE_BLOCK, {"type": "text", "text": "Ok."}]},
        {"role": "user", "content": "more"},
    ]
    assert own["thinking"] == body["thinking"]


def test_a_messages_body_with_claude_thinking_only_is_left_alone() -> None:
    body = {
        "model": "claude-sonnet-4.6",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": _messages_content(Reasoning("Hm.", "EqQBCkYI"))},
            {"role": "user", "content": [{"type": "text", "text": "mail me@example.com"}]},
        ],
    }
    assert MESSAGES.without_foreign_carriers(body) is None


def test_chat_bodies_go_as_they_came() -> None:
    body = {
        "model": "claude-sonnet-4.6",
        "messages": [{"role": "assistant", "content": "x", "reasoning_opaque": "gAAAA@rs_1"}],
    }
    assert ChatCodec().without_foreign_carriers(body) is None
