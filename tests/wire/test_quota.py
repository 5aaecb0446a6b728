"""The quota headers of Copilot answers, read into snapshots."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st
from twisted.web.http_headers import Headers

from copilot_proxy.testing._fake_rules import quota_headers as fake_quota_headers
from copilot_proxy.wire import MAX_SNAPSHOTS, QuotaSnapshot, parse_quota_header, quota_headers

RESET = datetime.datetime(2026, 4, 22, 14, 30, 56, tzinfo=datetime.timezone.utc).timestamp()


def test_a_session_header_is_read_whole() -> None:
    snapshot = parse_quota_header(
        b"x-usage-ratelimit-session",
        b"ent=0&ov=0.0&ovPerm=false&rem=99.6&rst=2026-04-22T14%3A30%3A56Z",
    )
    assert snapshot == QuotaSnapshot(
        "session",
        entitlement=0,
        overage=0.0,
        overage_permitted=False,
        percent_remaining=99.6,
        resets_at=RESET,
    )
    assert not snapshot.unlimited


def test_snapshot_names_come_from_either_family_in_any_case() -> None:
    value = b"rem=50"
    premium = parse_quota_header(b"X-Quota-Snapshot-Premium_interactions", value)
    weekly = parse_quota_header(b"X-Usage-Ratelimit-Weekly", value)
    assert premium is not None and premium.name == "premium_interactions"
    assert weekly is not None and weekly.name == "weekly"


def test_unlimited_and_permitted_overage() -> None:
    snapshot = parse_quota_header(
        b"x-quota-snapshot-chat", b"ent=-1&ov=12.5&ovPerm=TRUE&rem=100&rst="
    )
    assert snapshot == QuotaSnapshot(
        "chat", entitlement=-1, overage=12.5, overage_permitted=True, percent_remaining=100.0
    )
    assert snapshot.unlimited


def test_percent_is_clamped_to_0_100() -> None:
    high = parse_quota_header(b"x-usage-ratelimit-session", b"rem=250.5")
    low = parse_quota_header(b"x-usage-ratelimit-session", b"rem=-3")
    assert high is not None and high.percent_remaining == 100.0
    assert low is not None and low.percent_remaining == 0.0


def test_missing_fields_are_none() -> None:
    snapshot = parse_quota_header(b"x-usage-ratelimit-weekly", b"rem=42.0")
    assert snapshot == QuotaSnapshot("weekly", percent_remaining=42.0)


def test_garbled_fields_are_none_and_the_rest_is_kept() -> None:
    snapshot = parse_quota_header(
        b"x-usage-ratelimit-weekly",
        b"ent=1.5&ov=-2&ovPerm=maybe&rem=nan&rst=next%20tuesday&junk=1&ent=7",
    )
    assert snapshot is None
    snapshot = parse_quota_header(
        b"x-usage-ratelimit-weekly", b"ent=%EF%BC%91&ov=inf&rem=1e999&rst=2026-04-22T14:30:56"
    )
    # Full-width digits are no entitlement; a time without a zone is UTC.
    assert snapshot == QuotaSnapshot("weekly", resets_at=RESET)


def test_reset_times_with_offsets_and_plus_encoding() -> None:
    offset = parse_quota_header(
        b"x-usage-ratelimit-session", b"rst=2026-04-22T16%3A30%3A56%2B02%3A00"
    )
    assert offset is not None and offset.resets_at == RESET
    fraction = parse_quota_header(b"x-usage-ratelimit-session", b"rst=2026-04-22T14:30:56.5Z")
    assert fraction is not None and fraction.resets_at == RESET + 0.5


def test_other_headers_and_empty_values_are_no_quota() -> None:
    assert parse_quota_header(b"x-request-id", b"rem=5") is None
    assert parse_quota_header(b"x-quota-snapshot-", b"rem=5") is None
    assert parse_quota_header(b"x-quota-snapshot-chat", b"") is None
    assert parse_quota_header(b"x-quota-snapshot-chat", b"hello") is None
    assert parse_quota_header(b"x-quota-snapshot-ch\xe4t", b"rem=5") is None
    assert parse_quota_header(b"x-quota-snapshot-" + b"a" * 49, b"rem=5") is None
    assert parse_quota_header(b"x-quota-snapshot-chat", b"rem=5&" + b"x" * 600) is None


def test_an_answers_headers_give_one_snapshot_per_quota() -> None:
    headers = Headers(
        {
            b"content-type": [b"application/json"],
            b"x-request-id": [b"abc"],
            b"x-usage-ratelimit-session": [b"rem=80", b"rem=70"],
            b"x-quota-snapshot-chat": [b"garbage"],
            b"x-quota-snapshot-premium_interactions": [b"ent=300&rem=12.5"],
        }
    )
    found = {s.name: s for s in quota_headers(headers.getAllRawHeaders())}
    assert found == {
        "session": QuotaSnapshot("session", percent_remaining=70.0),
        "premium_interactions": QuotaSnapshot(
            "premium_interactions", entitlement=300, percent_remaining=12.5
        ),
    }


def test_the_number_of_snapshots_is_capped() -> None:
    headers = [(f"x-quota-snapshot-q{i}".encode(), [b"rem=1"]) for i in range(100)]
    found = quota_headers(headers)
    assert len(found) == MAX_SNAPSHOTS
    assert [s.name for s in found] == [f"q{i}" for i in range(MAX_SNAPSHOTS)]


def test_the_fake_upstreams_headers_read_back() -> None:
    started = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
    raw = [(n.encode(), [v.encode()]) for n, v in fake_quota_headers(10, started)]
    found = {s.name: s for s in quota_headers(raw)}
    assert set(found) == {"premium_interactions", "chat", "session", "weekly"}
    assert found["session"].percent_remaining == 90.0
    assert found["session"].resets_at == started + 5 * 3600
    assert found["weekly"].resets_at == started + 7 * 86400
    assert found["premium_interactions"].overage_permitted is False


@given(st.binary(max_size=80), st.binary(max_size=700))
def test_parse_never_raises(name: bytes, value: bytes) -> None:
    snapshot = parse_quota_header(b"x-usage-ratelimit-" + name, value)
    if snapshot is not None:
        percent = snapshot.percent_remaining
        assert percent is None or 0.0 <= percent <= 100.0
        assert len(snapshot.name) <= 48


_FIELD_VALUES = st.one_of(
    st.text(max_size=30),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
)


@given(
    st.dictionaries(
        st.sampled_from(["ent", "ov", "ovPerm", "rem", "rst", "x"]), _FIELD_VALUES, max_size=6
    )
)
def test_parse_of_query_strings_never_raises(fields: dict[str, str]) -> None:
    from urllib.parse import urlencode

    value = urlencode(fields).encode("utf-8")
    snapshot = parse_quota_header(b"x-quota-snapshot-chat", value)
    if snapshot is not None:
        percent = snapshot.percent_remaining
        assert percent is None or 0.0 <= percent <= 100.0


@given(st.lists(st.tuples(st.binary(max_size=40), st.lists(st.binary(max_size=100))), max_size=40))
def test_quota_headers_never_raises(headers: list[tuple[bytes, list[bytes]]]) -> None:
    prefixed = [(b"x-quota-snapshot-" + n, v) for n, v in headers[::2]] + headers[1::2]
    assert len(quota_headers(prefixed)) <= MAX_SNAPSHOTS
