"""
The systemd units in contrib/systemd: systemd itself accepts them, their
C{ExecStart} runs our plugin with options it knows, they keep the hardening
they promise, and socket activation hands the port over as systemd would.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorUNIXDatagram
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from .._helpers import Upstream, fetch, send, stop_listening, stream_request, timeout, until
from .._twistd import TWISTD, Twistd, clean_env, run_twistd

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
SERVICES = ("copilot-proxy.service", "copilot-proxy-activated.service")
DROP_IN = "copilot-proxy-token.conf"
REDIS_DROP_IN = "copilot-proxy-redis.conf"
INSTALLED_TWISTD = "/opt/copilot-proxy/bin/twistd"
TOKEN = "fake-copilot-token"


def directives(unit: str) -> dict[str, list[str]]:
    """Every C{Key=value} of a unit file, by key, in order (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def systemd_analyze() -> str:
    """
    The systemd-analyze command, or a failed test saying why there is none:
    unverified units must not look verified.
    """
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze is not installed, so the units cannot be verified; "
            "install Debian's 'systemd' package (.ci/run does so when it is missing)"
        )
    return found


def units_for_this_machine(directory: Path, drop_in: bool = False) -> list[Path]:
    """
    Copies of the units whose C{ExecStart} names this environment's twistd,
    with the token and Redis drop-ins installed for both services if
    C{drop_in}.

    C{systemd-analyze verify} checks that the C{ExecStart} binary exists and
    is executable.  The units name the documented install location,
    C{/opt/copilot-proxy/bin/twistd}, which does not exist here; the copies
    point at the twistd of the environment running the tests, which is the
    same program installed differently.  Nothing else is changed.
    """
    copies = []
    for unit in sorted(UNITS.glob("copilot-proxy*.s*")):
        text = unit.read_text()
        copy = directory / unit.name
        copy.write_text(text.replace(INSTALLED_TWISTD, TWISTD))
        copies.append(copy)
        if drop_in and unit.suffix == ".service":
            conf = directory / f"{unit.name}.d" / "token.conf"
            conf.parent.mkdir()
            conf.write_text((UNITS / DROP_IN).read_text())
            (conf.parent / "redis.conf").write_text((UNITS / REDIS_DROP_IN).read_text())
    return copies


def verify(analyze: str, units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


@pytest.mark.parametrize("drop_in", [False, True], ids=["stored-login", "token-drop-in"])
def test_units_pass_systemd_analyze_verify(tmp_path: Path, drop_in: bool) -> None:
    analyze = systemd_analyze()
    units = units_for_this_machine(tmp_path, drop_in)
    assert {u.name for u in units} == {*SERVICES, "copilot-proxy.socket"}
    result = verify(analyze, units)
    # Unknown keys and bad values are only warnings for systemd: any output
    # at all counts as a failure here.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_reads_the_drop_in(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    units = units_for_this_machine(tmp_path, drop_in=True)
    conf = tmp_path / "copilot-proxy.service.d" / "token.conf"
    conf.write_text(conf.read_text().replace("LoadCredential=", "LoadCredentail="))
    assert "Unknown key" in verify(analyze, units).stderr


def test_verify_would_catch_a_misspelled_or_broken_unit(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    unit = units_for_this_machine(tmp_path)[0]
    text = unit.read_text()
    unit.write_text(text.replace("ProtectHome=yes", "ProtectHom=yes"))
    assert "Unknown key" in verify(analyze, [unit]).stderr
    unit.write_text(text.replace(TWISTD, "/nonexistent/twistd"))
    assert verify(analyze, [unit]).returncode != 0


def exec_start_argv(unit: str, credentials: Path, drop_in: bool = False) -> list[str]:
    """
    The C{ExecStart} command line as systemd would run it: C{${VAR}} expands
    in place and an unbraced C{$VAR} splits into words (unset: no word);
    C{%d} in the drop-in's C{Environment=} is the credentials directory.
    """
    (line,) = directives(unit)["ExecStart"]
    env = {"COPILOT_PROXY_OPTS": ""}
    if drop_in:
        for conf in (DROP_IN, REDIS_DROP_IN):
            for assignment in directives(conf)["Environment"]:
                name, _, value = assignment.partition("=")
                env[name] = value.replace("%d", str(credentials))
    line = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), line)
    argv: list[str] = []
    for word in shlex.split(line):
        if word.startswith("$"):
            argv.extend(env.get(word[1:], "").split())
        else:
            argv.append(word)
    assert argv[0] == INSTALLED_TWISTD
    return [TWISTD, *argv[1:]]


@pytest.mark.parametrize("drop_in", [False, True], ids=["stored-login", "token-drop-in"])
@pytest.mark.parametrize("unit", SERVICES)
@pytest_twisted.ensureDeferred
async def test_exec_start_runs_our_plugin_with_options_it_knows(
    unit: str, drop_in: bool, tmp_path: Path
) -> None:
    argv = exec_start_argv(unit, tmp_path, drop_in)
    assert argv[1:4] == ["-n", "--pidfile=", "copilot-proxy"]
    if drop_in:
        assert f"--github-token-file={tmp_path}/github-token" in argv
        assert f"--redis-password-file={tmp_path}/redis-password" in argv
    # --help goes last, so every option before it is parsed first: an
    # unknown one fails the run.
    out, err, code = await getProcessOutputAndValue(
        argv[0], [*argv[1:], "--help"], env=dict(os.environ)
    )
    assert code == 0, err
    assert b"--token-file" in out and b"--admin-prefix" in out


@pytest.mark.parametrize("unit", SERVICES)
def test_services_keep_the_promised_hardening(unit: str) -> None:
    found = directives(unit)
    expected = {
        "DynamicUser": "yes",
        "StateDirectory": "copilot-proxy",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "User": "copilot-proxy",
        "SystemCallErrorNumber": "EPERM",
    }
    for key, value in expected.items():
        assert found.get(key) == [value], key
    assert "@system-service" in found["SystemCallFilter"]
    assert found["MemoryMax"]
    # A graceful stop (30 s grace by default) must finish before systemd kills.
    assert float(found["TimeoutStopSec"][0].rstrip("s")) > 30


def test_token_drop_in_hands_the_file_over_as_a_credential() -> None:
    found = directives(DROP_IN)
    assert found["LoadCredential"] == ["github-token:/etc/copilot-proxy/github-token"]
    assert found["Environment"] == ["COPILOT_PROXY_CREDENTIAL=--github-token-file=%d/github-token"]


def test_redis_drop_in_keeps_the_password_out_of_the_url() -> None:
    found = directives(REDIS_DROP_IN)
    assert found["LoadCredential"] == ["redis-password:/etc/copilot-proxy/redis-password"]
    (url,) = (e for e in found["Environment"] if e.startswith("COPILOT_PROXY_REDIS="))
    assert "@" not in url


def test_socket_hands_its_port_to_the_activated_service() -> None:
    socket_unit = directives("copilot-proxy.socket")
    assert socket_unit["Service"] == ["copilot-proxy-activated.service"]
    assert socket_unit["ListenStream"] == ["127.0.0.1:8080"]
    argv = exec_start_argv("copilot-proxy-activated.service", Path("/creds"))
    assert argv[argv.index("--port") + 1] == "systemd:domain=INET:index=0"


def _systemd_socket() -> tuple[socket.socket, str]:
    """
    A listening socket as systemd holds one for copilot-proxy.socket, and
    the URL it serves: the test plays systemd and keeps it open.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


def _activated(
    listener: socket.socket, upstream: Upstream, token_file: Path, **extra_env: str
) -> Twistd:
    """
    Start the proxy the way systemd starts copilot-proxy-activated.service:
    the listening socket as fd 3 and C{LISTEN_PID} naming the process itself
    (the shell sets it to its own pid, then execs twistd in place).
    """
    env = clean_env(LISTEN_FDS="1", LISTEN_FDNAMES="copilot-proxy.socket")
    env.update(extra_env)
    twistd = [TWISTD, "-n", "--pidfile=", "copilot-proxy"]
    options = ["--port", "systemd:domain=INET:index=0", "--upstream", upstream.url]
    options += ["--token-file", str(token_file)]
    return Twistd.spawn(
        ["-c", 'LISTEN_PID=$$ exec "$@"', "sh", *twistd, *options],
        env,
        executable="/bin/sh",
        childFDs={0: "w", 1: "r", 2: "r", 3: listener.fileno()},
    )


@pytest_twisted.ensureDeferred
async def test_socket_activation_restarts_without_refusing_connections(
    upstream: Upstream, tmp_path: Path
) -> None:
    token_file = tmp_path / "copilot-token"
    token_file.write_text(TOKEN + "\n")
    # The test plays systemd: it binds the socket and keeps it open across
    # restarts of the service.
    listener, url = _systemd_socket()
    runs = [_activated(listener, upstream, token_file)]
    try:
        # The first request may come before the proxy has started: the
        # socket already accepts, so it waits instead of being refused.
        response, _ = await timeout(Deferred.fromCoroutine(fetch(url + "/_proxy/healthz")), 20)
        assert response.code == 200
        first = runs[0]
        assert await first.stop(20) == 0, first.text

        # No proxy runs now; a client connecting is queued, not refused.
        headers, body = stream_request(events=2)
        pending = Deferred.fromCoroutine(send(url + "/chat/completions", b"POST", headers, body))
        await deferLater(reactor, 0.2, lambda: None)
        assert not pending.called
        runs.append(_activated(listener, upstream, token_file))
        response, collector = await timeout(pending, 20)
        await timeout(collector.done, 20)
        assert response.code == 200
        assert collector.complete and collector.body.endswith(b"data: [DONE]\n\n")
        second = runs[1]
        assert await second.stop(20) == 0, second.text
    finally:
        for run in runs:
            run.kill()
        listener.close()
    for run in runs:
        assert TOKEN.encode() not in b"".join(run.output)


@pytest_twisted.ensureDeferred
async def test_reload_signal_keeps_the_service_serving(upstream: Upstream, tmp_path: Path) -> None:
    # ExecReload sends SIGHUP; without a handler it would kill the proxy.
    token_file = tmp_path / "copilot-token"
    token_file.write_text(TOKEN + "\n")
    listener, url = _systemd_socket()
    run = _activated(listener, upstream, token_file)
    try:
        response, _ = await timeout(Deferred.fromCoroutine(fetch(url + "/_proxy/healthz")), 20)
        assert response.code == 200
        run.signal("HUP")
        await until(lambda: "received SIGHUP" in run.text, seconds=10)
        assert b"received SIGHUP, reloading" in b"".join(run.output)
        assert not run.ended.called
        response, _ = await fetch(url + "/models")
        assert response.code == 200
        assert await run.stop(20) == 0
    finally:
        run.kill()
        listener.close()


# Type=notify -----------------------------------------------------------------


class _NotifySocket(DatagramProtocol):
    """The service manager's end of $NOTIFY_SOCKET: collects messages."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.messages.append(datagram.decode())


def _listen_datagrams(path: str, protocol: DatagramProtocol) -> IListeningPort:
    """Listen on a Unix datagram socket at C{path}, with Twisted's defaults."""
    unix = cast(IReactorUNIXDatagram, reactor)
    return unix.listenUNIXDatagram(path, protocol, maxPacketSize=8192, mode=0o666)


@pytest.mark.parametrize("unit", SERVICES)
def test_services_are_type_notify(unit: str) -> None:
    assert directives(unit)["Type"] == ["notify"]


@pytest_twisted.ensureDeferred
async def test_ready_is_notified_once_serving_and_stopping_at_sigterm(
    upstream: Upstream, tmp_path: Path
) -> None:
    notify = _NotifySocket()
    address = str(tmp_path / "notify")
    port_ = _listen_datagrams(address, notify)
    listener, url = _systemd_socket()
    token_file = tmp_path / "copilot-token"
    token_file.write_text(TOKEN + "\n")
    run = _activated(listener, upstream, token_file, NOTIFY_SOCKET=address)
    try:
        await until(lambda: bool(notify.messages), seconds=20)
        assert notify.messages[0].split("\n")[0] == "READY=1"
        response, _ = await fetch(url + "/_proxy/healthz")
        assert response.code == 200
        assert await run.stop(20) == 0
        assert any(m.startswith("STOPPING=1") for m in notify.messages[1:]), notify.messages
    finally:
        run.kill()
        listener.close()
        await stop_listening(port_)


@pytest_twisted.ensureDeferred
async def test_a_start_that_fails_never_reports_ready(
    upstream: Upstream, github: Any, tmp_path: Path
) -> None:
    from copilot_proxy.testing.fake_github import GITHUB_TOKEN

    github.fake.revoke(GITHUB_TOKEN)
    notify = _NotifySocket()
    address = str(tmp_path / "notify")
    port_ = _listen_datagrams(address, notify)
    env = clean_env(home=tmp_path, COPILOT_GITHUB_TOKEN=GITHUB_TOKEN, NOTIFY_SOCKET=address)
    try:
        out, err, code = await run_twistd(
            ["-n", "--pidfile=", "copilot-proxy", "--port", "0", "--github-api-url", github.url],
            env,
        )
    finally:
        await stop_listening(port_)
    assert code == 1, (out, err)
    assert not any(m.startswith("READY=1") for m in notify.messages), notify.messages
