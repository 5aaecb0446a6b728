"""
Which forward proxy (if any) reaches a URL, from C{HTTPS_PROXY},
C{https_proxy}, C{HTTP_PROXY}, C{http_proxy}, C{NO_PROXY} and C{no_proxy},
the way curl and most tools read them.

Pure: the caller passes the environment in.  Proxy credentials from the URL
(C{http://user:pass@proxy:3128}) become a L{Secret} C{Proxy-Authorization}
value at once, so no C{repr()} or error message can show them.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ._secret import Secret


class ProxySettingError(ValueError):
    """A proxy variable cannot be used; the message never shows credentials."""


@dataclass(frozen=True)
class ForwardProxy:
    """
    An HTTP proxy that tunnels connections with C{CONNECT}.

    @ivar origin: the variable it came from, for messages.
    @ivar authorization: the C{Proxy-Authorization} value, if the URL had
        credentials.
    """

    host: str
    port: int
    origin: str
    authorization: Secret | None = None

    def __repr__(self) -> str:
        auth = ", with credentials" if self.authorization is not None else ""
        return f"ForwardProxy({self.host}:{self.port} from {self.origin}{auth})"

    __str__ = __repr__


def parse_proxy_url(value: str, origin: str) -> ForwardProxy:
    """
    Parse a proxy URL such as C{http://proxy.corp:3128} (a missing scheme
    means C{http://}; a missing port 80).  Only plain HTTP proxies are
    supported: the TLS that matters runs end to end inside the tunnel.
    """
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme != "http":
        raise ProxySettingError(
            f"{origin} must be an http:// proxy URL (got a {parts.scheme}:// URL)"
        )
    if not parts.hostname:
        raise ProxySettingError(f"{origin} has no proxy host")
    try:
        port = parts.port or 80
    except ValueError:
        raise ProxySettingError(f"{origin} has an invalid port") from None
    authorization = None
    if parts.username is not None:
        user = unquote(parts.username)
        password = unquote(parts.password or "")
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = Secret("Basic " + pair)
    return ForwardProxy(parts.hostname, port, origin, authorization)


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """
    Whether C{NO_PROXY} excludes C{host}: C{*} excludes everything; an entry
    C{example.com} or C{.example.com} excludes that domain and its
    subdomains; an IP address or CIDR block excludes matching addresses; an
    entry may end in C{:port} to apply to that port only.
    """
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port = None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            name, _, port_text = entry.rpartition(":")
            if port_text.isdigit():
                entry, entry_port = name, int(port_text)
        entry = entry.strip("[]").rstrip(".")
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.lstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def forward_proxy_for(url: str, env: Mapping[str, str]) -> ForwardProxy | None:
    """
    The proxy to reach C{url} through, or L{None} for a direct connection.

    C{https://} URLs use C{HTTPS_PROXY} or C{https_proxy}; C{http://} URLs use
    C{http_proxy} or C{HTTP_PROXY}; either way the connection is a C{CONNECT}
    tunnel.  C{NO_PROXY} or C{no_proxy} lists the exceptions.

    @raise ProxySettingError: when the variable that applies is unusable.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        names: tuple[str, ...] = ("HTTPS_PROXY", "https_proxy")
    else:
        names = ("http_proxy", "HTTP_PROXY")
    found = _first(env, names)
    if found is None:
        return None
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    exceptions = _first(env, ("NO_PROXY", "no_proxy"))
    if exceptions is not None and bypasses_proxy(host, port, exceptions[1]):
        return None
    return parse_proxy_url(found[1], found[0])


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def proxy_chooser(
    env: Mapping[str, str], *urls: str
) -> Callable[[str], ForwardProxy | None] | None:
    """
    The proxy choice for any URL, from a snapshot of C{env}; L{None} when no
    proxy variable is set at all.

    @param urls: URLs checked now, so that a bad setting fails at start
        rather than at the first connection.
    @raise ProxySettingError: when the variable for one of C{urls} is unusable.
    """
    if not any(env.get(name, "").strip() for name in _PROXY_VARIABLES):
        return None
    snapshot = dict(env)
    for url in urls:
        forward_proxy_for(url, snapshot)
    return lambda url: forward_proxy_for(url, snapshot)
