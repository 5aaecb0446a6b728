"""
Where Copilot tokens come from: the token source, the credentials and their
order, the stored login, GitHub, renewal.
"""

from ._credentials import Credential, CredentialSettings, find_credential, github_token_reader
from ._github import (
    CopilotToken,
    GitHubAPI,
    GitHubError,
    GitHubRefused,
    GitHubUnavailable,
    parse_copilot_token,
)
from ._refresh import CopilotTokenRefresher, ExpiryWarning, backoff_delay, refresh_delay
from ._source import CredentialKind, StaticToken, TokenSource, TokenUnavailable, token_expiry
from ._store import remove_token, state_dir, store_token, stored_token_path

__all__ = [
    "CopilotToken",
    "CopilotTokenRefresher",
    "Credential",
    "CredentialKind",
    "CredentialSettings",
    "ExpiryWarning",
    "GitHubAPI",
    "GitHubError",
    "GitHubRefused",
    "GitHubUnavailable",
    "StaticToken",
    "TokenSource",
    "TokenUnavailable",
    "backoff_delay",
    "find_credential",
    "github_token_reader",
    "parse_copilot_token",
    "refresh_delay",
    "remove_token",
    "state_dir",
    "store_token",
    "stored_token_path",
    "token_expiry",
]
