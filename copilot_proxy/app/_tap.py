"""
C{twistd copilot-proxy}: the command-line options and the service they build.

This is the only module that reads argv and the environment; everything below
it takes validated values.  A start that cannot succeed ends here with one
line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from twisted.application.service import IService, MultiService
from twisted.logger import Logger
from twisted.python import usage

from .._version import __version__
from ..access import (
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_BODY,
    AccessConfig,
    KeyFileError,
    RequestLimits,
    byte_size,
    count_option,
    is_private_listener,
    non_negative_seconds,
    parse_keys_env,
    rate_option,
)
from ..metrics import forget_process, use_multiprocess
from ..settings import (
    CA_BUNDLE_LIMIT,
    DEFAULT_ADMIN_PREFIX,
    DEFAULT_PORT,
    DEFAULT_REDIS_PREFIX,
    DEFAULT_REDIS_TIMEOUT,
    DEFAULT_UPSTREAM,
    TOKEN_FILE_LIMIT,
    ConfigError,
    LogFormat,
    ProxyConfig,
    admin_prefix,
    keepalive_seconds,
    listen_description,
    log_format_option,
    messages_mode,
    parse_redis_url,
    pem_certificates,
    positive_seconds,
    read_operator_file,
    redis_prefix,
    upstream_base,
)
from ..shared import LEASE_TTL, LedgerStore, SharedConfig, SharedState, SqliteLedger
from ..surfaces import parse_model_map
from ..tokens import (
    Credential,
    CredentialKind,
    CredentialSettings,
    GitHubAPI,
    find_credential,
    github_token_reader,
)
from ..wire import (
    ForwardProxy,
    ProxySettingError,
    Secret,
    forward_proxy_for,
    parse_override,
    proxy_chooser,
)
from ._daemon import Daemon, build_daemon
from ._ledger_store import open_ledger_store
from ._logfile import ReopenableFile, observer
from ._process import (
    ProxyApplication,
    ReloadOnHup,
    ReportStartWhenReady,
    StopCleanlyOnTerm,
    fail_running,
    stop_reactor,
)
from ._sd_notify import SystemdNotifier
from ._workers import (
    ParentWatch,
    WorkerPool,
    accept_in_turns,
    listen_fd,
    reuseport_sockets,
    worker_argv,
    worker_count,
)

_log = Logger(namespace="copilot_proxy")


_GITHUB_URL = "https://github.com"
_GITHUB_API_URL = "https://api.github.com"


class Options(usage.Options):
    """Options of C{twistd copilot-proxy}; an option beats the environment."""

    synopsis = "[options]"
    longdesc = (
        "A streaming reverse proxy to the GitHub Copilot API: it injects the "
        "Copilot token and streams answers back chunk by chunk.  Credentials, first "
        "match wins: --token-file or COPILOT_TOKEN (a static Copilot token); "
        "--github-token-file or COPILOT_GITHUB_TOKEN (a GitHub token); the stored "
        "login of `copilot-proxy login`; a Copilot editor plugin's login.  A GitHub "
        "token is traded for Copilot tokens that are renewed automatically."
    )

    optFlags = [
        [
            "allow-unauthenticated",
            None,
            "Serve anyone who can connect, without client keys, even when listening "
            "on a non-loopback address.",
        ],
        [
            "seats-only",
            None,
            "Serve only client keys bound to a seat (seat=NAME in the keys file): each "
            "request uses its seat's own GitHub login; the proxy needs no login of its own.",
        ],
        [
            "redis-required",
            None,
            "While Redis is unavailable, answer 503 to what needs it (limits, stream "
            "caps) instead of serving with this process's own limits.",
        ],
        [
            "rate-limit-wait",
            None,
            "Requests over --rate-limit or --max-streams wait their turn, in arrival "
            "order, instead of getting 429 (at most --max-queue wait at once).",
        ],
    ]

    optParameters = [
        [
            "port",
            "p",
            None,
            "Port number (listens on 127.0.0.1 only) or a Twisted endpoint "
            "description such as tcp:8080:interface=::1 or systemd:domain=INET:index=0. "
            f"[env PROXY_PORT, default {DEFAULT_PORT}]",
        ],
        [
            "upstream",
            None,
            None,
            "Base URL of the Copilot API; any path prefix is kept. "
            f"[env COPILOT_UPSTREAM, default {DEFAULT_UPSTREAM}]",
        ],
        [
            "token-file",
            None,
            None,
            "Read a static Copilot token from this file (keeps it out of the environment "
            "and ps); it is never renewed. [else env COPILOT_TOKEN]",
        ],
        [
            "github-token-file",
            None,
            None,
            "Read a GitHub OAuth token of a Copilot-enabled account from this file; "
            "Copilot tokens are then obtained and renewed automatically. "
            "[else env COPILOT_GITHUB_TOKEN, else the stored login]",
        ],
        [
            "state-dir",
            None,
            None,
            "Directory of the stored login (file github-token). [else $STATE_DIRECTORY, "
            "else $XDG_CONFIG_HOME/copilot-proxy, default ~/.config/copilot-proxy]",
        ],
        [
            "github-url",
            None,
            _GITHUB_URL,
            "GitHub web root (GitHub Enterprise Server: your own); picks the editor "
            "plugin login for this host.",
        ],
        [
            "github-api-url",
            None,
            _GITHUB_API_URL,
            "GitHub REST API root for the Copilot token exchange (GitHub Enterprise "
            "Server: https://HOST/api/v3).",
        ],
        ["connect-timeout", None, "10", "Seconds to wait for an upstream connection."],
        [
            "idle-timeout",
            None,
            "300",
            "Seconds without a byte from upstream before a request is given up "
            "(504 before the answer started, a cut stream after). There is no total "
            "timeout: long generations are normal.",
        ],
        [
            "shutdown-grace",
            None,
            "30",
            "On SIGTERM, seconds that streams in flight may take to finish before "
            "they are aborted.",
        ],
        [
            "admin-prefix",
            None,
            DEFAULT_ADMIN_PREFIX,
            "Path prefix of the proxy's own pages (<prefix>healthz, <prefix>metrics), "
            "answered by the proxy and never forwarded.",
        ],
        [
            "upstream-ca",
            None,
            None,
            "PEM file of the CA certificate(s) that upstream TLS must chain to, instead "
            "of the system's trust store (for a TLS-inspecting corporate proxy). Upstream "
            "connections go through the HTTP proxy in HTTPS_PROXY/https_proxy (CONNECT "
            "tunnel) unless NO_PROXY/no_proxy excludes the upstream host.",
        ],
        [
            "log-format",
            None,
            LogFormat.TEXT.value,
            "text: readable lines; json: one JSON object per line with stable field "
            "names (time, level, namespace, message, and the event's own fields such as "
            "status, outcome, request_id, model), for log shippers.",
        ],
        [
            "workers",
            None,
            "1",
            "Processes serving the port, to use more than one core: the first binds it "
            "and starts the others, which inherit the socket. Each has its own upstream "
            "pool; client keys, rate limits and caches are per process. Not with ssl:.",
        ],
        [
            "listen-fd",
            None,
            None,
            "Serve on this inherited listening socket instead of --port (set by "
            "--workers for the processes it starts).",
        ],
        [
            "sse-keepalive",
            None,
            "15",
            "Seconds without upstream bytes after which an event stream gets a "
            "': keep-alive' comment line (only between events); 0 for never.",
        ],
        [
            "client-keys-file",
            None,
            None,
            "Require a client key: one per line, an optional name after whitespace, "
            "# comments; sent as 'Authorization: Bearer KEY' or 'x-api-key: KEY'. "
            "Re-read on SIGHUP. [also env PROXY_CLIENT_KEYS, comma-separated]",
        ],
        [
            "max-body",
            None,
            DEFAULT_MAX_BODY,
            "Largest request body accepted, in bytes or with k/M/G (413 past it).",
        ],
        [
            "max-body-memory",
            None,
            "256M",
            "Most bytes of large (1 MiB+) request bodies held at once, each counted twice "
            "while its request runs; 503 past it; 0 for no bound.",
        ],
        [
            "header-timeout",
            None,
            "30",
            "Seconds a client may take to send a request's headers (slowloris guard).",
        ],
        [
            "rate-limit",
            None,
            None,
            "Requests per client key (per client address without keys), as N/PERIOD: "
            "60/min, 2/s, 1000/day. Over it: 429 with Retry-After.",
        ],
        [
            "burst",
            None,
            None,
            "Requests a client may make at once with --rate-limit. [default N]",
        ],
        ["max-queue", None, "100", "With --rate-limit-wait, requests that may wait at once."],
        [
            "redis",
            None,
            None,
            "Share rate limits, stream caps, the /models cache and the usage ledger with "
            "every process and host using this Redis: redis://[[user]:password@]host:port/db, "
            "rediss://... (TLS, verified; ?ca=PATH), unix:///path/redis.sock?db=N. A password "
            "here shows in ps: prefer $COPILOT_PROXY_REDIS or --redis-password-file. "
            "[env COPILOT_PROXY_REDIS; else limits are per process and the ledger is "
            "usage.sqlite3 in the state directory]",
        ],
        ["redis-password-file", None, None, "File holding the Redis password."],
        [
            "redis-prefix",
            None,
            DEFAULT_REDIS_PREFIX,
            "Start of every Redis key, so that deployments can share one Redis.",
        ],
        [
            "redis-timeout",
            None,
            str(DEFAULT_REDIS_TIMEOUT),
            "Seconds a Redis call may take; a slower Redis counts as unavailable.",
        ],
        [
            "redis-lease-ttl",
            None,
            str(int(LEASE_TTL)),
            "Seconds the stream slots of a process that died stay taken (renewed "
            "every third of it while streams run).",
        ],
        ["max-streams", None, None, "Upstream requests in flight at once, for all clients."],
        ["max-streams-per-key", None, None, "Upstream requests in flight at once, per client."],
        [
            "cache-ttl",
            None,
            str(int(DEFAULT_CACHE_TTL)),
            "Seconds to serve GET /models from memory (0: never cache).",
        ],
        [
            "messages-mode",
            None,
            "auto",
            "How POST /v1/messages is served: 'auto' (the router: Claude models to the "
            "Copilot API's own /v1/messages when it lists them), 'translate' (never "
            "native: translated for another endpoint the model lists) or 'native' "
            "(the same as auto).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["header"] = []
        self["model-map"] = []

    def opt_header(self, value: str) -> None:
        """'Name: value' replacing a default Copilot request header (editor-version, editor-plugin-version, x-github-api-version, copilot-integration-id, user-agent, openai-intent...); 'Name:' drops that default; a header the client sends itself still wins. Repeatable."""  # noqa: E501
        self["header"].append(value)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        # Kept so that --workers can start its workers with the same options.
        self.argv = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)  # type: ignore[no-untyped-call]

    def opt_model_map(self, value: str) -> None:
        """from=to: serve Anthropic model name 'from' with Copilot model 'to' (for names the automatic mapping gets wrong). Repeatable."""  # noqa: E501
        self["model-map"].append(value)

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        print(f"copilot-proxy {__version__}")
        sys.exit(0)


def _from(options: Options, name: str, env: Mapping[str, str], var: str, default: str) -> str:
    value = options[name]
    if value is None:
        value = env.get(var) or default
    return str(value)


def config_from(options: Options, env: Mapping[str, str]) -> ProxyConfig:
    """Validated settings from parsed options and an environment."""
    upstream = upstream_base(_from(options, "upstream", env, "COPILOT_UPSTREAM", DEFAULT_UPSTREAM))
    try:
        forward_proxy = forward_proxy_for(upstream.decode("ascii"), env)
    except ProxySettingError as e:
        raise ConfigError(str(e)) from None
    return ProxyConfig(
        listen=listen_description(_from(options, "port", env, "PROXY_PORT", DEFAULT_PORT)),
        upstream=upstream,
        forward_proxy=forward_proxy,
        upstream_ca=_upstream_ca(options["upstream-ca"]),
        connect_timeout=positive_seconds("--connect-timeout", options["connect-timeout"]),
        idle_timeout=positive_seconds("--idle-timeout", options["idle-timeout"]),
        shutdown_grace=positive_seconds("--shutdown-grace", options["shutdown-grace"]),
        admin_prefix=admin_prefix(options["admin-prefix"]),
        headers=tuple(_header_override(text) for text in options["header"]),
        sse_keepalive=keepalive_seconds(options["sse-keepalive"]),
        body_memory=_body_memory(str(options["max-body-memory"])),
        messages_mode=messages_mode(options["messages-mode"]),
        model_map=tuple(_model_map(text) for text in options["model-map"]),
    )


def _github_proxies(
    env: Mapping[str, str], *urls: str
) -> Callable[[str], ForwardProxy | None] | None:
    try:
        return proxy_chooser(env, *urls)
    except ProxySettingError as e:
        raise ConfigError(str(e)) from None


def _upstream_ca(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        data = read_operator_file(path, CA_BUNDLE_LIMIT)
    except OSError as e:
        raise ConfigError(f"cannot read --upstream-ca {path}: {e.strerror}") from None
    pem_certificates(data, f"--upstream-ca {path}")
    return data


def _model_map(text: str) -> tuple[str, str]:
    try:
        return parse_model_map(text)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _header_override(text: str) -> tuple[str, str]:
    try:
        return parse_override(text)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _body_memory(text: str) -> int | None:
    if text.strip() == "0":
        return None
    return byte_size("--max-body-memory", text)


def _optional_count(options: Options, name: str) -> int | None:
    value = options[name]
    return None if value is None else count_option(f"--{name}", str(value))


def access_from(options: Options, env: Mapping[str, str]) -> AccessConfig:
    """Validated access settings (keys, limits, caching) from options and env."""
    try:
        env_keys = tuple(parse_keys_env(env.get("PROXY_CLIENT_KEYS", "")))
    except KeyFileError as e:
        raise ConfigError(str(e)) from None
    rate = None
    burst = 1
    if options["rate-limit"] is not None:
        rate = rate_option(str(options["rate-limit"]))
        burst = max(1, int(rate.count))
    elif options["burst"] is not None:
        raise ConfigError("--burst needs --rate-limit")
    if options["burst"] is not None:
        burst = count_option("--burst", str(options["burst"]))
    limits = RequestLimits(
        max_body=byte_size("--max-body", str(options["max-body"])),
        head_timeout=positive_seconds("--header-timeout", options["header-timeout"]),
    )
    return AccessConfig(
        keys_file=options["client-keys-file"] or None,
        env_keys=env_keys,
        rate=rate,
        burst=burst,
        wait=bool(options["rate-limit-wait"]),
        max_queue=count_option("--max-queue", str(options["max-queue"]), minimum=0),
        max_streams=_optional_count(options, "max-streams"),
        max_streams_per_key=_optional_count(options, "max-streams-per-key"),
        limits=limits,
        cache_ttl=non_negative_seconds("--cache-ttl", str(options["cache-ttl"])),
        seats_only=bool(options["seats-only"]),
    )


def shared_from(options: Options, env: Mapping[str, str]) -> SharedConfig:
    """Validated shared-state settings (Redis) from options and env."""
    url = options["redis"] or env.get("COPILOT_PROXY_REDIS", "").strip() or None
    required = bool(options["redis-required"])
    if url is None:
        if required:
            raise ConfigError("--redis-required needs --redis (or COPILOT_PROXY_REDIS)")
        return SharedConfig()
    target = parse_redis_url(url)
    if options["redis-password-file"]:
        path = options["redis-password-file"]
        try:
            text = read_operator_file(path, TOKEN_FILE_LIMIT).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not text"
            raise ConfigError(f"cannot read --redis-password-file {path}: {why}") from None
        target = dataclasses.replace(target, password=Secret(text))
    elif options["redis"] and target.password is not None:
        _log.warn(
            "the --redis URL holds a password, which other users can see in ps: "
            "use COPILOT_PROXY_REDIS or --redis-password-file"
        )
    return SharedConfig(
        redis=target,
        prefix=redis_prefix(str(options["redis-prefix"])),
        timeout=positive_seconds("--redis-timeout", options["redis-timeout"]),
        required=required,
        lease_ttl=positive_seconds("--redis-lease-ttl", options["redis-lease-ttl"]),
    )


def _spool(state_dir: Path) -> Callable[[bool], LedgerStore | None]:
    """
    With Redis: where this host keeps the counts Redis could not take when
    the proxy stopped (C{usage-spool.sqlite3} in the state directory),
    opened only when there are some to keep or to move.
    """
    path = state_dir / "usage-spool.sqlite3"

    def open_spool(create: bool) -> LedgerStore | None:
        if not create and not path.exists():
            return None
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return SqliteLedger(path)

    return open_spool


def _local_ledger(reactor: Any, state_dir: Path) -> LedgerStore | None:
    """
    The SQLite ledger of the state directory (made 0700 if missing); a proxy
    that cannot keep one still serves, and says why it counts nothing.
    """
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return open_ledger_store(reactor, None, state_dir)
    except OSError as e:
        why = f"cannot create {state_dir}: {e.strerror}"
    except ConfigError as e:
        why = str(e)
    _log.warn("usage is not counted: {why}", why=why)
    return None


def check_not_open_relay(options: Options, access: AccessConfig, listen: str, host: Any) -> None:
    """
    Refuse to serve a paid credential to a network without client keys,
    unless C{--allow-unauthenticated} says so.
    """
    if access.has_keys or options["allow-unauthenticated"]:
        return
    # An IAddress declares no fields; IPv4Address and IPv6Address have these.
    address = getattr(host, "host", None)
    if is_private_listener(listen, address if isinstance(address, str) else None):
        return
    where = f"{address}:{getattr(host, 'port', '')}" if address else listen
    raise ConfigError(
        f"refusing to listen on {where} without client keys: anyone who can reach it "
        "would use your Copilot account; set --client-keys-file or PROXY_CLIENT_KEYS, "
        "listen on 127.0.0.1, or pass --allow-unauthenticated"
    )


def credential_settings(options: Options, env: Mapping[str, str]) -> CredentialSettings:
    """Where to look for credentials, from parsed options and an environment."""
    return CredentialSettings.from_options(
        env,
        token_file=options["token-file"],
        github_token_file=options["github-token-file"],
        state_dir=options["state-dir"],
        github_url=_url("--github-url", options["github-url"]),
    )


def _url(name: str, value: str) -> str:
    try:
        return upstream_base(value).decode("ascii")
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None


def log_destination(
    options: usage.Options, log_format: LogFormat
) -> IO[str] | ReopenableFile | None:
    """
    Where our log observer writes, from twistd's own options (C{--logfile},
    C{-n}), or L{None} to leave logging to twistd.

    twistd builds its log observer after C{makeService}, but uses an
    L{ILogObserver} component of the application instead when one is set
    (see L{ProxyApplication}).  Owning the observer gives C{--log-format}
    and a log file that SIGHUP reopens for logrotate, where twistd's own
    file rotates itself by size and only on SIGUSR1.  The destination follows
    twistd's rules: C{--logfile -}, or C{-n} without C{--logfile}, is stdout
    (the journal under systemd); a daemon without C{--logfile} writes
    C{twistd.log}.  twistd's C{--logger} and C{--syslog} are left alone.
    """
    parent = options.parent
    if parent is None:
        return None
    if parent.get("logger") or parent.get("syslog"):
        if log_format is not LogFormat.TEXT:
            raise ConfigError("--log-format json cannot be combined with --logger or --syslog")
        return None
    logfile = parent.get("logfile")
    if logfile == "-":
        if not parent.get("nodaemon"):
            raise ConfigError("a daemon cannot log to stdout: pass -n or a --logfile path")
        return sys.stdout
    if not logfile and parent.get("nodaemon"):
        return sys.stdout
    try:
        return ReopenableFile(logfile or "twistd.log")
    except OSError as e:
        raise ConfigError(f"cannot open log file {logfile}: {e.strerror}") from None


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"copilot-proxy: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


@dataclasses.dataclass(frozen=True)
class _Start:
    """
    What C{makeService} settled before assembling the services.

    @ivar destination: where our log observer writes (see L{log_destination}).
    @ivar inherited: a worker's inherited listening socket (C{--listen-fd}).
    @ivar own: with C{--workers} on a plain TCP port, one C{SO_REUSEPORT}
        socket per process, this one's first.
    @ivar explicit_upstream: whether the user chose the upstream (else it
        follows the API each Copilot token names).
    """

    config: ProxyConfig
    log_format: LogFormat
    destination: IO[str] | ReopenableFile | None
    workers: int
    inherited: int | None
    own: list[int] | None
    credential: Credential
    explicit_upstream: bool
    daemon: Daemon


def _prepare(reactor: Any, options: Options, env: Mapping[str, str]) -> _Start:
    """
    Check every setting, find the credential and bind the port.

    @raise ConfigError: when the proxy cannot start; the message is the line
        the user sees.
    """
    config = config_from(options, env)
    log_format = log_format_option(options["log-format"])
    destination = log_destination(options, log_format)
    access = access_from(options, env)
    workers = worker_count(options["workers"], config.listen)
    inherited = listen_fd(options["listen-fd"])
    # One SO_REUSEPORT socket per process on a plain TCP port, else one
    # socket all of them share.
    own = reuseport_sockets(config.listen, workers) if workers > 1 else None
    if workers > 1 or inherited is not None:
        config = dataclasses.replace(config, metrics_dir=_metrics_dir(env, inherited))
    settings = credential_settings(options, env)
    if access.seats_only:
        if access.keys_file is None:
            raise ConfigError(
                "--seats-only needs --client-keys-file: the keys file binds keys to seats"
            )
        credential = Credential(
            CredentialKind.SEATS, "the seats of the keys file (--seats-only)", Secret("")
        )
    else:
        credential = find_credential(settings)
    github_api_url = _url("--github-api-url", options["github-api-url"])
    github = GitHubAPI(
        reactor,
        settings.github_url,
        github_api_url,
        proxy_for=_github_proxies(env, settings.github_url, github_api_url),
    )
    explicit = options["upstream"] is not None or bool(env.get("COPILOT_UPSTREAM"))
    shared_config = shared_from(options, env)
    local_store = None
    if shared_config.redis is None:
        local_store = _local_ledger(reactor, settings.state_dir)
    spool = None
    if shared_config.redis is not None:
        spool = _spool(settings.state_dir)
    # Alone on its host and without Redis, nobody reads what a process
    # publishes of itself: it writes nothing every 2 s.
    several = shared_config.redis is not None or workers > 1 or inherited is not None
    shared = SharedState(reactor, shared_config, local_store, spool=spool, publish=several)
    daemon = build_daemon(
        reactor,
        config,
        credential,
        github_token_reader(settings),
        github,
        follow_api=not explicit,
        on_fatal=lambda message: fail_running(reactor, message),
        access=access,
        listen_fd=own[0] if own is not None else inherited,
        shared=shared,
        seats_dir=settings.state_dir,
    )
    check_not_open_relay(options, access, config.listen, daemon.proxy.port.getHost())
    return _Start(
        config, log_format, destination, workers, inherited, own, credential, explicit, daemon
    )


def _log_start(start: _Start) -> None:
    """Say where the proxy listens, where it forwards, and with what credential."""
    config, credential = start.config, start.credential
    host = start.daemon.proxy.port.getHost()
    follows = credential.kind is not CredentialKind.STATIC and not start.explicit_upstream
    _log.info(
        "copilot-proxy {version} listening on {host}, forwarding to {upstream}; "
        "credential: {origin}",
        version=__version__,
        # An IAddress declares no fields; IPv4Address and IPv6Address have these.
        host=":".join(str(getattr(host, a)) for a in ("host", "port") if hasattr(host, a))
        or str(host),
        upstream="the API the Copilot token names" if follows else config.upstream.decode(),
        origin=credential.origin,
    )
    if config.forward_proxy is not None:
        _log.info("upstream connections tunnel through {proxy}", proxy=str(config.forward_proxy))


def _application(
    reactor: Any, options: Options, start: _Start
) -> tuple[MultiService, ReloadOnHup]:
    """
    The top service with the daemon and the process's signals in it, and
    the SIGHUP reload that later parts add their hooks to.
    """
    daemon, destination = start.daemon, start.destination
    reload = ReloadOnHup(reactor)
    if isinstance(destination, ReopenableFile):
        reload.add(destination.reopen)
    if daemon.refresher is not None:
        reload.add(daemon.refresher.reload)
    top = ProxyApplication(
        None if destination is None else observer(start.log_format, destination)
    )
    daemon.top.setServiceParent(top)
    StopCleanlyOnTerm(reactor).setServiceParent(top)  # type: ignore[no-untyped-call]
    reload.add(daemon.proxy.reload_client_keys)
    reload.setServiceParent(top)  # type: ignore[no-untyped-call]
    if daemon.refresher is not None:
        report = ReportStartWhenReady(options.parent, daemon.refresher.ready())
        report.setServiceParent(top)  # type: ignore[no-untyped-call]
    return top, reload


def _start_workers(
    reactor: Any,
    options: Options,
    env: Mapping[str, str],
    start: _Start,
    top: MultiService,
    reload: ReloadOnHup,
) -> None:
    """In the first process of C{--workers N}: start and keep the other N - 1."""
    metrics_dir = start.config.metrics_dir
    assert metrics_dir is not None
    # After shutdown, every service has stopped and the pool has waited
    # for its workers: nobody writes the metric files any more.
    reactor.addSystemEventTrigger(
        "after", "shutdown", shutil.rmtree, metrics_dir, ignore_errors=True
    )
    port = start.daemon.proxy.port
    pool = WorkerPool(
        reactor,
        start.workers - 1,
        start.own[1:] if start.own is not None else port.fileno(),  # type: ignore[attr-defined]
        worker_argv(sys.executable, _worker_logging(options, start.destination), options.argv),
        # Only the main process speaks to systemd (NotifyAccess=main).
        {k: v for k, v in env.items() if k != "NOTIFY_SOCKET"},
        kill_after=start.config.shutdown_grace + 10,
        on_exit=lambda pid: _forget_worker(pid, metrics_dir),
    )
    pool.setServiceParent(top)  # type: ignore[no-untyped-call]
    reload.add(lambda: pool.signal_all("HUP"))


def makeService(options: Options) -> IService:
    """Build the proxy service from options and the process environment."""
    from twisted.internet import reactor

    env = os.environ
    try:
        start = _prepare(reactor, options, env)
    except ConfigError as e:
        _fail(str(e))
    _log_start(start)
    top, reload = _application(reactor, options, start)
    daemon = start.daemon
    if (start.workers > 1 and start.own is None) or start.inherited is not None:
        accept_in_turns(daemon.proxy.port)
    if start.workers > 1:
        _start_workers(reactor, options, env, start, top, reload)
    notify_socket = env.get("NOTIFY_SOCKET", "").strip()
    if notify_socket and start.inherited is None:
        # Added last, so that it stops first: STOPPING=1 as the stop begins.
        ready = daemon.refresher.ready() if daemon.refresher is not None else None
        SystemdNotifier(reactor, notify_socket, ready).setServiceParent(top)  # type: ignore[no-untyped-call]
    if start.inherited is not None:
        # A worker: stop (gracefully) when the process that started it is gone.
        watch = ParentWatch(reactor, 0, lambda: stop_reactor(reactor))
        reactor.callWhenRunning(watch.start)
    return top


def _metrics_dir(env: Mapping[str, str], inherited: int | None) -> str:
    """
    Where the processes of C{--workers} keep their metric values: a fresh
    private directory made by the first process, named to the workers in
    C{PROMETHEUS_MULTIPROC_DIR} (which makes C{prometheus_client} use it from
    their first import on).
    """
    if inherited is not None:
        directory = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
        if not directory:
            raise ConfigError("a worker needs PROMETHEUS_MULTIPROC_DIR from its first process")
    else:
        directory = tempfile.mkdtemp(prefix="copilot-proxy-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    use_multiprocess(directory)
    return directory


def _forget_worker(pid: int, directory: str | None) -> None:
    if directory is not None:
        forget_process(pid, directory)


def _worker_logging(options: Options, destination: object) -> list[str]:
    """twistd options that make a worker log where this process logs."""
    if isinstance(destination, ReopenableFile):
        return [f"--logfile={destination.path}"]
    parent = options.parent
    if destination is None and parent is not None:
        if parent.get("logger"):
            return [f"--logger={parent['logger']}"]
        if parent.get("syslog"):
            return ["--syslog", f"--prefix={parent.get('prefix') or 'twisted'}"]
    return []
