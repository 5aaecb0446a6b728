"""The text log's cached timestamps read exactly as Twisted's own."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEventAsClassicLogText

from copilot_proxy._logformat import SecondsCache, text_line

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
