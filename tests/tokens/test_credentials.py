"""
Where the credential comes from: the order of precedence, the stored login's
file rules, and the editor plugins' files.  Every path is under tmp_path.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from copilot_proxy.settings import ConfigError
from copilot_proxy.tokens import (
    CredentialKind,
    CredentialSettings,
    find_credential,
    github_token_reader,
    remove_token,
    state_dir,
    store_token,
)
from copilot_proxy.wire import Secret


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home")}


def _editor(home: dict[str, str], name: str, entries: object) -> Path:
    directory = Path(home["HOME"]) / ".config" / "github-copilot"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(entries))
    return path


def _all_sources(tmp_path: Path, home: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Every source present, each with its own token; returns env and options."""
    (tmp_path / "copilot").write_text("tid=from-file;exp=1\n")
    (tmp_path / "github").write_text("gho_from_file\n")
    store_token(state_dir(None, home), Secret("gho_stored"))
    _editor(home, "apps.json", {"github.com:Iv1.b507a08c87ecfe98": {"oauth_token": "ghu_editor"}})
    env = dict(home, COPILOT_TOKEN="tid=from-env;exp=1", COPILOT_GITHUB_TOKEN="gho_from_env")
    options = {
        "token_file": str(tmp_path / "copilot"),
        "github_token_file": str(tmp_path / "github"),
    }
    return env, options


def test_precedence_first_match_wins(tmp_path: Path, home: dict[str, str]) -> None:
    env, options = _all_sources(tmp_path, home)
    seen = []
    # Remove the winning source each round; the next one in line takes over.
    for _ in range(6):
        try:
            credential = find_credential(CredentialSettings.from_options(env, **options))
        except ConfigError as e:
            seen.append(("none", str(e)))
            break
        seen.append((credential.kind, credential.secret.reveal()))
        if "token_file" in options:
            del options["token_file"]
        elif "COPILOT_TOKEN" in env:
            del env["COPILOT_TOKEN"]
        elif "github_token_file" in options:
            del options["github_token_file"]
        elif "COPILOT_GITHUB_TOKEN" in env:
            del env["COPILOT_GITHUB_TOKEN"]
        elif remove_token(state_dir(None, home)):
            pass
        else:
            (Path(home["HOME"]) / ".config" / "github-copilot" / "apps.json").unlink()
    assert seen[:6] == [
        (CredentialKind.STATIC, "tid=from-file;exp=1"),
        (CredentialKind.STATIC, "tid=from-env;exp=1"),
        (CredentialKind.GITHUB, "gho_from_file"),
        (CredentialKind.GITHUB, "gho_from_env"),
        (CredentialKind.GITHUB, "gho_stored"),
        (CredentialKind.GITHUB, "ghu_editor"),
    ]


def test_no_credential_says_to_log_in(home: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="run `copilot-proxy login`"):
        find_credential(CredentialSettings.from_options(home))


def test_origin_names_the_source_without_the_token(tmp_path: Path, home: dict[str, str]) -> None:
    env, options = _all_sources(tmp_path, home)
    del env["COPILOT_TOKEN"], env["COPILOT_GITHUB_TOKEN"]
    credential = find_credential(CredentialSettings.from_options(env))
    assert credential.origin.startswith("stored login ")
    assert credential.origin.endswith("copilot-proxy/github-token")
    assert "gho_stored" not in credential.origin + repr(credential)


def test_a_named_file_that_is_missing_fails_rather_than_falling_through(
    tmp_path: Path, home: dict[str, str]
) -> None:
    store_token(state_dir(None, home), Secret("gho_stored"))
    settings = CredentialSettings.from_options(home, github_token_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="missing"):
        find_credential(settings)


def test_state_dir_order(tmp_path: Path) -> None:
    env = {"HOME": "/home/me", "XDG_CONFIG_HOME": "/xdg", "STATE_DIRECTORY": "/var/lib/cp:/x"}
    assert state_dir("/opt/state", env) == Path("/opt/state")
    assert state_dir(None, env) == Path("/var/lib/cp")
    del env["STATE_DIRECTORY"]
    assert state_dir(None, env) == Path("/xdg/copilot-proxy")
    del env["XDG_CONFIG_HOME"]
    assert state_dir(None, env) == Path("/home/me/.config/copilot-proxy")


def test_stored_login_is_0600_in_a_0700_directory_and_replaced_whole(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    path = store_token(directory, Secret("gho_one"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    first_inode = os.stat(path).st_ino
    store_token(directory, Secret("gho_two"))
    assert path.read_text() == "gho_two\n"
    # Replaced by rename, not rewritten in place; no temporary file left.
    assert os.stat(path).st_ino != first_inode
    assert sorted(p.name for p in directory.iterdir()) == ["github-token"]


def test_editor_hosts_json_and_enterprise_host(home: dict[str, str]) -> None:
    _editor(
        home,
        "hosts.json",
        {"ghe.example.com": {"oauth_token": "ghu_ghe"}, "github.com": {"oauth_token": "ghu_dot"}},
    )
    settings = CredentialSettings.from_options(home)
    assert find_credential(settings).secret == Secret("ghu_dot")
    ghe = CredentialSettings.from_options(home, github_url="https://ghe.example.com")
    assert find_credential(ghe).secret == Secret("ghu_ghe")


def test_broken_editor_files_are_skipped(home: dict[str, str]) -> None:
    directory = Path(home["HOME"]) / ".config" / "github-copilot"
    directory.mkdir(parents=True)
    (directory / "apps.json").write_text("{not json")
    _editor(home, "hosts.json", {"github.com": {"user": "x"}})
    with pytest.raises(ConfigError):
        find_credential(CredentialSettings.from_options(home))


def test_reader_sees_a_new_login_and_ignores_static_tokens(
    tmp_path: Path, home: dict[str, str]
) -> None:
    read = github_token_reader(CredentialSettings.from_options(home))
    assert read() is None
    store_token(state_dir(None, home), Secret("gho_later"))
    assert read() == Secret("gho_later")
    static = github_token_reader(CredentialSettings.from_options(dict(home, COPILOT_TOKEN="t")))
    assert static() is None
