"""
A deliberately broken Copilot API, for the tests of what the proxy does with
an upstream it cannot trust: raw bytes on a TCP connection, written by
script, where Twisted's own server would never let a test go wrong enough.

A request names its script in an C{x-evil} header (which the proxy forwards
like any other); C{GET /models} without one gets a small valid model list,
so that the Anthropic surface's name mapping works.  The scripts are in
L{SCRIPTS}: each is a list of steps, bytes to write, a number of seconds to
wait, or one of L{RESET} (abort the connection), L{CLOSE} (close it
cleanly) and L{HOLD} (keep it open for the next request).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

RESET = "reset"
CLOSE = "close"
HOLD = "hold"

Step = bytes | float | str


def _chunk(content: str, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {"content": content} if content else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    event = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _json_answer(body: bytes, status: bytes = b"200 OK") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % (len(body),) + body
    )


def _completion(message: Any = None, **extra: Any) -> bytes:
    if message is None:
        message = {"role": "assistant", "content": "hi"}
    answer: dict[str, Any] = {"id": "c1", "object": "chat.completion", "model": "m"}
    answer["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
    answer.update(extra)
    return json.dumps(answer).encode()


_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
_STREAM = _chunk("Hello") + _chunk(" there") + _chunk("", "stop") + b"data: [DONE]\n\n"
GZIPPED_STREAM = gzip.compress(_STREAM)

#: The model list of C{GET /models} without a script.
MODELS = json.dumps(
    {"object": "list", "data": [{"id": "claude-sonnet-4", "object": "model"}]}
).encode()

SCRIPTS: dict[str, list[Step]] = {
    # Bodies delimited by the end of the connection (no length, not chunked).
    "close-delimited-clean": [_SSE_HEAD + b"\r\n" + _STREAM, CLOSE],
    "close-delimited-reset": [_SSE_HEAD + b"\r\n" + _chunk("Hello"), 0.05, RESET],
    # A declared length the body never reaches.
    "short-body": [_SSE_HEAD + b"content-length: 5000\r\n\r\n" + _chunk("Hello"), 0.05, CLOSE],
    "chunked-reset": [
        _SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n"
        b"%x\r\n" % len(_chunk("Hello")) + _chunk("Hello") + b"\r\n",
        0.05,
        RESET,
    ],
    # A gzip-encoded event stream that pauses longer than the keep-alive.
    "gzip-stream": [
        _SSE_HEAD
        + b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(GZIPPED_STREAM)
        + GZIPPED_STREAM[:10],
        0.6,
        GZIPPED_STREAM[10:],
        HOLD,
    ],
    # Framing and headers no client should see.
    "status-2000": [b"HTTP/1.1 2000 Odd\r\ncontent-length: 2\r\n\r\n{}", HOLD],
    "connection-named": [
        b"HTTP/1.1 200 OK\r\nconnection: x-hop, keep-alive\r\nx-hop: secret\r\n"
        b"x-kept: yes\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        HOLD,
    ],
    "latin1-header": [
        b"HTTP/1.1 200 OK\r\nx-name: caf\xe9\r\ncontent-type: application/json\r\n"
        b"content-length: 2\r\n\r\n{}",
        HOLD,
    ],
    # Chat completions no translator should trust.
    "message-str": [_json_answer(_completion("str")), HOLD],
    "tool-calls-str": [
        _json_answer(_completion({"role": "assistant", "content": None, "tool_calls": ["s"]})),
        HOLD,
    ],
    "usage-list": [_json_answer(_completion(usage={"prompt_tokens": [1]})), HOLD],
    "usage-huge": [
        _json_answer(
            _completion().replace(
                b'"model": "m"', b'"usage": {"prompt_tokens": 1e400}, "model": "m"'
            )
        ),
        HOLD,
    ],
    "choices-int": [_json_answer(json.dumps({"choices": 5}).encode()), HOLD],
    "deep-json": [_json_answer(b"[" * 5000 + b"]" * 5000), HOLD],
    "cut-json": [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n"
        + _completion()[:20],
        0.05,
        RESET,
    ],
    "stream-ill-typed": [
        _SSE_HEAD
        + b"content-length: 40000\r\n\r\n"
        + _chunk("Hello")
        + b'data: {"choices": 5}\n\n'
        + b'data: {"choices": [{"delta": {"tool_calls": ["s"]}}]}\n\n',
        HOLD,
    ],
    # A model list no parser should choke on.
    "models-deep": [_json_answer(b'{"data":' + b"[" * 5000 + b"]" * 5000 + b"}"), HOLD],
}


class _EvilConnection(Protocol):
    """Reads one request, then plays the script it names."""

    def __init__(self, upstream: EvilUpstream) -> None:
        self._upstream = upstream
        self._buffer = b""
        self._played = False

    def dataReceived(self, data: bytes) -> None:
        if self._played:
            return
        self._buffer += data
        head, found, rest = self._buffer.partition(b"\r\n\r\n")
        if not found:
            return
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0") or 0)
        if len(rest) < length:
            return
        self._played = True
        self._buffer = rest[length:]
        path = lines[0].split(b" ")[1].decode("ascii", "replace")
        script = headers.get(b"x-evil", b"").decode("ascii", "replace")
        self._upstream.received.append((path, script))
        steps: list[Step]
        if not script and path.startswith("/models"):
            steps = list(self._upstream.models)
        elif script in SCRIPTS:
            steps = list(SCRIPTS[script])
        else:
            steps = [_json_answer(b'{"error": "no such script"}'), HOLD]
        self._play(steps)

    def _play(self, steps: list[Step]) -> None:
        transport: Any = self.transport
        while steps:
            step = steps.pop(0)
            if isinstance(step, bytes):
                transport.write(step)
            elif isinstance(step, float):
                self._upstream.reactor.callLater(step, self._play, steps)
                return
            elif step == RESET:
                transport.abortConnection()
            elif step == CLOSE:
                transport.loseConnection()
            elif step == HOLD:
                # Ready for the next request on this connection.
                self._played = False
                self._buffer = b""

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._played = True


class EvilUpstream(Factory):
    """
    The factory to listen with.

    @ivar received: (path, script name) of every request, in order.
    @ivar models: the script of C{GET /models} without C{x-evil}.
    """

    noisy = False

    def __init__(self, reactor: IReactorTime) -> None:
        self.reactor = reactor
        self.received: list[tuple[str, str]] = []
        self.models: list[Step] = [_json_answer(MODELS), HOLD]

    def buildProtocol(self, addr: object) -> Protocol:
        return _EvilConnection(self)
