"""
How log events are written: readable text for people, or one JSON object per
line for log shippers; and a log file that can be reopened after logrotate
moves it.

Why not C{twisted.logger.jsonFileLogObserver}: it serializes the whole event
for Twisted to read back (C{log_level} as an object, C{log_format} templates,
record separators), not flat, stable field names for Loki, Elasticsearch or
journald.  L{json_line} writes a fixed envelope (C{time}, C{level},
C{namespace}, C{message}) plus the event's own fields, such as the access
line's C{status}, C{outcome}, C{request_id} and C{model}.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    timeFormatRFC3339,
)

from ..settings import LogFormat

# A tuple, not a set: a foreign event's log_level may be anything, even unhashable.
_LEVELS = tuple(LogLevel.iterconstants())

_ENVELOPE = ("time", "level", "namespace", "message", "error")

# Keys of Twisted's legacy log events that only repeat the message or say
# how to format it; "system" is kept, the rest would be noise.
_LEGACY_KEYS = frozenset({"message", "format", "isError", "why", "failure", "time"})

_SCALARS = (str, int, float, bool, type(None))


def json_line(event: LogEvent) -> str:
    """
    One log event as one line of JSON.

    Always present: C{time} (ISO 8601, UTC, milliseconds), C{level}
    (C{debug}, C{info}, C{warn}, C{error}, C{critical}), C{namespace},
    C{message} (the event as text).  C{error} holds the traceback when the
    event carries a failure.  Every other field the event carries follows
    under its own name, unless it would replace one of these; values that are
    not JSON scalars are written as their C{str()}.
    """
    level = event.get("log_level")
    timestamp = event.get("log_time")
    line: dict[str, Any] = {
        "time": (
            datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")
            if isinstance(timestamp, (int, float))
            else None
        ),
        "level": level.name if level is not None and level in _LEVELS else "info",
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        line["error"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_") or key in _ENVELOPE or key in _LEGACY_KEYS:
            continue
        line[key] = value if isinstance(value, _SCALARS) else str(value)
    return json.dumps(line, ensure_ascii=False, default=str) + "\n"


class ReopenableFile:
    """
    A log file opened for appending, that L{reopen} opens again by name.

    Appending (C{O_APPEND}) makes logrotate's C{copytruncate} safe: after the
    truncation writes land at the new end, not at the old offset behind a
    hole.  With logrotate's default (move the file, then signal), SIGHUP
    calls L{reopen} and logging continues in a new file at the same path.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._file: IO[str] = self._open()

    def _open(self) -> IO[str]:
        return open(self.path, "a", encoding="utf-8")

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def reopen(self) -> None:
        """Close the file and open the path again (creating it if moved away)."""
        old, self._file = self._file, self._open()
        old.close()

    def close(self) -> None:
        self._file.close()


class SecondsCache:
    """
    Twisted's text log timestamp, computed once per second.

    C{formatTime} works out the local UTC offset and runs C{strftime} for
    every line: with one access line per request that was about a sixth of
    the CPU a small proxied request costs.  Lines within the same second
    share the text; the result is what C{formatTime} gives.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = "-"

    def __call__(self, when: float | None) -> str:
        if when is None:
            return "-"
        # The second datetime.fromtimestamp lands on: it rounds to whole
        # microseconds (half to even) first, which can carry into the next.
        second = math.floor(when)
        if round((when - second) * 1e6) >= 1_000_000:
            second += 1
        if second != self._second:
            self._text = formatTime(second, timeFormatRFC3339)
            self._second = second
        return self._text


def text_line(event: LogEvent, format_time: SecondsCache) -> str | None:
    """
    One event as Twisted's classic text line, with a cached timestamp.

    Twisted formats the message with a C{string.Formatter} written in
    Python, which for the access line's ten fields cost about as much as
    the timestamp did.  Events whose format needs none of Twisted's own
    additions (the C{"{name()}"} call syntax, flattened events, tracebacks)
    go through C{str.format_map} instead, which gives the same text; any
    other event, or any error, takes Twisted's own path.
    """
    fmt = event.get("log_format")
    if (
        type(fmt) is str
        and "()" not in fmt
        and "log_failure" not in event
        and "log_flattened" not in event
    ):
        try:
            text = fmt.format_map(event)
        except Exception:
            text = None
        if text is not None:
            if not text:
                return None
            line = f"{format_time(event.get('log_time'))} [{_system(event)}] {text}"
            return line.replace("\n", "\n\t") + "\n"
    return formatEventAsClassicLogText(event, formatTime=format_time)


def _system(event: LogEvent) -> str:
    """The bracketed part of a classic line, as Twisted writes it."""
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        name = "-" if level is None else level.name
        return f"{event.get('log_namespace', '-')}#{name}"
    try:
        return str(system)
    except Exception:
        return "UNFORMATTABLE"


def observer(log_format: LogFormat, out: IO[Any] | ReopenableFile) -> ILogObserver:
    """The observer writing events to C{out} in C{log_format}."""
    target: Any = out
    if log_format is LogFormat.JSON:
        return FileLogObserver(target, json_line)
    seconds = SecondsCache()
    return FileLogObserver(target, lambda event: text_line(event, seconds))
