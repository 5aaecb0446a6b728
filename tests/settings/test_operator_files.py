"""
The one reader of operator files: only regular files, never more than a cap,
and never a wait, whatever the path leads to.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from copilot_proxy.settings import KEYS_FILE_LIMIT, read_operator_file

from .._unfit_files import REFUSAL, bounded, replace_with


def test_a_regular_file_and_a_link_to_one_are_read(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"content\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_operator_file(tmp_path / "real", 100) == b"content\n"
    assert read_operator_file(str(tmp_path / "link"), 100) == b"content\n"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "oversized"])
def test_unfit_files_are_refused_at_once_naming_what_they_are(tmp_path: Path, kind: str) -> None:
    path = replace_with(tmp_path / "file", kind, "secret-first-line")
    with bounded(), pytest.raises(OSError) as caught:
        read_operator_file(path, KEYS_FILE_LIMIT)
    assert REFUSAL[kind] in str(caught.value.strerror)
    assert caught.value.filename == str(path)
    assert "secret-first-line" not in str(caught.value)


def test_a_directory_and_a_socket_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="it is a directory, not a regular file"):
        read_operator_file(tmp_path, 100)
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "sock"))
        with pytest.raises(OSError, match="it is a socket, not a regular file"):
            read_operator_file(tmp_path / "sock", 100)


def test_a_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"k" * 1024)
    assert len(read_operator_file(path, 1024)) == 1024
    with pytest.raises(OSError, match="it is larger than 1023 bytes"):
        read_operator_file(path, 1023)


def test_a_missing_file_fails_as_open_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_operator_file(tmp_path / "missing", 100)


def test_a_file_that_grows_after_its_size_was_read_costs_at_most_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing"
    path.write_bytes(b"k" * 10 * 1024 * 1024)
    real_fstat, real_read = os.fstat, os.read
    asked: list[int] = []

    def fstat_before_growth(fd: int) -> Any:
        # As if the file were empty when looked at, and grew right after.
        result = real_fstat(fd)
        return os.stat_result((*result[:6], 0, *result[7:]))

    def counted_read(fd: int, count: int) -> bytes:
        asked.append(count)
        return real_read(fd, count)

    monkeypatch.setattr(os, "fstat", fstat_before_growth)
    monkeypatch.setattr(os, "read", counted_read)
    with pytest.raises(OSError, match="it is larger than 1 MiB"):
        read_operator_file(path, 1024 * 1024)
    assert sum(asked) <= 1024 * 1024 + 1
