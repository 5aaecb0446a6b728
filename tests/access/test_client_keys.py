"""Client keys: the file format, the environment, matching (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.web.http_headers import Headers

from copilot_proxy.access import (
    ClientKeys,
    KeyFileError,
    KeysFromFile,
    parse_keys_env,
    parse_keys_file,
    presented_keys,
)

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"


def test_file_format_keys_names_and_comments() -> None:
    keys = parse_keys_file(
        f"# team keys\n\n{ALICE} alice\n   {BOB}   # bob's laptop\n", "keys.txt"
    )
    store = ClientKeys(keys)
    assert store.identify([ALICE.encode()]) == "alice"
    label = store.identify([BOB.encode()])
    assert label is not None and label.startswith("key-") and len(label) == 12
    assert BOB not in label


def test_unknown_missing_and_near_miss_keys_are_not_identified() -> None:
    store = ClientKeys(parse_keys_file(f"{ALICE} alice\n", "k"))
    assert store.identify([]) is None
    assert store.identify([b"sk-alice-0123456789abcdeX"]) is None
    assert store.identify([ALICE.encode() + b"0"]) is None
    assert store.identify([b"placeholder", ALICE.encode()]) == "alice"


def test_environment_keys_are_comma_separated() -> None:
    store = ClientKeys(parse_keys_env(f" {ALICE} ,, {BOB}"))
    assert len(store) == 2
    assert store.identify([BOB.encode()]) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sk-tiny name\n", "shorter than 16"),
        (f"{ALICE} alice extra\n", "unknown setting 'extra'"),
        (f"{ALICE} al/ice\n", "key name"),
        (
            "sk-\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\n",
            "non-ASCII",
        ),
    ],
)
def test_bad_lines_are_refused_without_showing_the_key(text: str, message: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        parse_keys_file("# ok\n" + text, "keys.txt")
    assert message in str(caught.value)
    assert "line 2 of keys.txt" in str(caught.value)
    assert text.split()[0] not in str(caught.value)


def test_reload_replaces_keys_and_a_broken_file_keeps_the_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice\n")
    store = KeysFromFile(str(path), parse_keys_env(BOB))
    assert store.identify([ALICE.encode()]) == "alice"
    path.write_text(f"{ALICE[:-1]}X alice2\n")
    assert store.reload() == 2
    assert store.identify([ALICE.encode()]) is None
    assert store.identify([BOB.encode()]) is not None
    path.write_text("")
    with pytest.raises(KeyFileError, match="holds no key"):
        store.reload()
    assert store.identify([f"{ALICE[:-1]}X".encode()]) == "alice2"
    assert ALICE not in repr(store) and "alice2" not in repr(store)


def test_keys_are_read_from_bearer_and_x_api_key() -> None:
    headers = Headers(
        {b"Authorization": [b"Bearer  sk-one "], b"x-api-key": [b"sk-two"], b"X-Other": [b"x"]}
    )
    assert presented_keys(headers) == [b"sk-one", b"sk-two"]
    assert presented_keys(Headers({b"Authorization": [b"Basic abc"]})) == []
