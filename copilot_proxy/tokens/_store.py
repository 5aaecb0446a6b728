"""
Where GitHub tokens are kept on disk: the stored login of C{copilot-proxy
login}, and the tokens the GitHub Copilot editor plugins leave behind.

The caller passes the environment in (no C{os.environ} here), so tests point
everything at temporary directories.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from ..settings import TOKEN_FILE_LIMIT, read_operator_file
from ..wire import Secret
from ._source import first_line

TOKEN_FILE_NAME = "github-token"  # noqa: S105 - a file name


def _config_home(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_CONFIG_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    home = env.get("HOME", "").strip() or os.path.expanduser("~")
    return Path(home) / ".config"


def state_dir(option: str | None, env: Mapping[str, str]) -> Path:
    """
    The directory that holds the stored login.

    C{--state-dir} when given; else systemd's C{$STATE_DIRECTORY} (its first
    entry, when the unit names several); else
    C{$XDG_CONFIG_HOME/copilot-proxy}, C{~/.config/copilot-proxy} by default.
    """
    if option:
        return Path(option).expanduser()
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0].strip()
    if systemd:
        return Path(systemd)
    return _config_home(env) / "copilot-proxy"


def editor_dir(env: Mapping[str, str]) -> Path:
    """Where the GitHub Copilot editor plugins keep their login."""
    return _config_home(env) / "github-copilot"


def stored_token_path(directory: Path) -> Path:
    return directory / TOKEN_FILE_NAME


def read_token_file(path: Path) -> Secret | None:
    """
    The first line of a token file, or L{None} when the file is missing,
    unreadable, empty, not a regular file or larger than
    C{TOKEN_FILE_LIMIT} (a broken file is the same as none: the next source
    in line is used).
    """
    try:
        value = first_line(read_operator_file(path, TOKEN_FILE_LIMIT).decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    if not value or not value.isascii() or not value.isprintable() or " " in value:
        return None
    return Secret(value)


def store_token(directory: Path, token: Secret) -> Path:
    """
    Store a GitHub token as C{directory/github-token}, mode 0600, in a
    directory of mode 0700, replacing any earlier one atomically: a reader
    (the daemon watching for a new login) sees the old token or the new one,
    never half a file.

    @raise OSError: when the directory or file cannot be written.
    """
    return write_secret_file(directory, TOKEN_FILE_NAME, token)


def write_secret_file(directory: Path, name: str, token: Secret) -> Path:
    """
    Write C{token} as C{directory/name} the way L{store_token} does: 0600,
    in a 0700 directory, atomically.

    @raise OSError: when the directory or file cannot be written.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    target = directory / name
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        # mkstemp creates the file 0600 already; say so anyway.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token.reveal() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return target


def remove_token(directory: Path) -> bool:
    """Delete the stored login; L{True} when there was one."""
    try:
        stored_token_path(directory).unlink()
    except FileNotFoundError:
        return False
    return True


def editor_token(directory: Path, github_url: str) -> tuple[Secret, Path] | None:
    """
    A GitHub OAuth token left by a Copilot editor plugin for C{github_url}'s
    host, and the file it came from; L{None} when there is none.

    The plugins write C{apps.json} (keys C{host:client_id}) or, older ones,
    C{hosts.json} (keys C{host}); each value holds C{oauth_token}.
    """
    host = (urlsplit(github_url).hostname or "github.com").lower()
    for name in ("apps.json", "hosts.json"):
        path = directory / name
        try:
            entries = json.loads(read_operator_file(path, TOKEN_FILE_LIMIT))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            if not isinstance(key, str) or not isinstance(value, dict):
                continue
            if key.lower() != host and not key.lower().startswith(host + ":"):
                continue
            token = value.get("oauth_token")
            if isinstance(token, str) and token.strip().isascii() and token.strip():
                return Secret(token.strip()), path
    return None
