"""
Composition: one proxy wired from validated settings (upstream client, relay,
surfaces, access gate, resource, site, bound port).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.logger import Logger
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.server import Request

from ..access import (
    AccessConfig,
    AccessGate,
    KeyFileError,
    KeysFromFile,
    ResponseCache,
    StreamSlots,
    TokenBuckets,
    readable_by_others,
)
from ..metrics import ProxyMetrics
from ..relay import BodyBudget, InFlight, RelayContext, RelayOptions
from ..server import AdminPages, ProxyResource, ProxyService, ProxySite, listen
from ..settings import ConfigError, ProxyConfig, pem_certificates
from ..surfaces import ModelCatalog, RouterSettings, route_surfaces
from ..tokens import TokenSource
from ..upstream import Upstream
from ..wire import CopilotHeaders
from ._workers import adopt_listening_socket

_log = Logger(namespace="copilot_proxy")


def build_gate(
    reactor: Any,
    access: AccessConfig,
    metrics: ProxyMetrics | None = None,
    upstream: Upstream | None = None,
) -> AccessGate:
    """
    The access checks and the response cache from validated settings;
    refusals and cache lookups are counted in C{metrics}.  Cache keys hold
    C{upstream}'s base URL as it is at each request.

    @raise ConfigError: when the client keys file cannot be used.
    """
    keys = None
    if access.has_keys:
        try:
            keys = KeysFromFile(access.keys_file, access.env_keys)
        except KeyFileError as e:
            raise ConfigError(str(e)) from None
        if access.keys_file is not None and readable_by_others(access.keys_file):
            _log.warn(
                "client keys file {path} can be read by other users: chmod 600 it",
                path=access.keys_file,
            )
    _log.info("access: {summary}", summary=access.summary(len(keys) if keys else 0))
    limiter = None
    if access.rate is not None:
        limiter = TokenBuckets(access.rate, access.burst, reactor.seconds)
    slots = None
    if access.max_streams is not None or access.max_streams_per_key is not None:
        slots = StreamSlots(access.max_streams, access.max_streams_per_key)
    on_refused = None
    if metrics is not None:
        counter = metrics

        def on_refused(request: Request, code: int) -> None:
            counter.refused(request.method, request.uri, code)

    cache = None
    if access.cache_ttl > 0:
        on_lookup = None
        if metrics is not None:
            recorder = metrics

            def on_lookup(hit: bool) -> None:
                recorder.cache_lookup("models", hit)

        used = upstream

        def base() -> bytes:
            return used.base if used is not None else b""

        cache = ResponseCache(reactor, access.cache_ttl, on_lookup, base)
    return AccessGate(
        reactor, keys, limiter, slots, access.wait, access.max_queue, on_refused, cache
    )


def _upstream_policy(ca: bytes | None) -> BrowserLikePolicyForHTTPS | None:
    """The TLS policy of upstream connections: C{--upstream-ca}, else the system's."""
    if ca is None:
        return None
    roots = [Certificate.loadPEM(pem) for pem in pem_certificates(ca, "CA")]
    return BrowserLikePolicyForHTTPS(trustRoot=trustRootFromCertificates(roots))


def _relay_context(
    reactor: Any, config: ProxyConfig, tokens: TokenSource, upstream: Upstream
) -> RelayContext:
    """What every exchange of this proxy shares, and the metrics that count them."""
    inflight = InFlight()
    return RelayContext(
        upstream,
        tokens,
        reactor,
        config.idle_timeout,
        inflight,
        ProxyMetrics(inflight.__len__, tokens, config.metrics_dir),
        RelayOptions(
            copilot=CopilotHeaders.with_overrides(config.headers),
            sse_keepalive=config.sse_keepalive,
        ),
        BodyBudget(config.body_memory),
    )


def build_proxy(
    reactor: Any,
    config: ProxyConfig,
    tokens: TokenSource,
    access: AccessConfig | None = None,
    listen_fd: int | None = None,
) -> ProxyService:
    """
    Wire a proxy from validated settings: upstream client, relay, access
    gate, resource, site, bound port.

    @param listen_fd: serve this inherited listening socket instead of
        binding C{config.listen} (a worker of C{--workers}).
    @raise ConfigError: when the port cannot be bound or the client keys
        file cannot be used.
    """
    access = access or AccessConfig()
    upstream = Upstream(
        reactor,
        config.upstream,
        config.connect_timeout,
        _upstream_policy(config.upstream_ca),
        config.forward_proxy,
    )
    context = _relay_context(reactor, config, tokens, upstream)
    inflight, metrics = context.inflight, context.metrics
    assert metrics is not None
    catalog = ModelCatalog(upstream, tokens, context.options.copilot, reactor)
    make_relay = route_surfaces(
        context, RouterSettings(catalog, config.messages_mode, dict(config.model_map))
    )
    gate = build_gate(reactor, access, metrics, upstream)
    admin = AdminPages(
        config.admin_prefix,
        reactor,
        lambda: upstream.base,
        tokens,
        inflight.__len__,
        metrics,
        gate.keys,
    )
    site = ProxySite(ProxyResource(make_relay, admin, gate), reactor, access.limits)
    site.on_refused = lambda code: metrics.refused(b"", b"", code)
    site.keys = gate.keys
    if listen_fd is None:
        port = listen(reactor, config.listen, site)
    else:
        port = adopt_listening_socket(reactor, listen_fd, site)
    return ProxyService(port, site, inflight, upstream, reactor, config.shutdown_grace, gate)
