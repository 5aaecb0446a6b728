"""
Composition: one proxy wired from validated settings (upstream client, relay,
surfaces, access gate, resource, site, bound port).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.logger import Logger
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.server import Request

from ..access import (
    AccessConfig,
    AccessGate,
    CreditBudgets,
    FleetAccess,
    KeyFileError,
    KeysFromFile,
    PerKeyRates,
    ResponseCache,
    StreamSlots,
    readable_by_others,
)
from ..metrics import ProxyMetrics, QuotaBoard
from ..relay import (
    NO_MODEL,
    BodyBudget,
    InFlight,
    RecentErrors,
    RelayContext,
    RelayOptions,
    UpstreamHolds,
)
from ..server import AdminPages, ProxyResource, ProxyService, ProxySite, SeatLogins, listen
from ..settings import ConfigError, ProxyConfig, pem_certificates
from ..shared import LedgerStore, SharedState
from ..surfaces import ModelCatalog, RouterSettings, route_surfaces
from ..tokens import SeatPool, TokenSource
from ..upstream import Upstream
from ..web import client_label
from ..wire import CopilotHeaders
from ._workers import adopt_listening_socket

_log = Logger(namespace="copilot_proxy")

#: The proxy's own refusals the usage ledger counts (as C{refused}, under
#: L{NO_MODEL}: they are refused before the body is read).
LEDGER_REFUSALS = frozenset({401, 413, 429})


def build_gate(
    reactor: Any,
    access: AccessConfig,
    metrics: ProxyMetrics | None = None,
    upstream: Upstream | None = None,
    shared: SharedState | None = None,
    recent: RecentErrors | None = None,
) -> AccessGate:
    """
    The access checks and the response cache from validated settings;
    refusals and cache lookups are counted in C{metrics}, refusals also in
    C{shared}'s usage ledger and noted in C{recent} (the status page's
    last errors).  Cache keys hold C{upstream}'s base URL as it is at each
    request.

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
    # A keys file may give keys rates and stream caps of their own, now or
    # after a reload, so with one the limiter and the slots always exist
    # (cheap: without limits of any kind they admit everything).
    own_limits = access.keys_file is not None
    limiter = None
    if access.rate is not None or own_limits:
        limiter = PerKeyRates(access.rate, access.burst, reactor.seconds)
    slots = None
    if access.max_streams is not None or access.max_streams_per_key is not None or own_limits:
        slots = StreamSlots(access.max_streams, access.max_streams_per_key)
    ledger = shared.ledger if shared is not None else None

    def on_refused(request: Request, code: int, why: str) -> None:
        if metrics is not None:
            metrics.refused(request.method, request.uri, code)
        if ledger is not None and code in LEDGER_REFUSALS:
            ledger.count(client_label(request), NO_MODEL, refused=1)
        if recent is not None:
            recent.refused(request, code, why)

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

        fleet = shared.fleet if shared is not None else None
        cache = ResponseCache(reactor, access.cache_ttl, on_lookup, base, fleet)
    fleet_access = None
    if shared is not None and shared.fleet is not None:
        fleet_access = FleetAccess(
            reactor,
            shared.fleet,
            shared.config.required,
            metrics.shared_fallback if metrics is not None else None,
        )
    return AccessGate(
        reactor,
        keys,
        limiter,
        slots,
        access.wait,
        access.max_queue,
        on_refused,
        cache,
        fleet_access,
        CreditBudgets(ledger) if ledger is not None else None,
        access.seats_only,
    )


#: How often the quota board is written to the ledger's store, at most.
QUOTA_SAVE_EVERY = 10.0


def _keep_quota(reactor: Any, board: QuotaBoard, store: LedgerStore) -> None:
    """
    Keep the board where C{copilot-proxy status} (another process) reads
    it: in the ledger's store, at most every L{QUOTA_SAVE_EVERY} seconds.
    """
    last = [float("-inf")]

    def save(_: object) -> None:
        now = reactor.seconds()
        if now - last[0] < QUOTA_SAVE_EVERY:
            return
        last[0] = now
        document = json.dumps(board.document(now), separators=(",", ":"))
        store.save_quota({"board": document}, now).addErrback(lambda _: None)

    board.listen(save)


_UNNAMED = re.compile(r"key-[0-9a-f]{8}|addr:.*|seat/.*")


def named(label: str) -> bool:
    """Whether a ledger label is a key's name (not a digest's, an address or a seat)."""
    return _UNNAMED.fullmatch(label) is None


def _upstream_policy(ca: bytes | None) -> BrowserLikePolicyForHTTPS | None:
    """The TLS policy of upstream connections: C{--upstream-ca}, else the system's."""
    if ca is None:
        return None
    roots = [Certificate.loadPEM(pem) for pem in pem_certificates(ca, "CA")]
    return BrowserLikePolicyForHTTPS(trustRoot=trustRootFromCertificates(roots))


def _relay_context(
    reactor: Any, config: ProxyConfig, tokens: TokenSource, upstream: Upstream
) -> RelayContext:
    """
    What every exchange of this proxy shares, the metrics that count them and
    the board of the upstream's quotas they fill.
    """
    inflight = InFlight()
    metrics = ProxyMetrics(inflight.__len__, tokens, config.metrics_dir)
    quota = QuotaBoard(reactor.seconds)
    metrics.watch_quota(quota)
    return RelayContext(
        upstream,
        tokens,
        reactor,
        config.idle_timeout,
        inflight,
        metrics,
        RelayOptions(
            copilot=CopilotHeaders.with_overrides(config.headers),
            sse_keepalive=config.sse_keepalive,
        ),
        BodyBudget(config.body_memory),
        quota,
    )


def build_proxy(
    reactor: Any,
    config: ProxyConfig,
    tokens: TokenSource,
    access: AccessConfig | None = None,
    listen_fd: int | None = None,
    shared: SharedState | None = None,
    seats: SeatPool | None = None,
    seat_logins: SeatLogins | None = None,
) -> ProxyService:
    """
    Wire a proxy from validated settings: upstream client, relay, access
    gate, resource, site, bound port.

    @param listen_fd: serve this inherited listening socket instead of
        binding C{config.listen} (a worker of C{--workers}).
    @param shared: Redis and the usage ledger, or L{None} for neither (its
        service is run by the caller).
    @param seats: the seats keys may be bound to (their tokens, API bases
        and catalogs), or L{None}.
    @param seat_logins: the self-service seat logins, or L{None}.
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
    ledger = shared.ledger if shared is not None else None
    # With Redis, an upstream 429's Retry-After holds every process back;
    # alone, a proxy passes 429s on as they come (its clients retry).
    holds = None
    if shared is not None and shared.fleet is not None:
        holds = UpstreamHolds(reactor, shared.fleet)
        holds.start()
        reactor.addSystemEventTrigger("before", "shutdown", holds.stop)
    context = replace(
        _relay_context(reactor, config, tokens, upstream),
        ledger=ledger,
        holds=holds,
        seats=seats,
        recent=RecentErrors(reactor.seconds),
    )
    inflight, metrics = context.inflight, context.metrics
    assert metrics is not None
    if ledger is not None:
        counter = metrics

        def per_key(key: str, model: str, counts: Mapping[str, int]) -> None:
            if named(key):
                counter.key_usage(key, counts)

        ledger.listen(per_key)
    if shared is not None and shared.client is not None:
        shared.when_state_changes(metrics.shared_state)
    if ledger is not None and context.quota is not None:
        _keep_quota(reactor, context.quota, ledger.store)
    catalog = ModelCatalog(upstream, tokens, context.options.copilot, reactor, seats)
    make_relay = route_surfaces(
        context, RouterSettings(catalog, config.messages_mode, dict(config.model_map))
    )
    gate = build_gate(reactor, access, metrics, upstream, shared, context.recent)
    admin = AdminPages(
        config.admin_prefix,
        reactor,
        lambda: upstream.base,
        tokens,
        inflight.__len__,
        metrics,
        gate.keys,
        context.quota,
        shared,
        exchanges=inflight,
        recent=context.recent,
        several=config.metrics_dir is not None,
    )
    admin.seat_logins = seat_logins
    site = ProxySite(ProxyResource(make_relay, admin, gate), reactor, access.limits)

    def refused_early(code: int, who: str) -> None:
        metrics.refused(b"", b"", code)
        if ledger is not None and code in LEDGER_REFUSALS:
            ledger.count(who, NO_MODEL, refused=1)
        if context.recent is not None:
            context.recent.refused_early(code, who)

    site.on_refused = refused_early
    site.keys = gate.keys
    if listen_fd is None:
        port = listen(reactor, config.listen, site)
    else:
        port = adopt_listening_socket(reactor, listen_fd, site)
    return ProxyService(port, site, inflight, upstream, reactor, config.shutdown_grace, gate)
