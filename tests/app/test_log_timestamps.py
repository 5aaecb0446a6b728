"""The text log's cached timestamps read exactly as Twisted's own."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEventAsClassicLogText

from copilot_proxy.app import SecondsCache, text_line

# 2001 to 2100, with fractions of a second.
_WHEN = st.floats(min_value=978307200.0, max_value=4102444800.0, allow_nan=False)


@given(st.lists(_WHEN, min_size=1, max_size=20))
def test_cached_timestamp_equals_twisteds_for_any_sequence_of_times(times: list[float]) -> None:
    from twisted.logger import formatTime

    cache = SecondsCache()
    for when in times:
        assert cache(when) == formatTime(when)


@given(_WHEN, st.text(max_size=40))
def test_text_line_equals_twisteds_classic_line(when: float, text: str) -> None:
    event = {
        "log_format": "{what}",
        "what": text,
        "log_time": when,
        "log_namespace": "copilot_proxy.access",
        "log_level": LogLevel.info,
    }
    assert text_line(event, SecondsCache()) == formatEventAsClassicLogText(event)


def test_event_without_time_gets_a_dash() -> None:
    assert SecondsCache()(None) == "-"


_VALUES = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.none(),
    st.lists(st.integers(), max_size=3),
)
_FIELDS = st.sampled_from(
    ["{a}", "{b!r}", "{a:>8}", "{c:.3f}", "{missing}", "{b[0]}", "{a.real}", "{0}", "{}", "{f()}"]
)
_FORMATS = st.lists(st.one_of(_FIELDS, st.text(alphabet="xyz \n=", max_size=5)), max_size=6)


@given(
    _FORMATS,
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _VALUES),
    st.one_of(st.none(), st.text(max_size=10)),
    st.sampled_from([None, LogLevel.info, LogLevel.warn]),
)
def test_fast_text_line_equals_twisteds_for_any_format(
    parts: list[str], fields: dict[str, object], system: str | None, level: LogLevel | None
) -> None:
    event: dict[str, object] = {
        "log_format": "".join(parts),
        "log_time": 1764500000.25,
        "log_namespace": "copilot_proxy.access",
        "f": lambda: "called",
        **fields,
    }
    if system is not None:
        event["log_system"] = system
    if level is not None:
        event["log_level"] = level
    assert text_line(event, SecondsCache()) == formatEventAsClassicLogText(event)


def test_access_line_shape_is_unchanged() -> None:
    event = {
        "log_format": "{method} {path} {status} {bytes}B ttfb={ttfb} {duration:.3f}s {outcome}",
        "method": "POST",
        "path": "/chat/completions",
        "status": 200,
        "bytes": 1234,
        "ttfb": "0.012",
        "duration": 1.23456,
        "outcome": "complete",
        "log_time": 1764500000.0,
        "log_namespace": "copilot_proxy.access",
        "log_level": LogLevel.info,
    }
    line = text_line(event, SecondsCache())
    assert line == formatEventAsClassicLogText(event)
    assert line is not None
    assert line.endswith(
        " [copilot_proxy.access#info] POST /chat/completions 200 1234B ttfb=0.012 1.235s"
        " complete\n"
    )
