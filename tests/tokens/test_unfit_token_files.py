"""
Token files that are no files to read (a FIFO, a link to C{/dev/zero}, one
far too large): a file named by an option fails the start with one reason;
the watch for a new GitHub token sees none, as for an unreadable file; a
stored or editor login of that kind is passed over, as a broken one is.
Nothing waits, nothing is read whole, no token is shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot_proxy.settings import ConfigError
from copilot_proxy.tokens import (
    CredentialKind,
    CredentialSettings,
    find_credential,
    github_token_reader,
    state_dir,
)

from .._unfit_files import OVERSIZED, REFUSAL, bounded, replace_with

KINDS = sorted(REFUSAL)
GITHUB_TOKEN = "gho_0123456789abcdefghij"
COPILOT_TOKEN = "tid=unfit;exp=1"
EDITOR_TOKEN = "ghu_editor_token"


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home")}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("option", ["token_file", "github_token_file"])
def test_an_unfit_token_file_fails_the_start_naming_it(
    tmp_path: Path, home: dict[str, str], option: str, kind: str
) -> None:
    path = replace_with(tmp_path / "token", kind, GITHUB_TOKEN)
    settings = CredentialSettings.from_options(home, **{option: str(path)})
    with bounded(), pytest.raises(ConfigError) as caught:
        find_credential(settings)
    message = str(caught.value)
    assert message.startswith(f"cannot read token file {path}: {REFUSAL[kind]}")
    assert GITHUB_TOKEN not in message


@pytest.mark.parametrize("kind", KINDS)
def test_the_watch_for_a_new_github_token_sees_none_in_an_unfit_file(
    tmp_path: Path, home: dict[str, str], kind: str
) -> None:
    path = tmp_path / "github-token"
    path.write_text(GITHUB_TOKEN + "\n")
    read = github_token_reader(CredentialSettings.from_options(home, github_token_file=str(path)))
    token = read()
    assert token is not None and token.reveal() == GITHUB_TOKEN

    replace_with(path, kind, GITHUB_TOKEN)
    with bounded():
        assert read() is None
    path.unlink()
    assert read() is None, "the same as a file that cannot be read"


@pytest.mark.parametrize("kind", KINDS)
def test_an_unfit_stored_login_is_passed_over_for_the_editor_login(
    home: dict[str, str], kind: str
) -> None:
    stored = state_dir(None, home) / "github-token"
    stored.parent.mkdir(parents=True)
    replace_with(stored, kind, GITHUB_TOKEN)
    editor = Path(home["HOME"]) / ".config" / "github-copilot"
    editor.mkdir(parents=True)
    (editor / "apps.json").write_text(
        json.dumps({"github.com:Iv1.b507a08c87ecfe98": {"oauth_token": EDITOR_TOKEN}})
    )
    with bounded():
        credential = find_credential(CredentialSettings.from_options(home))
    assert credential.kind is CredentialKind.GITHUB
    assert credential.secret.reveal() == EDITOR_TOKEN


@pytest.mark.parametrize("kind", KINDS)
def test_unfit_editor_logins_are_passed_over(home: dict[str, str], kind: str) -> None:
    editor = Path(home["HOME"]) / ".config" / "github-copilot"
    editor.mkdir(parents=True)
    entry = json.dumps({"github.com": {"oauth_token": EDITOR_TOKEN}})
    for name in ("apps.json", "hosts.json"):
        if kind == "oversized":
            # Valid JSON all the same: only its size is wrong.
            (editor / name).write_text(entry + " " * OVERSIZED)
        else:
            replace_with(editor / name, kind, entry)
    with bounded(), pytest.raises(ConfigError, match="no credentials"):
        find_credential(CredentialSettings.from_options(home))


def test_a_token_is_the_first_line_whatever_ends_it(tmp_path: Path, home: dict[str, str]) -> None:
    path = tmp_path / "token"
    path.write_text(COPILOT_TOKEN + "\r\n" + "#" * 1000 + "\n")
    credential = find_credential(CredentialSettings.from_options(home, token_file=str(path)))
    assert credential.secret.reveal() == COPILOT_TOKEN
