"""
Validated settings of a proxy, and the rules that turn option strings into
them.  Pure: no environment, no argv, no reactor (the tap module reads those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..wire import ForwardProxy

DEFAULT_UPSTREAM = "https://api.individual.githubcopilot.com"
DEFAULT_PORT = "8080"

# Pending connections the kernel queues for accept() on a bare --port (the
# kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 1024
DEFAULT_ADMIN_PREFIX = "/_proxy/"


class ConfigError(ValueError):
    """A setting is invalid; the message is one line fit for a user."""


class MessagesMode(str, Enum):
    """How C{POST /v1/messages} is served (C{--messages-mode})."""

    #: The router decides: Claude models to the upstream's own
    #: C{/v1/messages} when the catalog lists it, untranslated.
    AUTO = "auto"
    #: Anthropic clients are never sent to native C{/v1/messages}: their
    #: requests are translated for another endpoint the model lists (the
    #: behaviour before the router; kept for those who set it).
    TRANSLATE = "translate"
    #: The same as L{AUTO} (the name before the router).
    NATIVE = "native"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ProxyConfig:
    """
    Everything the proxy path needs to know, already checked.

    @ivar listen: a Twisted server endpoint description.
    @ivar upstream: the upstream base URL without a trailing slash; request
        paths are appended to it as they came.
    @ivar headers: C{--header} overrides of the Copilot request headers, as
        (lower-case name, value); an empty value drops that default.
    @ivar body_memory: the most bytes of large request bodies held at once
        (C{--max-body-memory}); L{None} for no bound.
    @ivar sse_keepalive: seconds of upstream silence before an event stream
        gets a keep-alive comment; L{None} for never.
    @ivar forward_proxy: the HTTP proxy that upstream connections tunnel
        through (from C{HTTPS_PROXY}), or L{None} for direct connections.
    @ivar upstream_ca: PEM certificates that upstream TLS must chain to,
        instead of the platform's trust store; L{None} for the platform's.
    @ivar messages_mode: C{translate} or C{native}, for C{/v1/messages}.
    @ivar model_map: C{--model-map} entries, (from, to).
    @ivar metrics_dir: with C{--workers}, where every process keeps its
        metric values for the others to sum; L{None} for one process.
    """

    listen: str
    upstream: bytes
    connect_timeout: float = 10.0
    idle_timeout: float = 300.0
    shutdown_grace: float = 30.0
    admin_prefix: bytes = DEFAULT_ADMIN_PREFIX.encode("ascii")
    forward_proxy: ForwardProxy | None = None
    upstream_ca: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    sse_keepalive: float | None = 15.0
    body_memory: int | None = 256 * 1024 * 1024
    messages_mode: MessagesMode = MessagesMode.AUTO
    model_map: tuple[tuple[str, str], ...] = ()
    metrics_dir: str | None = None


def listen_description(port: str) -> str:
    """
    Turn C{--port} into an endpoint description.

    A bare number means TCP on 127.0.0.1 only: the proxy hands out a paid
    credential and must not be reachable from elsewhere unless asked to be.
    Its accept queue holds L{LISTEN_BACKLOG} connections, not Twisted's 50: a
    burst of new clients beyond the queue has its SYNs dropped and retried
    after 1, 3, 7 s.  Anything else is taken as an endpoint description and checked when the
    listener is built.
    """
    port = port.strip()
    if port.isdigit():
        number = int(port)
        if not 0 <= number <= 65535:
            raise ConfigError(f"--port {port} is not a TCP port number (0-65535)")
        return f"tcp:{number}:interface=127.0.0.1:backlog={LISTEN_BACKLOG}"
    if not port:
        raise ConfigError("--port is empty: give a port number or an endpoint description")
    return port


def upstream_base(url: str) -> bytes:
    """
    Check an upstream base URL and return it as bytes without a trailing
    slash.  Any path prefix is kept; a query or fragment is refused, since
    request paths are appended to the base.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"upstream URL {url!r} must start with https:// or http://")
    if not parts.hostname:
        raise ConfigError(f"upstream URL {url!r} has no host")
    if parts.query or parts.fragment:
        raise ConfigError(f"upstream URL {url!r} must not carry a query or fragment")
    if parts.username or parts.password:
        raise ConfigError("upstream URL must not carry credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"upstream URL {url!r} has an invalid port") from None
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    if not base.isascii():
        raise ConfigError(f"upstream URL {url!r} must be ASCII (punycode and %-escapes)")
    return base.encode("ascii")


def positive_seconds(name: str, value: str | float) -> float:
    """Parse a duration option: a positive number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds")
    return seconds


_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def check_token(token: str, origin: str) -> str:
    """
    Refuse a token that could not travel in an HTTP header (or would split
    one).  The message names where the token came from, never its value.
    """
    if not _TOKEN_CHARS.fullmatch(token):
        raise ConfigError(f"the token from {origin} holds spaces or non-ASCII characters")
    return token


_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+/")


def admin_prefix(prefix: str) -> bytes:
    """
    Check C{--admin-prefix}: a path such as C{/_proxy/} under which the proxy
    answers its own pages.  It must start and end with C{/} and name at least
    one segment, so it can never cover every upstream path.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"--admin-prefix {prefix!r} must be a path such as /_proxy/ "
            "(starting and ending with /, letters, digits and ._~- only)"
        )
    return prefix.encode("ascii")


def keepalive_seconds(value: str) -> float | None:
    """Parse C{--sse-keepalive}: seconds, or 0 for never."""
    try:
        if float(value) == 0:
            return None
    except ValueError:
        pass  # positive_seconds says what is wrong
    return positive_seconds("--sse-keepalive (or 0 for never)", value)


class LogFormat(str, Enum):
    """How log lines are written (C{--log-format})."""

    #: Twisted's classic lines, for people.
    TEXT = "text"
    #: One JSON object per line with stable field names, for log shippers.
    JSON = "json"

    def __str__(self) -> str:
        return self.value


def one_of(name: str, value: str, choices: tuple[str, ...]) -> str:
    """Check an option that takes one of a few words."""
    if value not in choices:
        raise ConfigError(f"{name} {value!r} must be one of: {', '.join(choices)}")
    return value


def log_format_option(value: str) -> LogFormat:
    """Check C{--log-format}: C{text} or C{json}."""
    return LogFormat(one_of("--log-format", value, tuple(f.value for f in LogFormat)))


_PEM_END = b"-----END CERTIFICATE-----"


def pem_certificates(data: bytes, origin: str) -> list[bytes]:
    """
    Split a PEM bundle into its certificates, each checked to parse.

    @raise ConfigError: naming C{origin} when there is none or one is broken.
    """
    # cryptography parses without touching the network or the reactor.
    from cryptography.x509 import load_pem_x509_certificate

    blocks = [block.strip() + b"\n" + _PEM_END + b"\n" for block in data.split(_PEM_END)[:-1]]
    if not blocks:
        raise ConfigError(f"{origin} holds no PEM certificate")
    for block in blocks:
        try:
            load_pem_x509_certificate(block)
        except Exception:
            raise ConfigError(f"{origin} holds a certificate that does not parse") from None
    return blocks


def messages_mode(value: str) -> MessagesMode:
    """Check C{--messages-mode}."""
    return MessagesMode(one_of("--messages-mode", value, tuple(m.value for m in MessagesMode)))
