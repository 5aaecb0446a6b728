"""
Upstream through a corporate proxy: HTTPS_PROXY / NO_PROXY, a CONNECT
tunnel, and TLS verified end to end inside it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import ssl

from copilot_proxy.app import Options, config_from
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN
from copilot_proxy.wire import (
    ForwardProxy,
    ProxySettingError,
    bypasses_proxy,
    forward_proxy_for,
    parse_proxy_url,
)

from .._connect_proxy import ConnectProxy
from .._helpers import Upstream, fetch, send, stream_request, timeout
from .._tls import self_signed
from .._twistd import Daemon, clean_env, free_port, run_twistd

# Which proxy, from the environment (pure) ---------------------------------


def test_https_upstream_uses_https_proxy_with_credentials_kept_secret() -> None:
    env = {"HTTPS_PROXY": "http://alice:p%40ss@proxy.corp:3128"}
    proxy = forward_proxy_for("https://api.githubcopilot.com", env)
    assert proxy is not None
    assert (proxy.host, proxy.port, proxy.origin) == ("proxy.corp", 3128, "HTTPS_PROXY")
    assert proxy.authorization is not None
    expected = "Basic " + base64.b64encode(b"alice:p@ss").decode()
    assert proxy.authorization.reveal() == expected
    for shown in (repr(proxy), str(proxy), repr(proxy.authorization)):
        assert "p@ss" not in shown and "p%40ss" not in shown and expected not in shown


def test_lower_case_and_scheme_less_proxy_variables_work() -> None:
    proxy = forward_proxy_for("https://x.example", {"https_proxy": "proxy.corp"})
    assert proxy == ForwardProxy("proxy.corp", 80, "https_proxy")
    assert forward_proxy_for("http://x.example", {"http_proxy": "p:8080"}) is not None
    assert forward_proxy_for("http://x.example", {"HTTPS_PROXY": "p:8080"}) is None
    assert forward_proxy_for("https://x.example", {}) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "bypassed"),
    [
        ("*", "api.githubcopilot.com", True),
        ("githubcopilot.com", "api.githubcopilot.com", True),
        (".githubcopilot.com", "api.githubcopilot.com", True),
        ("githubcopilot.com", "githubcopilot.com", True),
        ("copilot.com", "api.githubcopilot.com", False),
        ("localhost, 10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("githubcopilot.com:8443", "api.githubcopilot.com", False),
        ("githubcopilot.com:443", "api.githubcopilot.com", True),
        ("::1", "::1", True),
        ("", "api.githubcopilot.com", False),
    ],
)
def test_no_proxy_rules(no_proxy: str, host: str, bypassed: bool) -> None:
    assert bypasses_proxy(host, 443, no_proxy) is bypassed


def test_no_proxy_from_the_environment_means_a_direct_connection() -> None:
    env = {"HTTPS_PROXY": "http://proxy.corp:3128", "no_proxy": "githubcopilot.com"}
    assert forward_proxy_for("https://api.githubcopilot.com", env) is None


def test_unusable_proxy_settings_are_refused_without_showing_credentials() -> None:
    with pytest.raises(ProxySettingError, match="HTTPS_PROXY must be an http://"):
        parse_proxy_url("https://bob:hunter2@proxy.corp", "HTTPS_PROXY")
    with pytest.raises(ProxySettingError, match="invalid port") as caught:
        parse_proxy_url("http://bob:hunter2@proxy.corp:99999", "HTTPS_PROXY")
    assert "hunter2" not in str(caught.value)


def test_options_read_the_proxy_from_the_environment() -> None:
    options = Options()
    options.parseOptions(["--upstream", "https://api.example"])
    config = config_from(options, {"HTTPS_PROXY": "http://proxy.corp:3128"})
    assert config.forward_proxy == ForwardProxy("proxy.corp", 3128, "HTTPS_PROXY")
    assert "proxy.corp" in repr(config)
    config = config_from(options, {"HTTPS_PROXY": "http://u:secret@p:1", "NO_PROXY": "*"})
    assert config.forward_proxy is None


# Through a real CONNECT proxy ----------------------------------------------


class _TLSUpstream:
    def __init__(self, url: str, ca: bytes, port: Any) -> None:
        self.url = url
        self.ca = ca
        self.port = port


@pytest_twisted.async_yield_fixture
async def tls_upstream(reactor: Any, upstream: Upstream, tmp_path: Path) -> Any:
    """The fake upstream also on TLS, as C{localhost}, with its certificate."""
    key, cert = self_signed(tmp_path, "localhost")
    context = ssl.DefaultOpenSSLContextFactory(str(key), str(cert))
    port = reactor.listenSSL(0, upstream.fake.site, context, interface="127.0.0.1")
    yield _TLSUpstream(f"https://localhost:{port.getHost().port}", cert.read_bytes(), port)
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def corporate_proxy(reactor: Any) -> Any:
    proxy = ConnectProxy(reactor)
    port = reactor.listenTCP(0, proxy.factory, interface="127.0.0.1")
    proxy.url = f"http://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
    yield proxy
    await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_stream_goes_through_the_tunnel_with_tls_end_to_end(
    make_proxy: Any, upstream: Upstream, tls_upstream: _TLSUpstream, corporate_proxy: Any
) -> None:
    corporate_proxy.require_authorization = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    url = corporate_proxy.url.replace("http://", "http://alice:s3cret@")
    proxy = make_proxy(
        tls_upstream.url,
        forward_proxy=parse_proxy_url(url, "HTTPS_PROXY"),
        upstream_ca=tls_upstream.ca,
    )
    for _ in range(2):
        headers, body = stream_request(events=5)
        response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
        await timeout(collector.done)
        assert response.code == 200 and collector.complete
        assert collector.body.endswith(b"data: [DONE]\n\n")
    assert upstream.fake.received[-1].header("authorization") == f"Bearer {ACCEPTED_TOKEN}"
    # One tunnel to the upstream's own name and port, reused by the pool.
    (tunnel,) = corporate_proxy.tunnels
    assert tunnel.target == tls_upstream.url.removeprefix("https://")
    assert tunnel.headers["host"] == tunnel.target
    # The proxy saw TLS, never the request or the Copilot token.
    seen = bytes(tunnel.client_bytes)
    assert seen[:1] == b"\x16"  # a TLS handshake record
    assert ACCEPTED_TOKEN.encode() not in seen and b"chat/completions" not in seen


@pytest_twisted.ensureDeferred
async def test_tunnel_still_verifies_the_upstream_certificate(
    make_proxy: Any,
    upstream: Upstream,
    tls_upstream: _TLSUpstream,
    corporate_proxy: Any,
    tmp_path: Path,
) -> None:
    # A certificate for another name, though from a trusted CA: refused.
    other = tmp_path / "other"
    other.mkdir()
    _, wrong = self_signed(other, "not-the-upstream.example")
    proxy = make_proxy(
        tls_upstream.url,
        forward_proxy=parse_proxy_url(corporate_proxy.url, "HTTPS_PROXY"),
        upstream_ca=wrong.read_bytes(),
    )
    response, body = await fetch(proxy.url + "/models")
    assert response.code == 502
    assert json.loads(body)["error"]["code"] == "upstream_unreachable"
    # The right certificate, trusted, but the upstream reached by another
    # name than the one it holds: refused too.
    by_address = tls_upstream.url.replace("localhost", "127.0.0.1")
    proxy = make_proxy(
        by_address,
        forward_proxy=parse_proxy_url(corporate_proxy.url, "HTTPS_PROXY"),
        upstream_ca=tls_upstream.ca,
    )
    response, body = await fetch(proxy.url + "/models")
    assert response.code == 502
    assert [t.target for t in corporate_proxy.tunnels] == [
        tls_upstream.url.removeprefix("https://"),
        by_address.removeprefix("https://"),
    ]
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_proxy_refusing_the_tunnel_gives_502_naming_it_without_credentials(
    make_proxy: Any, upstream: Upstream, tls_upstream: _TLSUpstream, corporate_proxy: Any
) -> None:
    corporate_proxy.require_authorization = "Basic something-else"
    url = corporate_proxy.url.replace("http://", "http://alice:s3cret@")
    proxy = make_proxy(
        tls_upstream.url,
        forward_proxy=parse_proxy_url(url, "HTTPS_PROXY"),
        upstream_ca=tls_upstream.ca,
    )
    response, body = await fetch(proxy.url + "/models")
    assert response.code == 502
    message = json.loads(body)["error"]["message"]
    assert "refused the tunnel: HTTP/1.1 407" in message
    assert corporate_proxy.url.removeprefix("http://") in message
    assert "s3cret" not in message and "alice" not in message
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_twistd_honours_https_proxy_and_upstream_ca(
    upstream: Upstream, tls_upstream: _TLSUpstream, corporate_proxy: Any, tmp_path: Path
) -> None:
    port = free_port()
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls_upstream.ca)
    daemon = Daemon(tmp_path)
    env = clean_env(
        COPILOT_TOKEN=ACCEPTED_TOKEN, HTTPS_PROXY=corporate_proxy.url, NO_PROXY="example"
    )
    out, err, code = await daemon.start(
        *("--port", str(port), "--upstream", tls_upstream.url, "--upstream-ca", str(ca)),
        env=env,
    )
    assert code == 0, err
    pid = daemon.pid
    try:
        response, _ = await fetch(f"http://127.0.0.1:{port}/models")
        assert response.code == 200
        assert [t.target for t in corporate_proxy.tunnels] == [
            tls_upstream.url.removeprefix("https://")
        ]
    finally:
        os.kill(pid, signal.SIGTERM)
        await daemon.gone()
    log = daemon.logfile.read_text()
    assert "tunnel through ForwardProxy(127.0.0.1" in log
    assert ACCEPTED_TOKEN not in log


@pytest_twisted.ensureDeferred
async def test_bad_upstream_ca_fails_the_start_with_one_line(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    out, err, code = await run_twistd(
        ["-n", "copilot-proxy", "--port", "0", "--upstream-ca", str(ca)],
        clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN),
    )
    assert code == 1
    assert err.decode().strip().splitlines() == [
        f"copilot-proxy: --upstream-ca {ca} holds no PEM certificate"
    ]


# GitHub's control plane ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_copilot_token_exchange_goes_through_the_proxy(
    reactor: Any, github: Any, corporate_proxy: Any
) -> None:
    from copilot_proxy.testing.fake_github import GITHUB_TOKEN
    from copilot_proxy.tokens import GitHubAPI
    from copilot_proxy.wire import Secret

    through = parse_proxy_url(corporate_proxy.url, "HTTPS_PROXY")
    asked: list[str] = []

    def proxy_for(url: str) -> ForwardProxy:
        asked.append(url)
        return through

    api = GitHubAPI(reactor, github.url, github.url, timeout=5.0, proxy_for=proxy_for)
    token = await timeout(api.exchange(Secret(GITHUB_TOKEN)))
    assert token.token.reveal()
    assert asked == [github.url]
    (tunnel,) = corporate_proxy.tunnels
    assert tunnel.target == github.url.removeprefix("http://")


def test_github_hosts_follow_https_proxy_and_no_proxy() -> None:
    from copilot_proxy.wire import proxy_chooser

    assert proxy_chooser({}, "https://github.com") is None
    env = {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "ghe.internal"}
    choose = proxy_chooser(env, "https://github.com", "https://api.github.com")
    assert choose is not None
    assert choose("https://api.github.com:443") == ForwardProxy("proxy.corp", 3128, "HTTPS_PROXY")
    assert choose("https://ghe.internal:443") is None
    with pytest.raises(ProxySettingError, match="HTTPS_PROXY must be an http://"):
        proxy_chooser({"HTTPS_PROXY": "socks5://p:1"}, "https://github.com")
