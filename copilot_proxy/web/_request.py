"""
The request class of the proxy's site: Twisted's L{Request} with the typed
fields that the access gate, the relay and the access log share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IPushProducer
from twisted.web.server import Request

from ..wire import new_request_id


class ProxyRequest(Request):
    """
    One client request, as every layer of the proxy sees it.

    @ivar client_key: the name of the client key the request was let in
        with, when client keys are configured; L{None} before the access
        gate has looked, or without keys.  Only the name, never the key.
    @ivar seat: the seat (a person's own GitHub login) the client key is
        bound to, whose Copilot token the request is sent with; L{None} for
        the proxy's own credential.
    @ivar request_id: an unguessable id that ties the log lines of this
        request together and goes upstream as its request id.
    """

    client_key: str | None = None
    seat: str | None = None

    if TYPE_CHECKING:
        # Twisted's Request is not annotated: these are its methods the proxy
        # calls, typed for mypy only (write must stay Twisted's own, since it
        # is the per-chunk path).
        def write(self, data: bytes) -> None: ...
        def finish(self) -> None: ...
        def loseConnection(self) -> None: ...
        def registerProducer(self, producer: IPushProducer, streaming: bool) -> None: ...
        def unregisterProducer(self) -> None: ...
        def getClientAddress(self) -> IAddress: ...

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.request_id = new_request_id()


def client_key_of(request: Request) -> str | None:
    """The client key name of C{request}, for requests of other sites too."""
    return request.client_key if isinstance(request, ProxyRequest) else None


def client_label(request: Request) -> str:
    """
    Who a request is counted and limited as: its client key's name, else
    its address (C{addr:<ip>}, or C{addr:local} on a unix socket).
    """
    name = client_key_of(request)
    if name is not None:
        return name
    address = request.getClientAddress()
    if isinstance(address, (IPv4Address, IPv6Address)):
        return f"addr:{address.host}"
    return "addr:local"
