"""
A fake Copilot API on a real socket, for tests and for trying the proxy by
hand without a Copilot account::

    python -m copilot_proxy.testing.fake_upstream --port 9000

It streams chat-completion chunks as server-sent events, records every request
it receives, and misbehaves on request.  How each request is answered comes
from C{x-fake-*} request headers (which a proxy forwards like any other), so
one running fake serves many test cases:

    - C{x-fake-events} (5), C{x-fake-interval} (seconds, 0), C{x-fake-bytes}
      (content bytes per event, 16): the shape of a stream;
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
      (L{TOOL_SCRIPT}), one event per C{x-fake-interval}.

Like the real service, it answers 400 to a request that lacks the Copilot
editor headers (C{copilot-integration-id}, C{editor-version},
C{editor-plugin-version}) unless C{require_copilot_headers} is off.
C{POST .../embeddings} gets an embedding list, C{POST /v1/messages} (the
native Anthropic surface) one Anthropic C{message}, or with C{"stream": true}
the Anthropic event sequence (L{native_events}), one event per
C{x-fake-interval}.

A request with C{"stream": true} in its JSON body gets SSE; other POSTs get one
C{chat.completion}; C{GET /models} a model list.
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


FINAL_EVENTS = (
    b'data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","choices":'
    b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


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
        return self._fake.handle(request)


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

        if self.accepted is not None:
            expiry = self.accepted.get(received.token or "")
            if expiry is None or self.reactor.seconds() >= expiry:
                return self._error(request, 401, "unauthorized: token expired")
        elif self.require_token is not None:
            if headers.get("authorization") != [f"Bearer {self.require_token}"]:
                return self._error(request, 401, "unauthorized: token expired")
        if self.require_copilot_headers:
            missing = [name for name in COPILOT_HEADERS if name not in headers]
            if missing:
                return self._error(
                    request, 400, "bad request: missing editor headers " + ", ".join(missing)
                )
        status = received.header("x-fake-status")
        if status is not None:
            return self._error(request, int(status), f"fake error {status}")
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
        if request.method == b"GET" and path.rstrip("/").endswith("/models"):
            delay = received.header("x-fake-delay")
            if delay is not None:
                self._answer_later(request, float(delay), self._json(request, MODELS))
                return NOT_DONE_YET
            return self._json(request, MODELS)
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        if isinstance(payload, dict) and payload.get("stream") is True:
            if path.rstrip("/").endswith("/v1/messages"):
                self._paced(
                    request,
                    received,
                    [(e, True) for e in native_events(payload, _events_asked(received))],
                )
                return NOT_DONE_YET
            self._stream(request, received, mode)
            return NOT_DONE_YET
        if path.rstrip("/").endswith("/v1/messages"):
            return self._json(request, _native_message(payload))
        if path.rstrip("/").endswith("/embeddings"):
            return self._json(request, _embeddings(payload))
        return self._json(request, _completion(payload))

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
    ) -> None:
        """
        Send C{pieces} one per C{x-fake-interval}, then end the response.

        @param pieces: (bytes, whether writing them completes an event).
        @param end: C{finish}; C{stall} (never finish); C{reset} (abort the
            connection, an interval after the last piece).
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
            if gone:
                return
            if i < len(pieces):
                data, completes_event = pieces[i]
                request.write(data)
                if completes_event:
                    received.events_sent += 1
                if interval > 0:
                    timer.append(self.reactor.callLater(interval, send, i + 1))
                else:
                    send(i + 1)
            elif end == "reset":
                channel = request.channel
                transport: Any = channel.transport if channel is not None else None
                if transport is not None:
                    transport.abortConnection()
            elif end == "finish":
                received.finished = True
                request.finish()

        send(0)

    def _stream(self, request: Request, received: Received, mode: str) -> None:
        """A chat-completion stream shaped by the C{x-fake-*} headers."""
        pieces: list[tuple[bytes, bool]] = []
        if received.header("x-fake-script") == "tools":
            pieces = [(b"data: " + json.dumps(e).encode() + b"\n\n", True) for e in TOOL_SCRIPT]
            pieces.append((b"data: [DONE]\n\n", False))
            mode = "finish"
        else:
            size = int(received.header("x-fake-bytes") or 16)
            split = received.header("x-fake-split") is not None
            for i in range(int(received.header("x-fake-events") or 5)):
                event = chunk_event(i, _content(i, size))
                if split:
                    pieces += [(event[:10], False), (event[10:], True)]
                else:
                    pieces.append((event, True))
            if mode not in ("stall", "reset"):
                pieces.append((FINAL_EVENTS, False))
                mode = "finish"
        content_type = received.header("x-fake-content-type") or "text/event-stream"
        self._paced(request, received, pieces, mode, content_type.encode())


def _content(index: int, size: int) -> str:
    stem = f"tok{index} "
    return (stem * (size // len(stem) + 1))[:size]


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
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
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


def _native_message(payload: Any) -> dict[str, Any]:
    model = payload.get("model", "claude-sonnet-4") if isinstance(payload, dict) else "?"
    return {
        "id": "msg_native",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "Hello natively."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }


def _events_asked(received: Received) -> int:
    return int(received.header("x-fake-events") or 5)


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"


def native_events(payload: Any, deltas: int) -> list[bytes]:
    """
    The native Anthropic stream for a Messages request, one SSE event per
    item: C{message_start}, a C{thinking} block when the request asked for
    thinking, a text block of C{deltas} C{text_delta}s (C{"tok0 "},
    C{"tok1 "}, ...), C{message_delta} and C{message_stop}.
    """
    thinking = payload.get("thinking") if isinstance(payload, dict) else None
    message = {**_native_message(payload), "content": [], "stop_reason": None}
    message["usage"] = {"input_tokens": 3, "output_tokens": 1}
    events = [_sse("message_start", {"type": "message_start", "message": message})]
    index = 0
    if isinstance(thinking, dict) and thinking.get("type") != "disabled":
        block = {"type": "thinking", "thinking": "", "signature": ""}
        events += [
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "Pondering."},
                },
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": "sig-fake"},
                },
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]
        index = 1
    text_block = {"type": "text", "text": ""}
    events.append(
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": text_block},
        )
    )
    for i in range(deltas):
        delta = {"type": "text_delta", "text": f"tok{i} "}
        events.append(
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        )
    events += [
        _sse("content_block_stop", {"type": "content_block_stop", "index": index}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": deltas},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return events


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


MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {"id": model_id, "object": "model", "vendor": vendor, "name": model_id}
        for model_id, vendor in (
            ("gpt-4o", "Azure OpenAI"),
            ("gpt-4.1", "Azure OpenAI"),
            ("claude-sonnet-4", "Anthropic"),
            ("text-embedding-3-small", "Azure OpenAI"),
        )
    ],
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
