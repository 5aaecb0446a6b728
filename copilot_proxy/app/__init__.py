"""
The twistd face: options, composition, process signals, workers, systemd
notification, log files, the CLI.
"""

from ._compose import build_proxy
from ._daemon import Daemon, build_daemon
from ._logfile import SecondsCache, json_line, text_line
from ._tap import Options, access_from, check_not_open_relay, config_from
from ._workers import listen_fd, reuseport_sockets, worker_count

__all__ = [
    "Daemon",
    "Options",
    "SecondsCache",
    "access_from",
    "build_daemon",
    "build_proxy",
    "check_not_open_relay",
    "config_from",
    "json_line",
    "listen_fd",
    "reuseport_sockets",
    "text_line",
    "worker_count",
]
