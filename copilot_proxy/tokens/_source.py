"""
Where the Copilot token comes from, and how it is kept out of sight.

The resource asks a L{TokenSource} for the C{Authorization} value of each
request.  Secrets travel wrapped in L{Secret} so that no C{repr()}, log line
or exception message can show them by accident.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Protocol

from twisted.internet.defer import Deferred, fail, succeed

from ..settings import TOKEN_FILE_LIMIT, read_operator_file
from ..wire import Secret


class TokenUnavailable(Exception):
    """
    No usable Copilot token right now.

    The message is shown to clients (in a 503 body) and must say what to do;
    it never contains a token.
    """


class CredentialKind(str, Enum):
    """
    What a credential is, which decides how the proxy uses it; the value is
    what the health page shows as the token's C{source}.
    """

    #: A Copilot token, used as is until it expires (C{--token-file}, C{COPILOT_TOKEN}).
    STATIC = "static"
    #: A GitHub token, traded for Copilot tokens that are renewed (every other source).
    GITHUB = "github"
    #: No credential of the proxy's own: every request uses its key's seat
    #: (C{--seats-only}).
    SEATS = "seats"

    def __str__(self) -> str:
        return self.value


class TokenSource(Protocol):
    """
    What the proxy needs from anything that supplies Copilot tokens: the
    C{Authorization} values for requests, and what health checks and metrics
    read about its state.
    """

    @property
    def source(self) -> CredentialKind:
        """The kind of credential the tokens come from."""

    @property
    def usable(self) -> bool:
        """Whether a token is at hand and unexpired (health turns 503 when not)."""

    @property
    def refreshes(self) -> int:
        """Copilot tokens obtained so far (0 for a token never renewed)."""

    @property
    def refresh_failures(self) -> int:
        """Renewals that failed so far."""

    def expires_in(self) -> float | None:
        """Seconds until the current token expires; L{None} when unknown or never."""

    def authorization(self) -> Deferred[bytes]:
        """
        The complete C{Authorization} header value for the next upstream
        request.  Fires at once when a valid token is at hand; fails with
        L{TokenUnavailable} when none can be had.
        """

    def refreshed_after(self, rejected: bytes) -> Deferred[bytes | None]:
        """
        The upstream refused C{rejected} (an earlier L{authorization} value)
        with 401: a fresher C{Authorization} value to replay the request
        with, or L{None} when there is none to be had (the 401 then passes
        to the client).  May fail with L{TokenUnavailable}.
        """


class StaticToken:
    """A Copilot token given at start and used as is, never refreshed."""

    source = CredentialKind.STATIC
    refreshes = 0
    refresh_failures = 0

    def __init__(self, token: Secret) -> None:
        self._header = b"Bearer " + token.reveal().encode("ascii")
        self._expiry = token_expiry(token.reveal())

    def authorization(self) -> Deferred[bytes]:
        return succeed(self._header)

    def expires_in(self) -> float | None:
        """Seconds left until the token's C{exp=} time; L{None} if it has none."""
        return None if self._expiry is None else self._expiry - time.time()

    @property
    def usable(self) -> bool:
        """False once the token's C{exp=} time has passed (health turns 503)."""
        return self._expiry is None or time.time() < self._expiry

    def refreshed_after(self, rejected: bytes) -> Deferred[bytes | None]:
        return succeed(None)

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class SeatsOnly:
    """
    The proxy's own token source under C{--seats-only}: there is none, and
    nothing asks for one (the gate refuses keys bound to no seat); health
    stays ok, since each seat's state is its own.
    """

    source = CredentialKind.SEATS
    refreshes = 0
    refresh_failures = 0
    usable = True

    def authorization(self) -> Deferred[bytes]:
        return fail(TokenUnavailable("this proxy serves seats only (--seats-only)"))

    def expires_in(self) -> float | None:
        return None

    def refreshed_after(self, rejected: bytes) -> Deferred[bytes | None]:
        return succeed(None)

    def __repr__(self) -> str:
        return "SeatsOnly()"


def token_expiry(token: str) -> float | None:
    """
    The expiry a Copilot token carries in its C{exp=} field (POSIX seconds),
    or L{None} when it has none: Copilot tokens read C{tid=...;exp=...;...}.
    """
    for field in token.split(";"):
        name, sep, value = field.partition("=")
        if sep and name.strip() == "exp":
            try:
                return float(value.partition(":")[0])
            except ValueError:
                return None
    return None


def first_line(text: str) -> str:
    """
    The first line of a file's text without surrounding whitespace; lines
    end as in Python's text files (C{\\n}, C{\\r\\n} or C{\\r}).
    """
    return text.replace("\r", "\n").partition("\n")[0].strip()


def read_secret_file(path: str) -> Secret:
    """
    Read a token from a file: the first line, without surrounding whitespace.

    @raise ValueError: with a message naming the file (not its content) when
        it cannot be read, is not a regular file, is larger than
        C{TOKEN_FILE_LIMIT} or holds no token.
    """
    try:
        value = first_line(read_operator_file(path, TOKEN_FILE_LIMIT).decode("utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read token file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"token file {path} is not text") from None
    if not value:
        raise ValueError(f"token file {path} is empty")
    return Secret(value)
