"""
Where Copilot tokens come from: the token source, the credentials and their
order, the stored login, GitHub, renewal.
"""

from ._credentials import Credential, CredentialSettings, find_credential, github_token_reader
from ._device import DeviceLoginFailed, wait_for_approval
from ._github import (
    CopilotToken,
    DeviceCode,
    GitHubAPI,
    GitHubError,
    GitHubRefused,
    GitHubUnavailable,
    parse_copilot_token,
)
from ._refresh import CopilotTokenRefresher, ExpiryWarning, backoff_delay, refresh_delay
from ._seats import (
    IDLE_AFTER,
    Seat,
    SeatPool,
    check_seat_name,
    read_seat_token,
    remove_seat_token,
    seat_token_path,
    store_seat_token,
    stored_seats,
)
from ._source import (
    CredentialKind,
    SeatsOnly,
    StaticToken,
    TokenSource,
    TokenUnavailable,
    token_expiry,
)
from ._store import remove_token, state_dir, store_token, stored_token_path

__all__ = [
    "IDLE_AFTER",
    "CopilotToken",
    "CopilotTokenRefresher",
    "Credential",
    "CredentialKind",
    "CredentialSettings",
    "DeviceCode",
    "DeviceLoginFailed",
    "ExpiryWarning",
    "GitHubAPI",
    "GitHubError",
    "GitHubRefused",
    "GitHubUnavailable",
    "Seat",
    "SeatPool",
    "SeatsOnly",
    "StaticToken",
    "TokenSource",
    "TokenUnavailable",
    "backoff_delay",
    "check_seat_name",
    "find_credential",
    "github_token_reader",
    "parse_copilot_token",
    "read_seat_token",
    "refresh_delay",
    "remove_seat_token",
    "remove_token",
    "seat_token_path",
    "state_dir",
    "store_seat_token",
    "store_token",
    "stored_seats",
    "stored_token_path",
    "token_expiry",
    "wait_for_approval",
]
