"""
Token usage read from an upstream answer as it passes by, without changing
it and without parsing every chunk: L{UsageTap} keeps the head and the tail
of the body and reads the usage out of them once, at the end.  It knows the
usage shapes of Chat Completions, Responses and Anthropic Messages, streamed
or not, and Copilot's C{copilot_usage} cost record (the 2026 notes, sections
3.3, 4.7 and 6.4).

Pure: bytes in, counts out.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass

#: The key of a usage or cost record.  The opening quote must follow C{{} or
#: C{,} (JSON whitespace aside): a quote inside a JSON string is always
#: escaped, so text that mentions C{"usage":} never matches.
_KEY = re.compile(r'[{,][ \t\r\n]*"(usage|copilot_usage)"[ \t\r\n]*:[ \t\r\n]*')
#: How many keys, from the last, are decoded in the head and in the tail: the
#: usage that counts is near the end, and garbage full of keys must not make
#: the one parse quadratic.
_LAST_KEYS = 32
#: The largest count believed; more is garbage, not tokens.
_MAX_COUNT = 2**63 - 1
_JSON_SPACE = b" \t\r\n"
#: The ends of an event: a line ending, then an empty line (C{\r\n\r\n}
#: ends in C{\n\r\n}).
_BOUNDARIES = (b"\n\n", b"\n\r\n", b"\r\r")
_BOUNDARY_SPAN = max(len(boundary) for boundary in _BOUNDARIES)
_DECODER = json.JSONDecoder()

#: The usage fields read, as paths into a usage object, across the shapes.
_PATHS: tuple[tuple[str, ...], ...] = (
    ("prompt_tokens",),
    ("prompt_tokens_details", "cached_tokens"),
    ("completion_tokens",),
    ("completion_tokens_details", "reasoning_tokens"),
    ("input_tokens",),
    ("input_tokens_details", "cached_tokens"),
    ("cache_read_input_tokens",),
    ("cache_creation_input_tokens",),
    ("output_tokens",),
    ("output_tokens_details", "reasoning_tokens"),
    ("output_tokens_details", "thinking_tokens"),
)
_CHAT_FIELDS = frozenset(
    {
        "prompt_tokens",
        "prompt_tokens_details.cached_tokens",
        "completion_tokens",
        "completion_tokens_details.reasoning_tokens",
    }
)
_ANTHROPIC_FIELDS = frozenset(
    {
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "output_tokens_details.thinking_tokens",
    }
)


@dataclass(frozen=True)
class UsageCounts:
    """
    What one answer used, in OpenAI's meaning whatever shape it came in.

    @ivar input_tokens: all prompt tokens, the cached ones included (for an
        Anthropic answer: C{input_tokens} plus cache reads and writes).
    @ivar cached_tokens: the part of C{input_tokens} read from the cache.
    @ivar output_tokens: all output tokens, reasoning included.
    @ivar reasoning_tokens: the part of C{output_tokens} spent reasoning
        (thinking).
    @ivar nano_aiu: C{copilot_usage.total_nano_aiu}, the answer's cost; 0
        when the answer carried none (or was free).
    """

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    nano_aiu: int = 0


class UsageTap:
    """
    Keeps the first C{head} bytes and at least the last C{tail} bytes of a
    body fed chunk by chunk, and reads its usage from them at the end.

    Feeding is cheap whatever the size of the body: a chunk is kept by
    reference (never copied or joined) until later chunks push it out, and
    the only look into it is for the last event boundary.  Two things are
    kept beyond C{tail}, each up to C{whole} bytes, by reference too:
        - a body that starts as a JSON object (a non-streamed answer) is
          kept whole and its top-level C{usage} read, wherever the key falls
          (a Responses body echoes the request's instructions and tools
          after its usage);
        - in an event stream, the event the tail begins in is kept whole,
          so that a terminal event longer than C{tail} (a Responses
          C{response.completed} holds the whole response) is read whole.

    What L{counts} may be relied on for: the same bytes give the same counts
    however they were chunked; no input makes it raise; a body it cannot
    read (garbage, cut before its usage, or compressed) gives L{None} or what
    could be read.  In an event stream the usage that counts is the last one
    carried; fields it lacks come from earlier ones (an Anthropic stream's
    C{message_delta} has the output, its C{message_start} the input).
    """

    def __init__(self, head: int = 4096, tail: int = 16384, whole: int = 1 << 20) -> None:
        self._head_size = max(0, head)
        self._tail_size = max(0, tail)
        self._whole_size = max(self._tail_size, whole)
        self._length = 0
        self._head: list[bytes] = []
        self._head_length = 0
        #: Whether the body is one JSON document: L{None} until its first
        #: byte that is not JSON whitespace.
        self._json: bool | None = None
        #: The whole body while it may be one JSON document within C{whole}.
        self._whole: list[bytes] | None = []
        self._tail: deque[bytes] = deque()
        self._tail_length = 0
        #: Where the first kept tail chunk begins in the body, and the bytes
        #: just before it (an event boundary may end right there).
        self._tail_offset = 0
        self._before = b""
        #: Event starts seen in chunks, not yet before the tail's edge; and
        #: the last one that is: chunks ending by it may go.
        self._starts: deque[int] = deque()
        self._start = -1

    def feed(self, data: bytes) -> None:
        """Take the next chunk of the body (it is not changed)."""
        if not data:
            return
        offset = self._length
        self._length += len(data)
        if self._head_length < self._head_size:
            piece = data[: self._head_size - self._head_length]
            self._head.append(piece)
            self._head_length += len(piece)
        if self._json is None:
            stripped = data.lstrip(_JSON_SPACE)
            if stripped:
                self._json = stripped[:1] == b"{"
        if self._whole is not None:
            if self._json is False or self._length > self._whole_size:
                self._whole = None
            else:
                self._whole.append(data)
        if not self._json:
            start = _last_event_start(data)
            if start >= 0:
                self._starts.append(offset + start)
        self._tail.append(data)
        self._tail_length += len(data)
        self._trim()

    def _trim(self) -> None:
        """Let go of the tail chunks no longer needed."""
        edge = self._length - self._tail_size
        while self._starts and self._starts[0] <= edge:
            self._start = self._starts.popleft()
        while len(self._tail) > 1:
            first = len(self._tail[0])
            end = self._tail_offset + first
            left = self._tail_length - first
            if self._json:
                needed = left < self._tail_size
            else:
                needed = end > self._start and left < self._whole_size
            if needed:
                break
            self._before = (self._before + self._tail.popleft()[-_BOUNDARY_SPAN:])[
                -_BOUNDARY_SPAN:
            ]
            self._tail_offset = end
            self._tail_length = left

    def counts(self) -> UsageCounts | None:
        """
        The usage the body carried, or L{None} when it carried none that
        could be read.  Call it once the body has ended; it parses then.
        """
        if self._whole is not None and self._json:
            document = _document(b"".join(self._whole))
            if isinstance(document, dict):
                record = document.get("copilot_usage")
                return _counts(_fields(document.get("usage")), _nano_aiu(record), _details(record))
        kept = b"".join(self._tail)
        start = max(0, len(kept) - self._tail_size)
        if not self._json and self._tail_offset + start > 0:
            start = self._event_start(kept, start)
        tail = kept[start:]
        texts = [tail]
        if self._tail_offset + start > 0:
            texts.insert(0, b"".join(self._head))
        fields: dict[str, int] = {}
        nano: int | None = None
        details: dict[str, int] = {}
        for text in texts:
            for key, value in _records(text.decode("utf-8", "replace")):
                if key == "usage":
                    fields.update(_fields(value))
                elif (cost := _nano_aiu(value)) is not None:
                    nano = cost
                    details = _details(value) or details
        return _counts(fields, nano, details)

    def _event_start(self, kept: bytes, edge: int) -> int:
        """
        Where, in C{kept}, the event the tail's edge falls in begins; the
        edge itself when that event is longer than C{whole} (as one that
        begins before what was kept is: L{_trim} keeps shorter ones).
        """
        before = len(self._before)
        start = _last_event_start(self._before + kept[:edge]) - before
        if start < -before and self._tail_offset == 0:
            start = 0
        if start < 0 or len(kept) - start > self._whole_size:
            return edge
        return start


def _last_event_start(data: bytes) -> int:
    """
    Where the last event that begins after a boundary in C{data} begins, or
    -1 when C{data} holds no boundary.
    """
    start = -1
    for boundary in _BOUNDARIES:
        # Only a boundary ending after the one found is of interest.
        at = data.rfind(boundary, max(0, start - len(boundary) + 1))
        if at >= 0:
            start = max(start, at + len(boundary))
    return start


def _document(body: bytes) -> object:
    """
    A whole JSON answer, decoded; L{None} when it does not parse.  Only its
    top-level keys count: a C{usage} deeper in (a tool's input, a schema)
    is not the answer's.
    """
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _records(text: str) -> list[tuple[str, object]]:
    """
    The usage and cost records in C{text}, in order: (key, decoded value)
    for each of the last L{_LAST_KEYS} keys whose value decodes.  A record
    cut by the edge of the text does not decode and is left out.
    """
    matches = list(_KEY.finditer(text))[-_LAST_KEYS:]
    records: list[tuple[str, object]] = []
    for match in matches:
        try:
            value, _ = _DECODER.raw_decode(text, match.end())
        except (ValueError, RecursionError):
            continue
        records.append((match.group(1), value))
    return records


def _count(value: object) -> int | None:
    """A token count or cost, or L{None} for anything else (bools included)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT:
        return value
    return None


def _fields(usage: object) -> dict[str, int]:
    """The known count fields of a usage object, by dotted path."""
    fields: dict[str, int] = {}
    if not isinstance(usage, dict):
        return fields
    for path in _PATHS:
        value: object = usage
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        count = _count(value)
        if count is not None:
            fields[".".join(path)] = count
    return fields


def _nano_aiu(record: object) -> int | None:
    """The total cost in a C{copilot_usage} record."""
    return _count(record.get("total_nano_aiu")) if isinstance(record, dict) else None


def _details(record: object) -> dict[str, int]:
    """
    The token counts of a C{copilot_usage} record's C{token_details}, by
    C{token_type} (C{input}, C{cache_read}, C{cache_write}, C{output}).
    """
    found: dict[str, int] = {}
    details = record.get("token_details") if isinstance(record, dict) else None
    if not isinstance(details, list):
        return found
    for detail in details[:16]:
        if isinstance(detail, dict) and isinstance(detail.get("token_type"), str):
            count = _count(detail.get("token_count"))
            if count is not None:
                kind = detail["token_type"]
                found[kind] = found.get(kind, 0) + count
    return found


def _counts(
    fields: dict[str, int], nano: int | None, details: dict[str, int] | None = None
) -> UsageCounts | None:
    """
    Counts from usage fields of whichever shape: Chat Completions
    (C{prompt_tokens}), Anthropic (cache fields or C{thinking_tokens}: its
    C{input_tokens} leaves the cache out) or Responses.  An answer with no
    usage but Copilot's cost record (a chat stream the client did not ask
    C{include_usage} of) is counted from the record's token details: input
    with cache reads and writes, cache reads, output (reasoning unknown).
    """
    if not fields and nano is None:
        return None
    if not fields and details:
        cached = details.get("cache_read", 0)
        return UsageCounts(
            input_tokens=details.get("input", 0) + cached + details.get("cache_write", 0),
            cached_tokens=cached,
            output_tokens=details.get("output", 0),
            nano_aiu=nano or 0,
        )
    reasoning = fields.get(
        "output_tokens_details.reasoning_tokens",
        fields.get("output_tokens_details.thinking_tokens", 0),
    )
    if _CHAT_FIELDS & fields.keys():
        return UsageCounts(
            input_tokens=fields.get("prompt_tokens", 0),
            cached_tokens=fields.get("prompt_tokens_details.cached_tokens", 0),
            output_tokens=fields.get("completion_tokens", 0),
            reasoning_tokens=fields.get("completion_tokens_details.reasoning_tokens", 0),
            nano_aiu=nano or 0,
        )
    if _ANTHROPIC_FIELDS & fields.keys():
        cached = fields.get("cache_read_input_tokens", 0)
        written = fields.get("cache_creation_input_tokens", 0)
        return UsageCounts(
            input_tokens=fields.get("input_tokens", 0) + cached + written,
            cached_tokens=cached,
            output_tokens=fields.get("output_tokens", 0),
            reasoning_tokens=fields.get("output_tokens_details.thinking_tokens", reasoning),
            nano_aiu=nano or 0,
        )
    return UsageCounts(
        input_tokens=fields.get("input_tokens", 0),
        cached_tokens=fields.get("input_tokens_details.cached_tokens", 0),
        output_tokens=fields.get("output_tokens", 0),
        reasoning_tokens=reasoning,
        nano_aiu=nano or 0,
    )
