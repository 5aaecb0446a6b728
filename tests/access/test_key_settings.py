"""Per-key settings in the client keys file: the syntax and its errors (pure)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from twisted.web.http_headers import Headers

from copilot_proxy.access import (
    ClientKeys,
    CreditBudget,
    CreditPeriod,
    KeyFileError,
    KeySettings,
    KeysFromFile,
    Rate,
    check_client_key,
    parse_keys_env,
    parse_keys_file,
    period_bounds,
)

ALICE = "sk-alice-0123456789abcdef"
OPS = "sk-ops-0123456789abcdef000"


def _epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc).timestamp()


def test_readme_example_lines_parse() -> None:
    alice, ops = parse_keys_file(
        f"{ALICE} alice rate=60/min streams=4 credits=500/month\n{OPS} ops admin\n", "keys"
    )
    assert alice.label == "alice"
    assert alice.settings == KeySettings(
        rate=Rate(60, 60), streams=4, credits=CreditBudget(500, CreditPeriod.MONTH)
    )
    assert ops.label == "ops" and ops.settings == KeySettings(admin=True)


def test_settings_come_in_any_order_after_the_name_and_before_a_comment() -> None:
    (key,) = parse_keys_file(
        f"{ALICE} alice seat=team-a credits=0.5/day admin rate=2/s # rate=1/s\n", "keys"
    )
    assert key.settings == KeySettings(
        admin=True,
        rate=Rate(2, 1),
        credits=CreditBudget(0.5, CreditPeriod.DAY),
        seat="team-a",
    )
    assert key.settings.credits is not None and key.settings.credits.nano_aiu == 500_000_000


def test_keys_without_settings_have_none() -> None:
    named, unnamed = parse_keys_file(f"{ALICE} alice\n{OPS}\n", "keys")
    assert named.settings == unnamed.settings == KeySettings()
    (from_env,) = parse_keys_env(ALICE)
    assert from_env.settings == KeySettings()


def test_a_second_word_is_always_the_name() -> None:
    (key,) = parse_keys_file(f"{ALICE} admin\n", "keys")
    assert key.label == "admin" and not key.settings.admin


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("extra", "unknown setting 'extra'"),
        ("Rate=1/s", "unknown setting 'Rate' on line 2 of keys.txt"),
        ("sk-x-0123456789=1/s", "a word on line 2 of keys.txt is not a setting"),
        (OPS, "a word on line 2 of keys.txt is not a setting"),
        ("rate=1/s rate=3/s", "the setting 'rate' on line 2 of keys.txt is given twice"),
        ("admin admin", "the setting 'admin' on line 2 of keys.txt is given twice"),
        ("admin=yes", "the setting 'admin' on line 2 of keys.txt takes no value"),
        ("rate", "the setting 'rate' on line 2 of keys.txt needs a value"),
        ("streams=", "the setting 'streams' on line 2 of keys.txt needs a value"),
        ("rate=fast", "the setting 'rate' on line 2 of keys.txt must be N/PERIOD"),
        ("rate=0/hour", "the setting 'rate' on line 2 of keys.txt must be N/PERIOD"),
        ("streams=0", "the setting 'streams' on line 2 of keys.txt must be a whole number"),
        ("streams=1.5", "the setting 'streams' on line 2 of keys.txt must be a whole number"),
        ("credits=700", "the setting 'credits' on line 2 of keys.txt must be a positive"),
        ("credits=500/hour", "the setting 'credits' on line 2 of keys.txt must be a positive"),
        ("credits=0/day", "the setting 'credits' on line 2 of keys.txt must be a positive"),
        ("credits=-1/day", "the setting 'credits' on line 2 of keys.txt must be a positive"),
        ("seat=a/b", "the setting 'seat' on line 2 of keys.txt must be 1-64 letters"),
    ],
)
def test_bad_settings_name_the_line_and_setting_but_never_a_key_or_value(
    settings: str, message: str
) -> None:
    with pytest.raises(KeyFileError) as caught:
        parse_keys_file(f"# ok\n{ALICE} alice {settings}\n", "keys.txt")
    text = str(caught.value)
    assert message in text
    assert ALICE not in text and OPS not in text
    for word in settings.split():
        value = word.partition("=")[2]
        assert len(value) < 3 or value not in text


def test_settings_are_found_with_the_key() -> None:
    keys = ClientKeys(parse_keys_file(f"{ALICE} alice streams=2\n", "keys"))
    found = keys.find([b"placeholder", ALICE.encode()])
    assert found is not None and found.settings.streams == 2
    check = check_client_key(keys, Headers({b"x-api-key": [ALICE.encode()]}))
    assert (check.allowed, check.name, check.settings.streams) == (True, "alice", 2)
    refused = check_client_key(keys, Headers({b"x-api-key": [OPS.encode()]}))
    assert (refused.allowed, refused.settings) == (False, KeySettings())
    assert ALICE not in repr(found) and "streams" not in repr(keys)


def test_settings_follow_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice rate=2/min\n")
    keys = KeysFromFile(str(path))
    found = keys.find([ALICE.encode()])
    assert found is not None and found.settings.rate == Rate(2, 60)
    path.write_text(f"{ALICE} alice streams=3 admin\n")
    keys.reload()
    found = keys.find([ALICE.encode()])
    assert found is not None and found.settings == KeySettings(admin=True, streams=3)
    path.write_text(f"{ALICE} alice streams=none\n")
    with pytest.raises(KeyFileError, match="'streams' on line 1"):
        keys.reload()
    found = keys.find([ALICE.encode()])
    assert found is not None and found.settings.streams == 3, "a bad file keeps the settings"


@pytest.mark.parametrize(
    ("period", "now", "start", "reset"),
    [
        (CreditPeriod.DAY, (2024, 5, 15, 13, 30), (2024, 5, 15), (2024, 5, 16)),
        (CreditPeriod.DAY, (2024, 12, 31, 23, 59), (2024, 12, 31), (2025, 1, 1)),
        # 2024-05-15 is a Wednesday; its week began on Monday the 13th.
        (CreditPeriod.WEEK, (2024, 5, 15, 13, 30), (2024, 5, 13), (2024, 5, 20)),
        (CreditPeriod.WEEK, (2024, 5, 13, 0, 0), (2024, 5, 13), (2024, 5, 20)),
        (CreditPeriod.WEEK, (2024, 12, 31, 8, 0), (2024, 12, 30), (2025, 1, 6)),
        (CreditPeriod.MONTH, (2024, 2, 29, 23, 59), (2024, 2, 1), (2024, 3, 1)),
        (CreditPeriod.MONTH, (2024, 12, 1, 0, 0), (2024, 12, 1), (2025, 1, 1)),
    ],
)
def test_budget_periods_are_calendar_periods_in_utc(
    period: CreditPeriod,
    now: tuple[int, int, int, int, int],
    start: tuple[int, int, int],
    reset: tuple[int, int, int],
) -> None:
    bounds = period_bounds(period, _epoch(*now) + 0.25)
    assert bounds == (_epoch(*start), _epoch(*reset))
    assert bounds[0] <= _epoch(*now) + 0.25 < bounds[1]
