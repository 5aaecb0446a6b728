"""
Access control as the real C{twistd} command applies it: the open-relay
refusal at start and SIGHUP reloading client keys.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from copilot_proxy.access import AccessConfig, is_private_listener
from copilot_proxy.app import Options, access_from, check_not_open_relay, config_from
from copilot_proxy.settings import ConfigError

from .._helpers import Upstream, fetch, send, stream_request, timeout, until
from .._twistd import Twistd, clean_env, free_port, run_twistd

TOKEN = "fake-copilot-token"
ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"


@pytest.mark.parametrize(
    ("description", "host", "private"),
    [
        ("tcp:8080:interface=127.0.0.1", "127.0.0.1", True),
        ("tcp:8080:interface=127.0.0.2", "127.0.0.2", True),
        ("tcp6:8080:interface=\\:\\:1", "::1", True),
        ("unix:/run/proxy.sock", None, True),
        ("systemd:domain=INET:index=0", "0.0.0.0", True),
        ("tcp:8080", "0.0.0.0", False),
        ("tcp6:8080", "::", False),
        ("tcp:8080:interface=192.0.2.1", "192.0.2.1", False),
        ("ssl:8443:privateKey=k.pem", "0.0.0.0", False),
    ],
)
def test_which_listeners_count_as_private(
    description: str, host: str | None, private: bool
) -> None:
    assert is_private_listener(description, host) is private


def test_a_public_listener_without_keys_is_refused_unless_allowed() -> None:
    class Host:
        host = "0.0.0.0"
        port = 8080

    options = Options()
    options.parseOptions([])
    with pytest.raises(ConfigError, match="--allow-unauthenticated"):
        check_not_open_relay(options, AccessConfig(), "tcp:8080", Host())
    check_not_open_relay(options, AccessConfig(keys_file="k"), "tcp:8080", Host())
    options.parseOptions(["--allow-unauthenticated"])
    check_not_open_relay(options, AccessConfig(), "tcp:8080", Host())
    assert config_from(options, {}).listen == "tcp:8080:interface=127.0.0.1:backlog=1024"


@pytest_twisted.ensureDeferred
async def test_open_relay_refused_at_start_with_one_line() -> None:
    out, err, code = await run_twistd(
        ["-n", "--pidfile=", "copilot-proxy", "--port", f"tcp:{free_port()}"],
        clean_env(COPILOT_TOKEN=TOKEN),
    )
    assert code == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("copilot-proxy: refusing to listen on 0.0.0.0:")
    assert "--client-keys-file" in lines[0] and "--allow-unauthenticated" in lines[0]


@pytest_twisted.ensureDeferred
async def test_sighup_reloads_keys_without_breaking_a_stream(
    upstream: Upstream, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{ALICE} alice\n")
    port = free_port()
    run = Twistd.spawn(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
            *("--upstream", upstream.url, "--client-keys-file", str(keys)),
        ],
        env=clean_env(COPILOT_TOKEN=TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await run.serving(url + "/models", headers={"x-api-key": ALICE})
        headers, body = stream_request(events=80, interval=0.05)
        headers["authorization"] = f"Bearer {ALICE}"
        response, collector = await send(url + "/chat/completions", b"POST", headers, body)
        await timeout(collector.first)

        keys.write_text(f"{BOB} bob\n")
        run.signal("HUP")
        for _ in range(200):
            response, _ = await fetch(url + "/models", headers={"x-api-key": BOB})
            if response.code == 200:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert response.code == 200
        response, _ = await fetch(url + "/models", headers={"x-api-key": ALICE})
        assert response.code == 401
        assert not collector.done.called, "the stream should still be going"
        await timeout(collector.done, 10)
        assert collector.complete and collector.body.endswith(b"data: [DONE]\n\n")

        keys.write_text("garbage\n")
        run.signal("HUP")
        await until(lambda: "client keys not reloaded" in run.text, seconds=10)
        response, _ = await fetch(url + "/models", headers={"x-api-key": BOB})
        assert response.code == 200
    finally:
        assert await run.stop(10) == 0, run.text
    log = run.text
    assert "reloaded client keys" in log
    assert ALICE not in log and BOB not in log


def _access(*argv: str, env: dict[str, str] | None = None) -> AccessConfig:
    options = Options()
    options.parseOptions(list(argv))
    return access_from(options, env or {})


def test_access_options_parse_into_settings() -> None:
    access = _access(
        *("--client-keys-file", "/etc/keys", "--max-body", "2M", "--header-timeout", "5"),
        *("--rate-limit", "60/min", "--rate-limit-wait", "--max-queue", "7"),
        *("--max-streams", "8", "--max-streams-per-key", "2", "--cache-ttl", "0"),
        env={"PROXY_CLIENT_KEYS": f"{ALICE},{BOB}"},
    )
    assert access.keys_file == "/etc/keys" and len(access.env_keys) == 2
    assert access.limits.max_body == 2 * 1024 * 1024 and access.limits.head_timeout == 5
    assert access.rate is not None and access.rate.per_second == 1.0
    assert access.burst == 60, "the burst defaults to the rate's count"
    assert access.wait and access.max_queue == 7
    assert (access.max_streams, access.max_streams_per_key, access.cache_ttl) == (8, 2, 0)
    defaults = _access()
    assert not defaults.has_keys and defaults.rate is None and defaults.max_streams is None
    assert defaults.limits.max_body == 16 * 1024 * 1024 and defaults.cache_ttl == 300
    assert _access("--rate-limit", "2/s", "--burst", "5").burst == 5


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--burst", "3"], {}, "--burst needs --rate-limit"),
        (["--rate-limit", "often"], {}, "--rate-limit"),
        (["--max-body", "lots"], {}, "--max-body"),
        (["--max-streams", "0"], {}, "--max-streams must be at least 1"),
        (["--cache-ttl", "-1"], {}, "--cache-ttl"),
        (["--header-timeout", "0"], {}, "--header-timeout"),
        ([], {"PROXY_CLIENT_KEYS": "tinykey"}, "number 1 in PROXY_CLIENT_KEYS"),
    ],
)
def test_bad_access_options_fail_with_a_message(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _access(*argv, env=env)
    assert message in str(caught.value)
    assert "tinykey" not in str(caught.value)
