"""
A fake Copilot API on a real socket, for tests and for trying the proxy by
hand without a Copilot account::

    python -m copilot_proxy.testing.fake_upstream --port 9000

It behaves like the Copilot API of 2026 (C{../shared/notes/copilot-api-2026.md}
section 7 is the checklist), records every request it receives, and
misbehaves on request.

What it serves:
    - C{GET /models}: the 2026 catalog (L{MODELS}, entries in
      L{CATALOG_2026}), each model with its C{supported_endpoints} or none;
    - C{POST /chat/completions}: one C{chat.completion}, or with
      C{"stream": true} chat-completion chunks; C{usage} (OpenAI shape) and
      C{copilot_usage} on the answer and the last chunk;
    - C{POST /responses}: one C{response}, or the Responses event sequence
      (reasoning item, text deltas, function calls, a terminal event);
    - C{POST /v1/messages}: the native Anthropic surface, one C{message} or
      the event sequence (L{native_events}): thinking signed by the fake,
      text, tool use, C{copilot_usage};
    - C{POST .../embeddings}: an embedding list.

What it refuses, with the bodies the real service sends (L{_fake_rules}): a
model on an endpoint its catalog entry does not list (no list means Chat
Completions only) or a disabled or L{UNKNOWN_MODEL_IDS} model (400); a
C{reasoning_effort} on Chat Completions for a model that declares none; on
Responses, a C{safety_identifier} or C{prompt_cache_key} over 64 characters
and a reasoning item whose encrypted content it did not issue; on Messages,
a thinking block whose signature it did not issue, and assistant prefill.
Ids the catalog does not list at all are served everywhere, as by the 2025
fake.  Every 2xx carries the quota headers (C{rem} falling with each model
call), and every answer C{x-request-id} and C{x-github-request-id}.

It keeps, per model id, the totals of the usage its answers reported
(L{FakeUpstream.usage_totals}, each a L{UsageTotals}: answers, input tokens
with the cached ones, cached, output with reasoning, reasoning, and the sum
of C{copilot_usage.total_nano_aiu}), to check a usage ledger against.  A
body counts when it is sent; a stream when the event that carries its usage
is written (the last chunks of a chat stream, the terminal Responses event,
C{message_delta}), so a stream stalled, reset, ended by C{error} or cut off
before then counts nothing.  A chat stream not asked for
C{stream_options.include_usage} reports, and counts, only its
C{copilot_usage}; an embeddings answer counts its C{prompt_tokens}.

How each request is answered comes from C{x-fake-*} request headers (which a
proxy forwards like any other), so one running fake serves many test cases:

    - C{x-fake-events} (5), C{x-fake-interval} (seconds, 0), C{x-fake-bytes}
      (content bytes per event, 16): the shape of a stream (on Responses the
      number and size of its text deltas, on Messages their number);
    - C{x-fake-status}: answer this status with an OpenAI-style JSON error
      (and C{Retry-After: 7} for 429 and 503);
    - C{x-fake-mode}: C{hang} (never answer), C{stall} (send headers and
      C{x-fake-events} events, then nothing), C{reset} (send the events, then
      reset the connection), C{bulk} (C{x-fake-bytes} of body as fast as the
      client reads, with backpressure), C{echo} (a JSON description of the
      request), C{gzip} (the model list, gzip-compressed);
    - C{x-fake-content-type}: the stream's content type (C{text/event-stream});
    - C{x-fake-split}: write each event in two pieces, the pause between them
      falling inside the event;
    - C{x-fake-delay}: seconds before a C{GET /models} is answered;
    - C{x-fake-script: tools}: stream text, then a tool call whose arguments
      come in two pieces, C{finish_reason: tool_calls} and a usage-only chunk
      (L{TOOL_SCRIPT}), one event per C{x-fake-interval}; on Responses and
      Messages, one call even without C{tools} in the request;
      C{parallel-tools}: two calls in one turn (Responses, Messages);
    - C{x-fake-terminal}: how a Responses stream ends: C{completed},
      C{incomplete}, C{failed}, C{error} (an C{error} event) or C{none} (the
      body ends without a terminal event);
    - C{x-fake-refusal}: which endpoint refusal body to answer
      (C{unsupported}, C{responses-api}, C{model-not-supported}).

Like the real service, it answers 400 to a request that lacks the Copilot
editor headers (C{copilot-integration-id}, C{editor-version},
C{editor-plugin-version}) unless C{require_copilot_headers} is off.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from ._catalog_2026 import (
    CATALOG_2026,
    CHAT,
    MESSAGES,
    MODELS,
    RESPONSES,
    UNKNOWN_MODEL_IDS,
    catalog_entry,
    endpoints_of,
    serves,
    supports,
)
from ._fake_messages import (
    messages_refusal,
    native_events,
    native_message,
    native_reported,
    native_stream_text,
    thinking_signature,
)
from ._fake_responses import (
    ANSWER_TEXT,
    TERMINALS,
    encrypted_reasoning,
    plan_turn,
    reasoning_refusal,
    response_body,
    response_events,
)
from ._fake_rules import (
    REFUSAL_SHAPES,
    Reported,
    Tokens,
    UsageTotals,
    copilot_usage,
    endpoint_of_path,
    endpoint_refusal,
    identifier_refusal,
    openai_usage,
    parse_quota,
    quota_headers,
    reasoning_effort_refusal,
    reported,
)

__all__ = [
    "ACCEPTED_TOKEN",
    "CATALOG_2026",
    "COPILOT_HEADERS",
    "MODELS",
    "REFUSAL_SHAPES",
    "TERMINALS",
    "TOOL_SCRIPT",
    "UNKNOWN_MODEL_IDS",
    "FakeUpstream",
    "Received",
    "Reported",
    "Tokens",
    "UsageTotals",
    "catalog_entry",
    "chat_stream_text",
    "chunk_event",
    "encrypted_reasoning",
    "endpoints_of",
    "native_events",
    "native_stream_text",
    "parse_quota",
    "serves",
    "thinking_signature",
]

ACCEPTED_TOKEN = "fake-copilot-token"

#: Headers the fake insists on, as the Copilot API does.
COPILOT_HEADERS = ("copilot-integration-id", "editor-version", "editor-plugin-version")


@dataclass
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, list[str]]
    body: bytes
    peer_port: int = 0
    events_sent: int = 0
    finished: bool = False
    #: The status the fake answered (200 unless it refused or failed it).
    status: int = 200
    connection_lost: Deferred[None] = field(default_factory=Deferred, repr=False)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    @property
    def token(self) -> str | None:
        """The bearer token this request carried, if any."""
        value = self.header("authorization") or ""
        return value[len("Bearer ") :] if value.startswith("Bearer ") else None


class _Channel(HTTPChannel):
    """Tells the requests it carried when the connection goes away."""

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        self.carried: list[Received] = []

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        for received in self.carried:
            if not received.connection_lost.called:
                received.connection_lost.callback(None)


def chunk_event(index: int, content: str, model: str = "gpt-4o") -> bytes:
    """One C{chat.completion.chunk} server-sent event."""
    chunk = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def chat_stream_text(events: int = 5, size: int = 16) -> str:
    """The text a chat stream (and a Responses stream) tells for these shape headers."""
    return "".join(_content(i, size) for i in range(events))


def _final_chat_events(payload: dict[str, Any], events: int) -> tuple[bytes, Reported]:
    """
    The finishing chunk, with Copilot's C{copilot_usage}; a usage-only chunk
    when C{stream_options.include_usage} asks for one; C{[DONE]}.  And the
    usage they report.
    """
    model = str(payload.get("model", "gpt-4o"))
    tokens = Tokens(5, events)
    final = {
        **_script_chunk({}, "stop"),
        "id": "chatcmpl-fake",
        "copilot_usage": copilot_usage(model, tokens),
    }
    out = b"data: " + json.dumps(final).encode() + b"\n\n"
    options = payload.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True
    if with_usage:
        usage = {**_script_chunk(None), "id": "chatcmpl-fake", "usage": openai_usage(tokens)}
        out += b"data: " + json.dumps(usage).encode() + b"\n\n"
    return out + b"data: [DONE]\n\n", reported(model, tokens, with_usage)


def _piece_ending(frame: int, split: bool) -> int:
    """The index of the piece that ends frame C{frame} once L{_split} has run."""
    return 2 * frame + 1 if split else frame


def _split(frames: list[bytes], split: bool) -> list[tuple[bytes, bool]]:
    """Pacing pieces: each event whole, or in two with the cut inside it."""
    if not split:
        return [(frame, True) for frame in frames]
    pieces: list[tuple[bytes, bool]] = []
    for frame in frames:
        pieces += [(frame[:10], False), (frame[10:], True)]
    return pieces


@implementer(IPushProducer)
class _BulkBody:
    """Writes a large body only as fast as the connection drains."""

    def __init__(self, request: Request, total: int, fake: FakeUpstream) -> None:
        self._request = request
        self._left = total
        self._fake = fake
        self._paused = False
        self._block = b"x" * 65536

    def start(self) -> None:
        self._request.registerProducer(self, True)
        self._pump()

    def _pump(self) -> None:
        while not self._paused and self._left > 0:
            piece = self._block[: min(len(self._block), self._left)]
            self._left -= len(piece)
            self._fake.bulk_sent += len(piece)
            self._request.write(piece)
        if self._left == 0 and not self._paused:
            self._request.unregisterProducer()
            self._request.finish()
            self._left = -1

    def pauseProducing(self) -> None:
        self._paused = True
        self._fake.bulk_pauses += 1

    def resumeProducing(self) -> None:
        self._paused = False
        if self._left >= 0:
            self._pump()

    def stopProducing(self) -> None:
        self._left = -1


class _FakeResource(Resource):
    isLeaf = True

    def __init__(self, fake: FakeUpstream) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._fake = fake

    def render(self, request: Request) -> bytes | int:
        try:
            return self._fake.handle(request)
        except (TypeError, AttributeError, KeyError, ValueError) as e:
            # The real API answers a body of the wrong shape with a 400 (never
            # an HTML page): so does the fake, whatever part of it tripped.
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"application/json")
            error = {"message": f"invalid request body: {e}", "code": "invalid_request_body"}
            return json.dumps({"error": error}).encode()


class FakeUpstream:
    """
    The fake's state: what it received and how it answers.

    @ivar received: every request, in arrival order.
    @ivar require_token: when set, requests must carry
        C{Authorization: Bearer <it>} or get 401.
    @ivar accepted: when not L{None}, replaces C{require_token}: the tokens
        accepted, each until its expiry (POSIX seconds); a fake GitHub adds
        the tokens it hands out.
    @ivar bulk_sent: body bytes handed to the socket in C{bulk} mode.
    @ivar model_calls: model requests answered 2xx so far; the quota headers'
        C{rem} falls with each.
    @ivar usage_totals: per model id, the sum of the usage its answers
        reported (L{UsageTotals}), each answer counted once the bytes that
        carry its usage were written.
    """

    def __init__(
        self,
        reactor: Any,
        require_token: str | None = ACCEPTED_TOKEN,
        require_copilot_headers: bool = True,
    ) -> None:
        self.reactor = reactor
        self.require_token = require_token
        self.require_copilot_headers = require_copilot_headers
        self.accepted: dict[str, float] | None = None
        self.received: list[Received] = []
        self.bulk_sent = 0
        self.bulk_pauses = 0
        self.model_calls = 0
        self.usage_totals: dict[str, UsageTotals] = {}
        self._started = float(reactor.seconds())
        self._answers = 0
        self._arrivals: list[Deferred[Received]] = []
        # Bodies are recorded as sent: no form parsing (nor its 400s).
        self.site = Site(_FakeResource(self), reactor=reactor, parsePOSTFormSubmission=False)
        self.site.protocol = _Channel  # type: ignore[assignment]
        self.site.noisy = False
        self.site.log = lambda request: None  # type: ignore[method-assign]

    def next_request(self) -> Deferred[Received]:
        """Fires with the next request that arrives."""
        d: Deferred[Received] = Deferred()
        self._arrivals.append(d)
        return d

    # Answering ---------------------------------------------------------

    def handle(self, request: Request) -> bytes | int:
        received = self._record(request)
        self._stamp_ids(request, received)
        refused = self._gate(request, received)
        if refused is not None:
            return refused
        try:
            payload = json.loads(received.body) if received.body else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        endpoint = endpoint_of_path(received.path) if received.method == "POST" else None
        if endpoint is not None:
            refusal = self._refusal(received, endpoint, payload)
            if refusal is not None:
                return self._refuse(request, received, refusal)
            self.model_calls += 1
        for name, value in quota_headers(self.model_calls, self._started):
            request.setHeader(name.encode(), value.encode())
        mode = received.header("x-fake-mode") or ""
        if mode == "hang":
            return NOT_DONE_YET
        if mode == "echo":
            return self._json(request, self._describe(received))
        if mode == "gzip":
            request.setHeader(b"content-encoding", b"gzip")
            return gzip.compress(self._json(request, MODELS))
        if mode == "bulk":
            total = int(received.header("x-fake-bytes") or 1 << 20)
            request.setHeader(b"content-type", b"application/octet-stream")
            _BulkBody(request, total, self).start()
            return NOT_DONE_YET
        if request.method == b"GET" and received.path.rstrip("/").endswith("/models"):
            delay = received.header("x-fake-delay")
            if delay is not None:
                self._answer_later(request, float(delay), self._json(request, MODELS))
                return NOT_DONE_YET
            return self._json(request, MODELS)
        return self._answer(request, received, endpoint, payload, mode)

    def _record(self, request: Request) -> Received:
        content: Any = request.content
        content.seek(0)
        body: bytes = content.read()
        path, _, query = request.uri.decode("latin-1").partition("?")
        headers: dict[str, list[str]] = {}
        for name, values in request.requestHeaders.getAllRawHeaders():
            headers.setdefault(name.decode().lower(), []).extend(v.decode() for v in values)
        received = Received(request.method.decode(), path, query, headers, body)
        received.peer_port = getattr(request.getClientAddress(), "port", 0)
        self.received.append(received)
        channel = request.channel
        if isinstance(channel, _Channel):
            channel.carried.append(received)
        arrivals, self._arrivals = self._arrivals, []
        for d in arrivals:
            d.callback(received)
        return received

    def _stamp_ids(self, request: Request, received: Received) -> None:
        """Every answer names itself, as the service's do."""
        self._answers += 1
        request_id = received.header("x-request-id") or f"fake-request-{self._answers}"
        request.setHeader(b"x-request-id", request_id.encode())
        request.setHeader(b"x-github-request-id", f"FAKE:{self._answers:08X}".encode())

    def _gate(self, request: Request, received: Received) -> bytes | None:
        """The refusals that come before the request is read: auth, headers, a forced status."""
        if self.accepted is not None:
            expiry = self.accepted.get(received.token or "")
            if expiry is None or self.reactor.seconds() >= expiry:
                return self._error(request, 401, "unauthorized: token expired")
        elif self.require_token is not None:
            if received.headers.get("authorization") != [f"Bearer {self.require_token}"]:
                return self._error(request, 401, "unauthorized: token expired")
        if self.require_copilot_headers:
            missing = [name for name in COPILOT_HEADERS if name not in received.headers]
            if missing:
                return self._error(
                    request, 400, "bad request: missing editor headers " + ", ".join(missing)
                )
        status = received.header("x-fake-status")
        if status is not None:
            return self._error(request, int(status), f"fake error {status}")
        return None

    def _refusal(
        self, received: Received, endpoint: str, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The 400 body the 2026 service answers this model request with, if any."""
        model = payload.get("model")
        if isinstance(model, str):
            refusal = endpoint_refusal(model, endpoint, received.header("x-fake-refusal"))
            if refusal is not None:
                return refusal
        if endpoint == CHAT:
            return reasoning_effort_refusal(payload)
        if endpoint == MESSAGES:
            return messages_refusal(payload)
        if endpoint == RESPONSES:
            return identifier_refusal(payload) or reasoning_refusal(payload)
        return None

    def _refuse(self, request: Request, received: Received, body: dict[str, Any]) -> bytes:
        request.setResponseCode(400)
        received.status = 400
        return self._json(request, body)

    def _answer(
        self,
        request: Request,
        received: Received,
        endpoint: str | None,
        payload: dict[str, Any],
        mode: str,
    ) -> bytes | int:
        script = received.header("x-fake-script")
        streamed = payload.get("stream") is True
        if endpoint == MESSAGES:
            if streamed:
                deltas = _events_asked(received)
                frames = native_events(payload, deltas, script)
                split = received.header("x-fake-split") is not None
                # The message_delta, next to last, carries the usage.
                usage = (
                    _piece_ending(len(frames) - 2, split),
                    native_reported(payload, deltas, script),
                )
                self._paced(request, received, _split(frames, split), usage=usage)
                return NOT_DONE_YET
            message = native_message(payload, script)
            self._report(native_reported(payload, None, script))
            return self._json(request, message)
        if endpoint == RESPONSES:
            if streamed:
                self._responses_stream(request, received, payload, mode)
                return NOT_DONE_YET
            turn = plan_turn(payload, [ANSWER_TEXT], script, _reasons(payload))
            terminal = received.header("x-fake-terminal") or "completed"
            response = response_body(turn, terminal)
            self._report(reported(turn.model, turn.tokens))
            return self._json(request, response)
        if streamed:
            self._stream(request, received, payload, mode)
            return NOT_DONE_YET
        if received.path.rstrip("/").endswith("/embeddings"):
            body = _embeddings(payload)
            counted = Tokens(body["usage"]["prompt_tokens"], 0)
            self._report(Reported(str(body["model"]), counted, 0))
            return self._json(request, body)
        body = _completion(payload)
        self._report(reported(str(body["model"]), _COMPLETION_TOKENS))
        return self._json(request, body)

    def _report(self, answer: Reported) -> None:
        """Count the usage of an answer whose usage was written."""
        totals = self.usage_totals.get(answer.model, UsageTotals())
        self.usage_totals[answer.model] = totals.plus(answer)

    def _answer_later(self, request: Request, seconds: float, body: bytes) -> None:
        def answer() -> None:
            request.write(body)
            request.finish()

        timer = self.reactor.callLater(seconds, answer)
        request.notifyFinish().addErrback(lambda _: timer.cancel() if timer.active() else None)

    def _describe(self, received: Received) -> dict[str, Any]:
        return {
            "method": received.method,
            "path": received.path,
            "query": received.query,
            "headers": received.headers,
            "body": received.body.decode("utf-8", "replace"),
        }

    def _json(self, request: Request, obj: object) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(obj).encode()

    def _error(self, request: Request, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        self.received[-1].status = code
        if code in (429, 503):
            request.setHeader(b"retry-after", b"7")
        request.setHeader(b"x-fake-upstream", b"1")
        return self._json(
            request, {"error": {"message": message, "type": "fake", "code": str(code)}}
        )

    def _paced(
        self,
        request: Request,
        received: Received,
        pieces: list[tuple[bytes, bool]],
        end: str = "finish",
        content_type: bytes = b"text/event-stream; charset=utf-8",
        usage: tuple[int, Reported] | None = None,
    ) -> None:
        """
        Send C{pieces} one per C{x-fake-interval}, then end the response.

        @param pieces: (bytes, whether writing them completes an event).
        @param end: C{finish}; C{stall} (never finish); C{reset} (abort the
            connection, an interval after the last piece).
        @param usage: the index of the piece that completes the usage the
            stream reports, and that usage: counted when it is written.
        """
        interval = float(received.header("x-fake-interval") or 0)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"no-cache")
        request.write(b"")
        timer: list[IDelayedCall] = []
        gone: list[bool] = []

        def on_gone(_: object) -> None:
            gone.append(True)
            for t in timer:
                if t.active():
                    t.cancel()

        request.notifyFinish().addBoth(on_gone)

        def send(i: int) -> None:
            timer.clear()
            # A loop, not recursion, when there is no interval: a stream may
            # have thousands of pieces.
            while not gone and i < len(pieces):
                data, completes_event = pieces[i]
                request.write(data)
                if completes_event:
                    received.events_sent += 1
                if usage is not None and usage[0] == i:
                    self._report(usage[1])
                i += 1
                if interval > 0:
                    timer.append(self.reactor.callLater(interval, send, i))
                    return
            if gone:
                return
            if end == "reset":
                channel = request.channel
                transport: Any = channel.transport if channel is not None else None
                if transport is not None:
                    transport.abortConnection()
            elif end == "finish":
                received.finished = True
                request.finish()

        send(0)

    def _stream(
        self, request: Request, received: Received, payload: dict[str, Any], mode: str
    ) -> None:
        """A chat-completion stream shaped by the C{x-fake-*} headers."""
        pieces: list[tuple[bytes, bool]] = []
        usage: tuple[int, Reported] | None = None
        if received.header("x-fake-script") == "tools":
            last, answer = _with_copilot_usage(TOOL_SCRIPT[-1], payload)
            script = [*TOOL_SCRIPT[:-1], last]
            pieces = [(b"data: " + json.dumps(e).encode() + b"\n\n", True) for e in script]
            usage = (len(pieces) - 1, answer)
            pieces.append((b"data: [DONE]\n\n", False))
            mode = "finish"
        else:
            size = int(received.header("x-fake-bytes") or 16)
            events = _events_asked(received)
            frames = [chunk_event(i, _content(i, size)) for i in range(events)]
            pieces = _split(frames, received.header("x-fake-split") is not None)
            if mode not in ("stall", "reset"):
                final, answer = _final_chat_events(payload, events)
                usage = (len(pieces), answer)
                pieces.append((final, False))
                mode = "finish"
        content_type = received.header("x-fake-content-type") or "text/event-stream"
        self._paced(request, received, pieces, mode, content_type.encode(), usage)

    def _responses_stream(
        self, request: Request, received: Received, payload: dict[str, Any], mode: str
    ) -> None:
        """
        A Responses event stream: C{x-fake-events} text deltas of
        C{x-fake-bytes} each (the chat stream's text), ended as
        C{x-fake-terminal} says; C{x-fake-mode: stall} or C{reset} drop the
        terminal event and then stall or reset.
        """
        size = int(received.header("x-fake-bytes") or 16)
        deltas = [_content(i, size) for i in range(_events_asked(received))]
        turn = plan_turn(payload, deltas, received.header("x-fake-script"), _reasons(payload))
        terminal = received.header("x-fake-terminal") or "completed"
        end = mode if mode in ("stall", "reset") else "finish"
        if end != "finish":
            terminal = "none"
        frames = response_events(turn, terminal)
        split = received.header("x-fake-split") is not None
        usage = None
        if terminal in ("completed", "incomplete", "failed"):
            # The terminal event, last, carries the usage.
            usage = (_piece_ending(len(frames) - 1, split), reported(turn.model, turn.tokens))
        self._paced(request, received, _split(frames, split), end, usage=usage)


def _reasons(payload: dict[str, Any]) -> bool:
    """Whether the model reasons before it answers (as GPT-5.x do: they declare efforts)."""
    declared = supports(str(payload.get("model"))) or {}
    return bool(declared.get("reasoning_effort"))


def _with_copilot_usage(
    chunk: dict[str, Any], payload: dict[str, Any]
) -> tuple[dict[str, Any], Reported]:
    """The usage-only chunk with Copilot's C{copilot_usage}, and what it reports."""
    usage = chunk["usage"]
    tokens = Tokens(
        usage["prompt_tokens"],
        usage["completion_tokens"],
        usage["prompt_tokens_details"]["cached_tokens"],
    )
    model = str(payload.get("model", "gpt-4o"))
    return {**chunk, "copilot_usage": copilot_usage(model, tokens)}, reported(model, tokens)


def _events_asked(received: Received) -> int:
    return int(received.header("x-fake-events") or 5)


def _content(index: int, size: int) -> str:
    stem = f"tok{index} "
    return (stem * (size // len(stem) + 1))[:size]


_COMPLETION_TOKENS = Tokens(5, 4)


def _completion(payload: Any) -> dict[str, Any]:
    model = payload.get("model", "gpt-4o") if isinstance(payload, dict) else "gpt-4o"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the fake."},
                "finish_reason": "stop",
            }
        ],
        "usage": openai_usage(_COMPLETION_TOKENS),
        "copilot_usage": copilot_usage(str(model), _COMPLETION_TOKENS),
    }


def _script_chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-tools", "object": "chat.completion.chunk", "choices": choices}


#: A streamed answer that calls a tool, shaped like the Copilot API's.
TOOL_SCRIPT: list[dict[str, Any]] = [
    _script_chunk({"role": "assistant", "content": ""}),
    _script_chunk({"content": "Let me check."}),
    _script_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_weather",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    _script_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    _script_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
    _script_chunk({}, "tool_calls"),
    {
        **_script_chunk(None),
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 7,
            "total_tokens": 19,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    },
]


def _embeddings(payload: Any) -> dict[str, Any]:
    texts = payload.get("input", []) if isinstance(payload, dict) else []
    if isinstance(texts, str):
        texts = [texts]
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.25, -0.5, float(len(str(t)))]}
            for i, t in enumerate(texts)
        ],
        "model": payload.get("model", "text-embedding-3-small"),
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
    }


def main(argv: list[str] | None = None, run: Callable[[], None] | None = None) -> None:
    """Run a fake on C{--port} (default 9000) until interrupted."""
    import argparse

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    parser = argparse.ArgumentParser(description="A fake Copilot API for trying copilot-proxy.")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--token", default=ACCEPTED_TOKEN, help="token to require ('' for none)")
    args = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    fake = FakeUpstream(reactor, require_token=args.token or None)
    tcp: Any = reactor
    tcp.listenTCP(args.port, fake.site, interface="127.0.0.1")
    print(f"fake Copilot API on http://127.0.0.1:{args.port}", file=sys.stderr)
    (run or tcp.run)()


if __name__ == "__main__":
    main()
