"""
Client keys: who may use the proxy.

The proxy hands out a paid, personal credential, so when it is shared every
caller must present a key of its own.  Keys come from a file (one per line,
an optional name after whitespace, C{#} comments) and from
C{PROXY_CLIENT_KEYS} (comma-separated).  Only SHA-256 digests of the keys are
kept in memory, every check compares the presented key with I{all} of them in
constant time, and what the logs get is the key's name, or a short hash of it
when it has none.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from twisted.web.http_headers import Headers

from ..settings import KEYS_FILE_LIMIT, read_operator_file

# Shorter keys are refused at start: a key that can be guessed is no key.
MIN_KEY_LENGTH = 16

_KEY_CHARS = re.compile(r"[\x21-\x7e]+")
_NAME_CHARS = re.compile(r"[A-Za-z0-9._@:+-]{1,64}")


class KeyFileError(ValueError):
    """A keys file or value is unusable; the message never holds a key."""


@dataclass(frozen=True)
class ClientKey:
    """
    One client key as the proxy keeps it: a digest and a name for logs.

    @ivar digest: SHA-256 of the key.
    @ivar label: the key's name, or C{key-<8 hex digits of its digest>}.
    """

    digest: bytes
    label: str

    def __repr__(self) -> str:
        return f"ClientKey({self.label})"


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def client_key(key: str, name: str | None, origin: str) -> ClientKey:
    """
    Check one key and keep only its digest.

    @param origin: where the key came from, for the error message (never the
        key itself).
    @raise KeyFileError: when the key could not travel in a header or is too
        short to be safe, or the name is not a plain word.
    """
    if not _KEY_CHARS.fullmatch(key):
        raise KeyFileError(f"the client key {origin} holds spaces or non-ASCII characters")
    if len(key) < MIN_KEY_LENGTH:
        raise KeyFileError(
            f"the client key {origin} is shorter than {MIN_KEY_LENGTH} characters; "
            "make one with: openssl rand -hex 24"
        )
    if name is not None and not _NAME_CHARS.fullmatch(name):
        raise KeyFileError(
            f"the key name {origin} must be 1-64 letters, digits or ._@:+- characters"
        )
    digest = _digest(key.encode("ascii"))
    return ClientKey(digest, name if name is not None else "key-" + digest.hex()[:8])


def parse_keys_file(text: str, path: str) -> list[ClientKey]:
    """
    The keys in a keys file's text: C{KEY [NAME]} per line; blank lines and
    everything from a C{#} that starts a word on are ignored.
    """
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        words = []
        for word in line.split():
            if word.startswith("#"):
                break
            words.append(word)
        if not words:
            continue
        if len(words) > 2:
            raise KeyFileError(f"line {number} of {path} has more than a key and a name")
        name = words[1] if len(words) == 2 else None
        keys.append(client_key(words[0], name, f"on line {number} of {path}"))
    return keys


def parse_keys_env(value: str) -> list[ClientKey]:
    """The keys in C{PROXY_CLIENT_KEYS}: comma-separated, unnamed."""
    keys = []
    for number, key in enumerate((k.strip() for k in value.split(",") if k.strip()), 1):
        keys.append(client_key(key, None, f"number {number} in PROXY_CLIENT_KEYS"))
    return keys


def read_keys_file(path: str) -> list[ClientKey]:
    """
    Read and parse a keys file.

    @raise KeyFileError: naming the file (not its content) when it cannot be
        read, is not a regular file, is larger than C{KEYS_FILE_LIMIT} or
        holds a bad line.
    """
    try:
        text = read_operator_file(path, KEYS_FILE_LIMIT).decode("utf-8")
    except OSError as e:
        raise KeyFileError(f"cannot read client keys file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"client keys file {path} is not text") from None
    return parse_keys_file(text, path)


def readable_by_others(path: str) -> bool:
    """Whether users other than the owner may read the keys file."""
    try:
        return bool(os.stat(path).st_mode & 0o044)
    except OSError:
        return False


def presented_keys(headers: Headers) -> list[bytes]:
    """
    The keys a request presents: C{Authorization: Bearer <key>} (OpenAI SDKs)
    and C{x-api-key: <key>} (Anthropic SDKs).  A client may send both, with
    a placeholder in one of them; either may carry the real key.
    """
    found = []
    for value in headers.getRawHeaders(b"authorization", ()):
        scheme, _, credential = value.strip().partition(b" ")
        if scheme.lower() == b"bearer" and credential.strip():
            found.append(credential.strip())
    for value in headers.getRawHeaders(b"x-api-key", ()):
        if value.strip():
            found.append(value.strip())
    return found[:4]


class KeyStore(Protocol):
    """
    What the proxy asks of the keys it knows: per process today, and the
    seam where a store shared between worker processes would go.
    """

    def __len__(self) -> int:
        """How many keys are configured; none means the proxy is open."""

    def identify(self, presented: Sequence[bytes]) -> str | None:
        """The label of the key among C{presented} that is known, or L{None}."""


class ClientKeys:
    """
    The keys of one process, replaceable at once (see L{replace}).
    """

    def __init__(self, keys: Iterable[ClientKey] = ()) -> None:
        self._keys: tuple[ClientKey, ...] = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"ClientKeys({len(self._keys)} keys)"

    def replace(self, keys: Iterable[ClientKey]) -> None:
        """Use these keys from now on: requests already admitted are unaffected."""
        self._keys = tuple(keys)

    def identify(self, presented: Sequence[bytes]) -> str | None:
        # Digests make every comparison the same length, and every key is
        # compared whatever matched, so timing tells nothing about the keys.
        label = None
        for candidate in presented:
            digest = _digest(candidate)
            for key in self._keys:
                if hmac.compare_digest(digest, key.digest) and label is None:
                    label = key.label
        return label


class KeysFromFile(ClientKeys):
    """
    Keys from a file plus fixed ones (from the environment), re-read from the
    file by L{reload}.
    """

    def __init__(self, path: str | None, fixed: Iterable[ClientKey] = ()) -> None:
        self.path = path
        self._fixed = tuple(fixed)
        super().__init__(self._load())

    def _load(self) -> list[ClientKey]:
        from_file = []
        if self.path is not None:
            from_file = read_keys_file(self.path)
            if not from_file:
                # An empty file must not silently open the proxy to anyone.
                raise KeyFileError(f"client keys file {self.path} holds no key")
        return [*from_file, *self._fixed]

    def reload(self) -> int:
        """
        Re-read the file; on any error keep the keys in use.

        @return: how many keys are in use now.
        @raise KeyFileError: when the file cannot be used (nothing changed).
        """
        self.replace(self._load())
        return len(self)


#: What a client without a valid key is told (401), wherever it is refused.
KEY_REQUIRED = (
    "a valid client key is required: send it as 'Authorization: Bearer <key>' or "
    "'x-api-key: <key>'"
)
#: The challenge of that 401.
KEY_CHALLENGE = b'Bearer realm="copilot-proxy"'


@dataclass(frozen=True)
class KeyCheck:
    """
    The verdict on the client key a request presents.

    @ivar allowed: whether the request may pass (a known key, or no keys
        configured).
    @ivar name: the known key's name, or L{None}.
    """

    allowed: bool
    name: str | None


def check_client_key(keys: KeyStore | None, headers: Headers) -> KeyCheck:
    """
    The one check of a request's client key, made by the access gate and,
    before the body is read, by the HTTP channel.
    """
    if keys is None or not len(keys):
        return KeyCheck(True, None)
    name = keys.identify(presented_keys(headers))
    return KeyCheck(name is not None, name)
