"""
The request headers the Copilot API expects from an editor integration.

The Copilot API refuses requests that do not look like they come from an
editor plugin, and answers 466 to version headers it considers too old.  The
defaults live here, in one place, and every one of them can be replaced with
C{--header 'Name: value'}; a header the client set itself wins over both,
except C{Authorization}, which is always the proxy's, and C{User-Agent}, which
every HTTP library sets without meaning anything about Copilot.

Two headers depend on the request body: C{X-Initiator} decides whether a
request spends the user's premium-request quota (C{user}) or not (C{agent}),
and C{copilot-vision-request} must be present when a message carries an
image.  Both are computed from the JSON request body, which is small and
already in memory; the response is never looked at.

Pure: no I/O.  The values and their sources are in the project's notes on the
Copilot API (section 2).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.web.http_headers import Headers

# The 2026 values (the 2026 notes' 5.1 and 5.2): what the editor integration
# sent by mid-2026, with the API version that gives the tiered prices.
EDITOR_VERSION = "vscode/1.124.2"
PLUGIN_VERSION = "copilot-chat/0.52.0"
API_VERSION = "2026-06-01"

#: The headers sent unless the client or C{--header} says otherwise, as
#: (lower-case name, value).  The version headers are the ones that go stale.
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("copilot-integration-id", "vscode-chat"),
    ("editor-version", EDITOR_VERSION),
    ("editor-plugin-version", PLUGIN_VERSION),
    ("user-agent", "GitHubCopilotChat/0.52.0"),
    ("x-github-api-version", API_VERSION),
    ("openai-intent", "conversation-agent"),
    ("x-interaction-type", "conversation-agent"),
    ("x-vscode-user-agent-library-version", "electron-fetch"),
)

#: The headers whose values the Copilot API checks for staleness (466).
VERSION_HEADERS: tuple[str, ...] = (
    "editor-version",
    "editor-plugin-version",
    "x-github-api-version",
)

# Client headers that name a conversation: Claude Code's and Codex's.
_SESSION_HEADERS = (b"x-claude-code-session-id", b"session_id", b"session-id")

#: Headers no C{--header} may set: the proxy owns them.
RESERVED: frozenset[str] = frozenset(
    {"authorization", "host", "content-length", "transfer-encoding", "connection"}
)

# Every HTTP library sends a User-Agent of its own (curl/8, OpenAI/Python):
# that is no choice about Copilot, so the configured one always replaces it.
_REPLACED: frozenset[bytes] = frozenset({b"user-agent"})

_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})


class BodyError(ValueError):
    """
    A client body that is JSON but cannot be read: the client gets a 400
    with this message.
    """


def parse_json_body(body: bytes) -> object:
    """
    The JSON value of a request body, or L{None} when it is empty or not JSON.

    Callers parse at most once per request and pass the result around.

    @raise BodyError: when the body is nested too deeply to parse (Python's
        parser gives up with C{RecursionError}, which must never escape).
    """
    if not body or body[:1] not in (b"{", b"[", b" ", b"\n", b"\r", b"\t"):
        return None
    try:
        value: object = json.loads(body)
    except ValueError:
        return None
    except RecursionError:
        raise BodyError("the request body is JSON nested too deeply to read") from None
    return value


def _messages(payload: Mapping[str, Any]) -> Sequence[Any]:
    """The conversation: chat/completions and Messages C{messages}, Responses C{input}."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        return messages
    items = payload.get("input")
    if isinstance(items, list):
        return items
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    return ()


def _parts(message: object) -> list[Any]:
    if not isinstance(message, dict):
        return []
    content = message.get("content")
    return content if isinstance(content, list) else []


def initiator(payload: object) -> str:
    """
    C{user} when the last message is the user's own words, else C{agent}.

    Only C{user} requests spend premium requests.  A last message that is a
    tool result (an OpenAI C{tool} message, a Responses C{function_call_output}
    item, or a user message whose parts are all Anthropic C{tool_result}
    blocks) is the agent's loop going on, not a person asking.
    """
    if not isinstance(payload, dict):
        return "agent"
    messages = _messages(payload)
    if not messages:
        return "agent"
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return "agent"
    if last.get("type") not in (None, "message"):
        return "agent"
    content = last.get("content")
    if isinstance(content, list):
        if not content:
            return "agent"
        kinds = [part.get("type") if isinstance(part, dict) else None for part in content]
        if all(kind == "tool_result" for kind in kinds):
            return "agent"
    return "user"


def has_image(payload: object) -> bool:
    """Whether any message carries an image part (OpenAI, Anthropic or Responses shape)."""
    if not isinstance(payload, dict):
        return False
    for message in _messages(payload):
        for part in _parts(message):
            if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS:
                return True
            # Anthropic tool results may hold images too.
            if isinstance(part, dict) and part.get("type") == "tool_result":
                inner = part.get("content")
                if isinstance(inner, list) and any(
                    isinstance(p, dict) and p.get("type") == "image" for p in inner
                ):
                    return True
    return False


def parse_override(text: str) -> tuple[str, str]:
    """
    Parse one C{--header 'Name: value'} option.

    An empty value (C{'Name:'}) means "do not send this default".

    @raise ValueError: with a message for the user when the text is not a
        header line or names a header the proxy owns.
    """
    name, colon, value = text.partition(":")
    name = name.strip().lower()
    value = value.strip()
    if not colon or not name:
        raise ValueError(f"--header {text!r} must look like 'Name: value'")
    if not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name) or not name.isascii():
        raise ValueError(f"--header {text!r} has an invalid header name")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"--header {name!r} value must be one line")
    if name in RESERVED:
        raise ValueError(f"--header cannot set {name}: the proxy sets it")
    return name, value


@dataclass(frozen=True)
class BodyFacts:
    """
    What the Copilot headers need to know of a request body, read once: an
    exchange keeps these two facts, not the parsed body, which can be many
    times the size of the bytes.

    @ivar initiator: C{user} or C{agent} (see L{initiator}).
    @ivar vision: whether a message carries an image (see L{has_image}).
    """

    initiator: str = "agent"
    vision: bool = False

    @classmethod
    def of(cls, payload: object) -> BodyFacts:
        """The facts of a parsed JSON body (L{None} for none)."""
        return cls(initiator(payload), has_image(payload))


@dataclass(frozen=True)
class CopilotHeaders:
    """
    The Copilot headers for one proxy: defaults with the operator's overrides
    applied.

    @ivar fixed: (name, value) pairs added to every request whose client did
        not set that header.
    """

    fixed: tuple[tuple[bytes, bytes], ...] = field(
        default_factory=lambda: tuple((n.encode(), v.encode()) for n, v in DEFAULT_HEADERS)
    )
    new_request_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()), compare=False)

    @classmethod
    def with_overrides(cls, overrides: Iterable[tuple[str, str]]) -> CopilotHeaders:
        """The defaults, each replaced (or, with an empty value, removed) by an override."""
        values = dict(DEFAULT_HEADERS)
        for name, value in overrides:
            values[name.lower()] = value
        return cls(tuple((n.encode(), v.encode("latin-1")) for n, v in values.items() if v))

    def value(self, name: str) -> str | None:
        """The configured value of a fixed header, or L{None}."""
        wanted = name.lower().encode()
        for n, v in self.fixed:
            if n == wanted:
                return v.decode("latin-1")
        return None

    def apply(self, headers: Headers, payload: object, request_id: str | None = None) -> None:
        """
        Add the Copilot headers to C{headers}, which already holds what the
        client sent; a header present there is left alone, except
        C{User-Agent}, which every HTTP library sets.

        @param payload: the parsed JSON request body (L{parse_json_body}).
        @param request_id: the C{x-request-id} to send (the access log's id,
            so both ends can be matched); a fresh one when L{None}.
        """
        self.apply_facts(headers, BodyFacts.of(payload), request_id)

    def apply_facts(
        self, headers: Headers, facts: BodyFacts, request_id: str | None = None
    ) -> None:
        """L{apply}, from the facts of a body read earlier (see L{BodyFacts})."""
        for name, value in self.fixed:
            if name in _REPLACED or not headers.hasHeader(name):
                headers.setRawHeaders(name, [value])
        if not headers.hasHeader(b"x-request-id"):
            rid = request_id if request_id is not None else self.new_request_id()
            headers.setRawHeaders(b"x-request-id", [rid.encode("ascii")])
        if not headers.hasHeader(b"x-interaction-id"):
            # Stable per conversation, as the editor sends it, when the
            # client names its session (Claude Code, Codex).
            for name in _SESSION_HEADERS:
                session = headers.getRawHeaders(name)
                if session:
                    headers.setRawHeaders(b"x-interaction-id", [session[-1]])
                    break
        if not headers.hasHeader(b"x-agent-task-id"):
            # The editor sends its request id as the agent task id too.
            headers.setRawHeaders(b"x-agent-task-id", headers.getRawHeaders(b"x-request-id", []))
        if not headers.hasHeader(b"x-initiator"):
            headers.setRawHeaders(b"x-initiator", [facts.initiator.encode("ascii")])
        if facts.vision and not headers.hasHeader(b"copilot-vision-request"):
            headers.setRawHeaders(b"copilot-vision-request", [b"true"])

    def stale_version_message(self, upstream_text: str) -> str:
        """
        What to tell a user whose request got 466: which options to set.
        """
        current = ", ".join(f"{n}: {self.value(n) or '(unset)'}" for n in VERSION_HEADERS)
        example = " ".join(
            f"--header '{n}: {v}'"
            for n, v in (
                ("editor-version", "vscode/<newer>"),
                ("editor-plugin-version", "copilot-chat/<newer>"),
                ("x-github-api-version", "<newer date>"),
            )
        )
        said = upstream_text.strip()[:300]
        return (
            f"the Copilot API no longer accepts this proxy's version headers ({current})"
            + (f"; it said: {said}" if said else "")
            + f". Start copilot-proxy with newer values, e.g. {example}"
        )
