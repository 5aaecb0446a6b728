"""
What the proxy counts, as Prometheus metrics.

One L{ProxyMetrics} per proxy, each with its own L{CollectorRegistry}: tests
run many proxies in one process, and the global default registry would mix
them (and refuse a second registration of the same name).

Recording happens at two points of a request only, when its upstream answer
starts (L{ProxyMetrics.first_byte}) and when it ends (L{ProxyMetrics.ended}),
never per chunk; the upstream quota gauges follow a L{QuotaBoard}.  Every
label value comes from a small closed set, so no client can grow the number
of time series: paths map to route groups, methods and statuses to a few
names, quotas to the few names a board keeps, and nothing carries a key, a
token or a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from ..tokens import TokenSource
from ..wire import MAX_SNAPSHOTS, Outcome, QuotaSnapshot
from ._quota import QuotaBoard

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Path (without the query) -> route group.  Anything else is "other".
_ROUTES: dict[bytes, str] = {}
for _prefix in (b"", b"/v1"):
    _ROUTES.update(
        {
            _prefix + b"/chat/completions": "chat_completions",
            _prefix + b"/completions": "completions",
            _prefix + b"/embeddings": "embeddings",
            _prefix + b"/models": "models",
            _prefix + b"/responses": "responses",
            _prefix + b"/messages": "messages",
            _prefix + b"/messages/count_tokens": "count_tokens",
        }
    )

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

# How a relayed request ended, bounded like every label (a cache hit is not
# relayed, so it is not an outcome here).
OUTCOMES = tuple(o.value for o in Outcome if o is not Outcome.CACHED)

# Seconds.  Time to first byte spans a cached model list (milliseconds) to a
# model that thinks for a minute; durations reach long generations.
_TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


#: The most client keys that become label values of the per-key series.
MAX_KEY_LABELS = 256


def route_group(uri: bytes) -> str:
    """
    The route group of a request target: a fixed name for each known API
    path (with or without C{/v1}), C{models} for C{/models/<id>/...},
    C{other} for the rest.
    """
    path = uri.partition(b"?")[0].rstrip(b"/") or b"/"
    group = _ROUTES.get(path)
    if group is not None:
        return group
    if path.startswith((b"/models/", b"/v1/models/")):
        return "models"
    return "other"


def method_label(method: bytes) -> str:
    """The request method if it is a standard one, else C{other}."""
    name = method.decode("ascii", "replace").upper()
    return name if name in _METHODS else "other"


def status_class(code: int) -> str:
    """C{2xx} .. C{5xx}; anything outside 100-599 is C{other}."""
    return f"{code // 100}xx" if 100 <= code <= 599 else "other"


class _TokenCollector(Collector):
    """
    Token refresh counters read from the token source at scrape time.

    The token source counts its own refreshes in plain attributes
    (L{TokenSource.refreshes}, L{TokenSource.refresh_failures}); reading
    them here keeps the token layer free of any metrics dependency.
    """

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    def collect(self) -> Iterator[Metric]:
        refreshes = CounterMetricFamily(
            "copilot_proxy_token_refreshes",
            "Copilot token refreshes, by result.",
            labels=["result"],
        )
        refreshes.add_metric(["ok"], float(self._tokens.refreshes))
        refreshes.add_metric(["failed"], float(self._tokens.refresh_failures))
        yield refreshes
        usable = GaugeMetricFamily(
            "copilot_proxy_token_usable",
            "1 when the proxy holds a token it believes valid, else 0.",
        )
        usable.add_metric([], 1.0 if self._tokens.usable else 0.0)
        yield usable


class ProxyMetrics:
    """
    The metrics of one proxy and the calls that record them.

    @ivar registry: the registry to expose; holds nothing else.
    """

    registry: CollectorRegistry
    requests: Counter
    outcomes: Counter
    in_flight: Gauge
    bytes_in: Counter
    bytes_out: Counter
    ttfb: Histogram
    duration: Histogram
    client_disconnects: Counter
    upstream_errors: Counter
    rate_limited: Counter
    cache: Counter
    quota_remaining: Gauge
    quota_reset: Gauge
    shared_up: Gauge
    shared_fallbacks: Counter
    key_requests: Counter
    key_tokens: Counter

    def __init__(
        self,
        in_flight: Callable[[], int],
        tokens: TokenSource,
        multiprocess_dir: str | None = None,
    ) -> None:
        """
        @param multiprocess_dir: with C{--workers}, the directory where every
            process of the proxy keeps its values (see L{use_multiprocess});
            the exposition then sums them all.  L{None}: one process.
        """
        self._multiprocess_dir = multiprocess_dir
        self._count_in_flight = in_flight
        self.registry = CollectorRegistry()
        # The exposition lists the families in the order they are defined.
        self._define_traffic()
        self._define_timings()
        self._define_troubles()
        self.cache = Counter(
            "copilot_proxy_cache_lookups",
            "Cache lookups, by cache and result (hit or miss).",
            ["cache", "result"],
            registry=self.registry,
        )
        self._define_upstream_quota()
        self._define_shared_state()
        self._tokens = _TokenCollector(tokens)
        self.registry.register(self._tokens)

    def _define_traffic(self) -> None:
        """What was relayed: requests, how they ended, in flight, bytes."""
        r = self.registry
        self.requests = Counter(
            "copilot_proxy_requests",
            "Requests relayed, by method, route group and status class.",
            ["method", "route", "status_class"],
            registry=r,
        )
        self.outcomes = Counter(
            "copilot_proxy_request_outcomes",
            "How relayed requests ended.",
            ["outcome"],
            registry=r,
        )
        for outcome in OUTCOMES:
            self.outcomes.labels(outcome)
        self.in_flight = Gauge(
            "copilot_proxy_in_flight",
            "Requests being relayed right now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        if self._multiprocess_dir is None:
            count = self._count_in_flight
            self.in_flight.set_function(lambda: float(count()))
        self.bytes_in = Counter(
            "copilot_proxy_request_body_bytes",
            "Request body bytes received from clients.",
            registry=r,
        )
        self.bytes_out = Counter(
            "copilot_proxy_response_body_bytes",
            "Response body bytes sent to clients.",
            registry=r,
        )

    def _define_timings(self) -> None:
        """How long requests took, to the first byte and to their end."""
        self.ttfb = Histogram(
            "copilot_proxy_upstream_first_byte_seconds",
            "Time from receiving a request to the upstream's response headers.",
            ["route"],
            buckets=_TTFB_BUCKETS,
            registry=self.registry,
        )
        self.duration = Histogram(
            "copilot_proxy_request_duration_seconds",
            "Time from receiving a request to its end, streaming included.",
            ["route"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )

    def _define_troubles(self) -> None:
        """What went wrong: clients that left, upstream failures, limits hit."""
        r = self.registry
        self.client_disconnects = Counter(
            "copilot_proxy_client_disconnects",
            "Requests whose client left before the answer was complete.",
            registry=r,
        )
        self.upstream_errors = Counter(
            "copilot_proxy_upstream_errors",
            "Upstream failures: unreachable, TLS, cut streams (error) or timeouts.",
            ["kind"],
            registry=r,
        )
        for kind in ("error", "timeout"):
            self.upstream_errors.labels(kind)
        self.rate_limited = Counter(
            "copilot_proxy_rate_limited",
            "Requests answered 429, by who limited them (upstream or this proxy).",
            ["by"],
            registry=r,
        )
        for by in ("upstream", "proxy"):
            self.rate_limited.labels(by)

    def _define_upstream_quota(self) -> None:
        """
        What the upstream's latest answer said of its quotas (L{watch_quota}).

        With C{--workers} every process has its own board and sees only the
        answers it relayed, but the quota is the account's, shared by all:
        the fleet's value is the freshest reading of any process, which is
        what C{mostrecent} exposes (the value last written, whichever process
        wrote it).  C{sum} would add percentages up; C{min} and C{max} would
        stick to a stale reading of an idle process after a window resets;
        C{liveall} would make one series per process.  Not C{livemostrecent}:
        a reading stays the account's truth after its process exits, until a
        fresher one comes.  Values are written when an answer brings them
        (not read at scrape time, as the token collector is), because the
        process answering a scrape cannot see the other processes' boards.
        """
        self.quota_remaining = Gauge(
            "copilot_proxy_upstream_quota_remaining_percent",
            "Percent of each upstream quota left, as the upstream's latest answer said.",
            ["quota"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.quota_reset = Gauge(
            "copilot_proxy_upstream_quota_reset_timestamp_seconds",
            "When each upstream quota resets (POSIX seconds), per its latest answer.",
            ["quota"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self._quota_labels: set[str] = set()

    def _define_shared_state(self) -> None:
        """
        Redis (C{--redis}) and the usage of named client keys.  Per-key
        series exist only for keys with a name in the keys file, and at most
        L{MAX_KEY_LABELS} of them: the label values stay bounded whatever
        clients send.
        """
        r = self.registry
        self.shared_up = Gauge(
            "copilot_proxy_shared_state_up",
            "1 while Redis (--redis) answers, 0 while limits fall back to each process's own.",
            registry=r,
            multiprocess_mode="min",
        )
        self.shared_fallbacks = Counter(
            "copilot_proxy_shared_state_fallbacks",
            "Decisions made with the process's own limits because Redis could not answer.",
            registry=r,
        )
        self.key_requests = Counter(
            "copilot_proxy_key_requests",
            "Requests of each named client key, by result (requests, refused, errors).",
            ["key", "result"],
            registry=r,
        )
        self.key_tokens = Counter(
            "copilot_proxy_key_tokens",
            "Tokens used by each named client key, by kind (input, cached, output, reasoning).",
            ["key", "kind"],
            registry=r,
        )
        self._key_labels: set[str] = set()

    def shared_state(self, up: bool) -> None:
        """Redis became reachable (or not)."""
        self.shared_up.set(1 if up else 0)

    def shared_fallback(self) -> None:
        self.shared_fallbacks.inc()

    def key_usage(self, key: str, counts: Mapping[str, int]) -> None:
        """
        The ledger counts of one exchange of the named key C{key}; keys
        without a name (and addresses) are not labels.
        """
        labels = self._key_labels
        if key not in labels:
            if len(labels) >= MAX_KEY_LABELS:
                return
            labels.add(key)
        for result in ("requests", "refused", "errors"):
            if counts.get(result):
                self.key_requests.labels(key, result).inc(counts[result])
        for kind in ("input", "cached", "output", "reasoning"):
            amount = counts.get(f"{kind}_tokens")
            if amount:
                self.key_tokens.labels(key, kind).inc(amount)

    def watch_quota(self, board: QuotaBoard) -> None:
        """
        Expose the quotas C{board} holds, from now on.  At most
        L{MAX_SNAPSHOTS} quota names ever become label values.
        """
        board.listen(self._quota_seen)

    def _quota_seen(self, snapshots: list[QuotaSnapshot]) -> None:
        labels = self._quota_labels
        for quota in snapshots:
            name = quota.name
            if name not in labels:
                if len(labels) >= MAX_SNAPSHOTS:
                    continue
                labels.add(name)
            if quota.percent_remaining is not None:
                self.quota_remaining.labels(name).set(quota.percent_remaining)
            if quota.resets_at is not None:
                self.quota_reset.labels(name).set(quota.resets_at)

    def in_flight_changed(self) -> None:
        """
        A relay started or ended.  One process reads the count at scrape
        time; with several, each writes its own count for the others to sum.
        """
        if self._multiprocess_dir is not None:
            self.in_flight.set(self._count_in_flight())

    def first_byte(self, uri: bytes, seconds: float) -> None:
        """The upstream's response headers came C{seconds} after the request."""
        self.ttfb.labels(route_group(uri)).observe(seconds)

    def ended(
        self,
        method: bytes,
        uri: bytes,
        code: int,
        outcome: str,
        bytes_in: int,
        bytes_out: int,
        seconds: float,
    ) -> None:
        """
        A relayed request ended.  Its status came from upstream or is one of
        the proxy's own 502, 503 and 504, so a 429 here is the upstream's
        limit; a limit of the proxy's own is recorded by L{refused}.
        """
        route = route_group(uri)
        self.requests.labels(method_label(method), route, status_class(code)).inc()
        self.outcomes.labels(outcome if outcome in OUTCOMES else "other").inc()
        self.bytes_in.inc(bytes_in)
        self.bytes_out.inc(bytes_out)
        self.duration.labels(route).observe(seconds)
        if outcome == "client_gone":
            self.client_disconnects.inc()
        elif outcome == "upstream_error":
            self.upstream_errors.labels("error").inc()
        elif outcome == "timeout":
            self.upstream_errors.labels("timeout").inc()
        if code == 429:
            self.rate_limited.labels("upstream").inc()

    def refused(self, method: bytes, uri: bytes, code: int) -> None:
        """
        The proxy refused a request before relaying it (a missing client key,
        a rate limit, a stream cap): counted as a request with outcome
        C{refused}, and a 429 as limited by the proxy.
        """
        route = route_group(uri)
        self.requests.labels(method_label(method), route, status_class(code)).inc()
        self.outcomes.labels("refused").inc()
        if code == 429:
            self.rate_limited.labels("proxy").inc()

    def cache_lookup(self, cache: str, hit: bool) -> None:
        """
        Record one cache lookup.  C{cache} must be a fixed name chosen in the
        code (such as C{models}), never a value from a request.
        """
        self.cache.labels(cache, "hit" if hit else "miss").inc()

    def exposition(self) -> bytes:
        """
        The Prometheus text exposition of every metric: of this process, or
        summed over every process of the proxy with C{--workers} (the token
        metrics are always those of the process that answers).
        """
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        summed = CollectorRegistry()
        MultiProcessCollector(summed, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        summed.register(self._tokens)
        return generate_latest(summed)


def use_multiprocess(directory: str) -> None:
    """
    Keep every metric value created from now on in per-process files under
    C{directory}, so that the processes of C{--workers} can be summed.

    C{prometheus_client} picks its value store when it is first imported, from
    C{PROMETHEUS_MULTIPROC_DIR}; the first process imports it before it knows
    it will have workers, so it switches here, before any metric exists.  The
    caller sets C{PROMETHEUS_MULTIPROC_DIR} to C{directory} too (the files are
    named from it), and the workers inherit it.
    """
    from prometheus_client import values

    # prometheus_client's own marker of a multiprocess store; not declared
    # anywhere we could read it from.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def forget_process(pid: int, directory: str) -> None:
    """
    A worker is gone: drop its live gauges (its in-flight count), keep its
    counters and histograms (counters never go backwards).
    """
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
