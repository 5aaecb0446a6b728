"""
Which credential the proxy uses, when several are around: the first match in
a fixed order wins, and the result says where it came from.

    1. C{--token-file} / C{COPILOT_TOKEN}: a static Copilot token, used as is;
    2. C{--github-token-file} / C{COPILOT_GITHUB_TOKEN}: a GitHub OAuth token;
    3. the stored login (C{copilot-proxy login}) in the state directory;
    4. the login of a GitHub Copilot editor plugin.

Sources 2 to 4 give a GitHub token that is traded for Copilot tokens.  The
order is looked up afresh on each call, so a daemon that calls
L{find_credential} again sees a new login without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..settings import ConfigError, check_token
from ..wire import Secret
from . import _store
from ._source import CredentialKind, read_secret_file

NO_CREDENTIAL = (
    "no credentials: run `copilot-proxy login` "
    "(or set COPILOT_GITHUB_TOKEN, or pass --github-token-file PATH)"
)


@dataclass(frozen=True)
class CredentialSettings:
    """
    Where to look, as the user configured it.  Build with L{from_options}.

    @ivar copilot_token: the value of C{COPILOT_TOKEN}, if set.
    @ivar github_token: the value of C{COPILOT_GITHUB_TOKEN}, if set.
    """

    token_file: str | None
    copilot_token: Secret | None
    github_token_file: str | None
    github_token: Secret | None
    state_dir: Path
    editor_dir: Path
    github_url: str

    @classmethod
    def from_options(
        cls,
        env: Mapping[str, str],
        token_file: str | None = None,
        github_token_file: str | None = None,
        state_dir: str | None = None,
        github_url: str = "https://github.com",
    ) -> CredentialSettings:
        def secret(name: str) -> Secret | None:
            value = env.get(name, "").strip()
            return Secret(value) if value else None

        return cls(
            token_file=token_file or None,
            copilot_token=secret("COPILOT_TOKEN"),
            github_token_file=github_token_file or None,
            github_token=secret("COPILOT_GITHUB_TOKEN"),
            state_dir=_store.state_dir(state_dir, env),
            editor_dir=_store.editor_dir(env),
            github_url=github_url,
        )


@dataclass(frozen=True)
class Credential:
    """
    The credential in use.

    @ivar kind: what it is: a static Copilot token, or a GitHub token to trade
        for Copilot tokens.
    @ivar origin: where it came from, for people: C{"COPILOT_TOKEN"},
        C{"stored login /home/me/.config/copilot-proxy/github-token"}...
    @ivar stored_login: whether it is the stored login of C{copilot-proxy
        login} (the one C{logout} removes).
    """

    kind: CredentialKind
    origin: str
    secret: Secret
    stored_login: bool = False


def _from_file(path: str, kind: CredentialKind) -> Credential:
    # A file named on the command line must work: falling through to another
    # source would hide the mistake.
    try:
        secret = read_secret_file(path)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    check_token(secret.reveal(), path)
    return Credential(kind, f"file {path}", secret)


def find_credential(settings: CredentialSettings) -> Credential:
    """
    The first credential in the order of precedence.

    @raise ConfigError: when none is found, or a file named by an option
        cannot be read; the message says what to do.
    """
    if settings.token_file:
        return _from_file(settings.token_file, CredentialKind.STATIC)
    if settings.copilot_token is not None:
        check_token(settings.copilot_token.reveal(), "COPILOT_TOKEN")
        return Credential(CredentialKind.STATIC, "COPILOT_TOKEN", settings.copilot_token)
    if settings.github_token_file:
        return _from_file(settings.github_token_file, CredentialKind.GITHUB)
    if settings.github_token is not None:
        check_token(settings.github_token.reveal(), "COPILOT_GITHUB_TOKEN")
        return Credential(CredentialKind.GITHUB, "COPILOT_GITHUB_TOKEN", settings.github_token)
    stored = _store.stored_token_path(settings.state_dir)
    token = _store.read_token_file(stored)
    if token is not None:
        return Credential(
            CredentialKind.GITHUB, f"stored login {stored}", token, stored_login=True
        )
    found = _store.editor_token(settings.editor_dir, settings.github_url)
    if found is not None:
        return Credential(CredentialKind.GITHUB, f"editor login {found[1]}", found[0])
    raise ConfigError(NO_CREDENTIAL)


def github_token_reader(settings: CredentialSettings) -> Callable[[], Secret | None]:
    """
    A function that finds the GitHub token again at each call (for the
    refresher), L{None} when there is none right now.
    """

    def read() -> Secret | None:
        try:
            credential = find_credential(settings)
        except ConfigError:
            return None
        return credential.secret if credential.kind is CredentialKind.GITHUB else None

    return read
