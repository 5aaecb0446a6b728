"""
The status page at C{/_proxy/}.

In process: its files and their policy, and its JSON document with the
usage page's rule of who sees what.  In a real headless Chromium (Debian's
C{chromium}, driven by Playwright in a thread of its own, since the sync
API cannot run in the reactor's): the page against a real C{twistd} proxy
and the fake upstream as processes, as a person would use it.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import pytest_twisted
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from twisted.internet import reactor
from twisted.internet.task import deferLater

from copilot_proxy.access import AccessConfig
from copilot_proxy.app import build_proxy
from copilot_proxy.settings import ProxyConfig, upstream_base
from copilot_proxy.shared import SharedConfig, SharedState, SqliteLedger
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN
from copilot_proxy.tokens import StaticToken
from copilot_proxy.wire import Secret

from .._helpers import Upstream, fetch, port_number, send, stream_request, timeout
from .._twistd import TWISTD, Twistd, clean_env, free_port

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"
OPS = "sk-ops-0123456789abcdef000"
SECRETS = (ALICE, BOB, OPS, ACCEPTED_TOKEN)

POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"no {CHROMIUM}: install Debian's chromium package (.ci/run does)",
)

_T = TypeVar("_T")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice\n{BOB} bob\n{OPS} ops admin\n")
    path.chmod(0o600)
    return path


def _chat_body(model: str = "gpt-4o", stream: bool = False) -> bytes:
    payload = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps(payload).encode()


# In process: files, policy, the document ------------------------------------


@pytest_twisted.async_yield_fixture
async def proxy_url(upstream: Upstream, keys: Path, tmp_path: Path) -> Any:
    shared = SharedState(reactor, SharedConfig(), SqliteLedger(tmp_path / "usage.sqlite3"))
    shared.startService()
    config = ProxyConfig(listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(upstream.url))
    service = build_proxy(
        reactor,
        config,
        StaticToken(Secret(ACCEPTED_TOKEN)),
        AccessConfig(keys_file=str(keys)),
        shared=shared,
    )
    service.startService()  # type: ignore[no-untyped-call]
    yield f"http://127.0.0.1:{port_number(service.port)}"
    await service.stopService()
    await shared.stopService()


async def _status(url: str, key: str | None, query: str = "") -> tuple[int, dict[str, Any]]:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    response, body = await fetch(url + "/_proxy/status.json" + query, headers=headers)
    for secret in SECRETS:
        assert secret.encode() not in body
    document: dict[str, Any] = json.loads(body)
    return response.code, document


async def _ask(url: str, key: str, model: str = "gpt-4o", **shape: Any) -> int:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    headers.update({f"x-fake-{k}": str(v) for k, v in shape.items()})
    response, _ = await fetch(url + "/chat/completions", b"POST", headers, _chat_body(model))
    code: int = response.code
    return code


@pytest_twisted.ensureDeferred
async def test_page_files_are_served_without_a_key_under_a_strict_policy(proxy_url: str) -> None:
    types = {
        "": "text/html; charset=utf-8",
        "status.css": "text/css; charset=utf-8",
        "status.js": "text/javascript; charset=utf-8",
    }
    for name, content_type in types.items():
        response, body = await fetch(proxy_url + "/_proxy/" + name)
        assert response.code == 200, name
        head = response.headers
        assert head.getRawHeaders(b"content-type") == [content_type.encode()]
        assert head.getRawHeaders(b"content-security-policy") == [POLICY.encode()]
        assert head.getRawHeaders(b"x-content-type-options") == [b"nosniff"]
        assert head.getRawHeaders(b"referrer-policy") == [b"no-referrer"]
        assert head.getRawHeaders(b"cache-control") == [b"no-store"]
        assert body
    _, html = await fetch(proxy_url + "/_proxy/")
    for section in (b'id="quota"', b'id="in-flight"', b'id="usage"', b'id="errors"'):
        assert section in html
    # The document itself needs a key, and carries the same headers.
    response, body = await fetch(proxy_url + "/_proxy/status.json")
    assert response.code == 401
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    response, _ = await fetch(
        proxy_url + "/_proxy/status.json", headers={"authorization": f"Bearer {OPS}"}
    )
    assert response.headers.getRawHeaders(b"content-security-policy") == [POLICY.encode()]


@pytest_twisted.ensureDeferred
async def test_a_client_key_sees_its_own_requests_and_an_admin_key_everyones(
    proxy_url: str,
) -> None:
    assert await _ask(proxy_url, ALICE) == 200
    assert await _ask(proxy_url, ALICE, "claude-sonnet-4") == 200
    assert await _ask(proxy_url, BOB) == 200
    assert await _ask(proxy_url, BOB, status=503) == 503
    response, _ = await fetch(
        proxy_url + "/chat/completions", headers={"authorization": "Bearer not-a-key-0123456789"}
    )
    assert response.code == 401

    async def counted() -> bool:
        _, document = await _status(proxy_url, OPS)
        keys = document["usage"]["keys"]
        return "alice" in keys and "bob" in keys

    deadline = reactor.seconds() + 5
    while not await counted():
        assert reactor.seconds() < deadline, "the ledger never showed the requests"
        await deferLater(reactor, 0.1, lambda: None)

    code, mine = await _status(proxy_url, ALICE, "?days=1")
    assert code == 200
    assert mine["viewer"] == {"key": "alice", "admin": False}
    assert mine["usage_days"] == 1 and mine["usage"]["days"] == 1
    assert set(mine["usage"]["keys"]) == {"alice"}
    assert set(mine["usage"]["keys"]["alice"]) == {"gpt-4o", "claude-sonnet-4"}
    assert mine["recent_errors"] == []
    assert mine["requests_in_flight"] == []

    _, bobs = await _status(proxy_url, BOB)
    assert [(e["key"], e["status"], e["cause"]) for e in bobs["recent_errors"]] == [
        ("bob", 503, "answered 503")
    ]

    _, everything = await _status(proxy_url, OPS)
    assert everything["viewer"] == {"key": "ops", "admin": True}
    assert {"alice", "bob"} <= set(everything["usage"]["keys"])
    errors = everything["recent_errors"]
    # Newest first: the refused key, then bob's 503.
    assert [(e["status"], e["outcome"]) for e in errors] == [(401, "refused"), (503, "complete")]
    assert errors[0]["key"] == "addr:127.0.0.1" and errors[0]["route"] == "chat_completions"
    assert errors[1]["model"] == "gpt-4o"
    # The rest of the document: this process, its token and upstream.
    assert everything["process"] == {"pid": os.getpid(), "several": False, "fleet": False}
    assert everything["token_usable"] is True
    assert everything["token"] == {"source": "static", "expires_in_s": None}
    assert set(everything["upstream_quota"]) >= {"session", "weekly"}
    assert everything["shared_state"]["backend"] == "process"

    code, bad = await _status(proxy_url, OPS, "?days=0")
    assert code == 400 and bad["error"]["code"] == "invalid_request"


@pytest_twisted.ensureDeferred
async def test_a_stream_is_listed_in_flight_with_its_bytes_until_it_ends(proxy_url: str) -> None:
    headers, body = stream_request(events=30, interval=0.05)
    headers["authorization"] = f"Bearer {ALICE}"
    response, collector = await send(proxy_url + "/chat/completions", b"POST", headers, body)
    assert response.code == 200
    await timeout(collector.first)
    _, document = await _status(proxy_url, OPS)
    (listed,) = document["requests_in_flight"]
    assert listed["key"] == "alice" and listed["model"] == "gpt-4o"
    assert listed["route"] == "chat_completions" and listed["stage"] == "delivering"
    assert listed["bytes_sent"] > 0 and listed["age_s"] >= 0
    _, bobs = await _status(proxy_url, BOB)
    assert bobs["requests_in_flight"] == []
    await timeout(collector.done)
    _, document = await _status(proxy_url, OPS)
    assert document["requests_in_flight"] == []


@pytest_twisted.ensureDeferred
async def test_with_workers_the_document_says_which_process_answered(
    upstream: Upstream, tmp_path: Path
) -> None:
    port = free_port()
    run = Twistd.spawn(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
            *("--upstream", upstream.url, "--workers", "2", "--state-dir", str(tmp_path)),
        ],
        env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await run.serving(url + "/_proxy/healthz")
        _, document = await _status(url, None)
        # A proxy without keys shows everything, to anyone who can reach it.
        assert document["viewer"] == {"key": None, "admin": True}
        assert document["process"]["several"] is True
        assert document["process"]["pid"] == document["pid"]
    finally:
        await run.stop()


# In a browser: the page against real processes -------------------------------


def _call(
    origin: str,
    path: str,
    key: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request from this thread, on a fresh connection; its status and body."""
    parts = urlsplit(origin)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    sent = dict(headers or {})
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    if body is not None:
        sent["content-type"] = "application/json"
    try:
        connection.request("POST" if body is not None else "GET", path, body, sent)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@dataclass
class Deployment:
    """A real C{twistd} proxy in front of a real fake-upstream process."""

    origin: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def usage(self, key: str, days: int) -> dict[str, Any]:
        code, body = _call(self.origin, f"/_proxy/usage?days={days}", key)
        assert code == 200, body
        document: dict[str, Any] = json.loads(body)
        return document

    def chat(self, key: str, model: str = "gpt-4o", **shape: Any) -> int:
        headers = {f"x-fake-{k}": str(v) for k, v in shape.items()}
        code, _ = _call(self.origin, "/chat/completions", key, _chat_body(model), headers)
        return code

    def open_stream(self, key: str, events: int = 400, interval: float = 0.05) -> Any:
        """A slow stream, started and read up to its first bytes: close it to end it."""
        parts = urlsplit(self.origin)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        connection.request(
            "POST",
            "/chat/completions",
            _chat_body(stream=True),
            {
                "authorization": f"Bearer {key}",
                "content-type": "application/json",
                "x-fake-events": str(events),
                "x-fake-interval": str(interval),
            },
        )
        answer = connection.getresponse()
        assert answer.status == 200
        answer.read1(64)
        return connection


def _serving(origin: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if _call(origin, "/_proxy/healthz")[0] == 200:
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{origin} not serving:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    tmp = tmp_path_factory.mktemp("status-page")
    keys = tmp / "keys"
    keys.write_text(f"{ALICE} alice\n{BOB} bob\n{OPS} ops admin\n")
    keys.chmod(0o600)
    fake_port, proxy_port = free_port(), free_port()
    fake_log, proxy_log = tmp / "fake.log", tmp / "proxy.log"
    deployment = Deployment(f"http://127.0.0.1:{proxy_port}")
    with fake_log.open("wb") as fake_out, proxy_log.open("wb") as proxy_out:
        fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "copilot_proxy.testing.fake_upstream",
                "--port",
                f"{fake_port}",
            ],
            env=clean_env(),
            stdout=fake_out,
            stderr=subprocess.STDOUT,
        )
        deployment.processes.append(fake)
        upstream = f"http://127.0.0.1:{fake_port}"
        proxy = subprocess.Popen(
            [
                *(TWISTD, "-n", "--pidfile=", "copilot-proxy", "--port", str(proxy_port)),
                *("--upstream", upstream, "--client-keys-file", str(keys)),
                *("--state-dir", str(tmp / "state")),
            ],
            env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN),
            stdout=proxy_out,
            stderr=subprocess.STDOUT,
        )
        deployment.processes.append(proxy)
    try:
        _serving(deployment.origin, proxy, proxy_log)
        yield deployment
    finally:
        for process in reversed(deployment.processes):
            process.terminate()
        for process in deployment.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class BrowserThread:
    """
    Chromium driven by Playwright's sync API from one thread of its own:
    every call on its objects is made there, through L{run}.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="chromium")
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._pool.submit(self._launch).result(60)

    def _launch(self) -> None:
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )

    def run(self, job: Callable[[Browser], _T], seconds: float = 60) -> _T:
        """Run C{job} with the browser in its thread and return what it returns."""

        def call() -> _T:
            assert self._browser is not None
            return job(self._browser)

        return self._pool.submit(call).result(seconds)

    def close(self) -> None:
        def stop() -> None:
            if self._browser is not None:
                self._browser.close()
            if self._playwright is not None:
                self._playwright.stop()

        try:
            self._pool.submit(stop).result(30)
        finally:
            self._pool.shutdown()


@pytest.fixture(scope="module")
def chromium(deployment: Deployment) -> Iterator[BrowserThread]:
    browser = BrowserThread()
    yield browser
    browser.close()


class Visit:
    """
    One tab on the status page, in a fresh browser context (so a fresh
    session storage), recording every request it makes and every error
    its console shows.
    """

    def __init__(self, browser: Browser, origin: str, width: int = 1280, height: int = 800):
        self.origin = origin
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        response = self.page.goto(origin + "/_proxy/")
        assert response is not None and response.status == 200
        self.headers = response.headers

    def _console(self, message: ConsoleMessage) -> None:
        # A 401 is how the page learns that it needs a key: the browser
        # logs every such answer.  Anything else (a policy violation, a
        # script error) is a fault of the page.
        if message.type == "error" and "status of 401" not in message.text:
            self.problems.append(message.text)

    def sign_in(self, key: str) -> None:
        page = self.page
        page.wait_for_selector("#key-form", state="visible")
        page.fill("#key", key)
        page.press("#key", "Enter")
        page.wait_for_selector("#dashboard", state="visible")

    def refreshed(self) -> None:
        """Have the page ask for the document now, and wait until it has drawn it."""
        drawn = self.polls()
        self.page.click("#refresh")
        self.until(lambda: self.polls() > drawn)

    def polls(self) -> int:
        return int(self.page.get_attribute("body", "data-polls") or 0)

    def usage_rows(self) -> dict[tuple[str, str], dict[str, int]]:
        """The usage table as the page shows it: exact counts by key and model."""
        rows: list[dict[str, Any]] = self.page.eval_on_selector_all(
            "#usage tbody tr",
            """rows => rows.map(row => ({
                key: row.dataset.key, model: row.dataset.model,
                counts: Object.fromEntries([...row.querySelectorAll("td[data-counter]")]
                    .map(cell => [cell.dataset.counter, Number(cell.dataset.value)]))}))""",
        )
        return {(r["key"], r["model"]): r["counts"] for r in rows}

    def keys_in(self, section: str) -> list[str]:
        found: list[str] = self.page.eval_on_selector_all(
            f"#{section} tbody tr", "rows => rows.map(row => row.dataset.key)"
        )
        return found

    def until(self, predicate: Callable[[], bool], seconds: float = 8.0) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the page never showed it")
            self.page.wait_for_timeout(100)

    def close(self) -> None:
        """Check what the tab did, then close it."""
        elsewhere = [url for url in self.requests if not url.startswith(self.origin + "/")]
        assert elsewhere == [], elsewhere
        assert self.problems == []
        for url in self.requests:
            for secret in SECRETS:
                assert secret not in url
        self.context.close()


def _ledger_rows(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    return {
        (key, model): counts
        for key, models in document["keys"].items()
        for model, counts in models.items()
    }


def _requests_of(document: dict[str, Any], key: str) -> int:
    models = document["keys"].get(key, {})
    return sum(counts["requests"] for counts in models.values())


@needs_chromium
def test_the_page_shows_each_keys_usage_as_the_usage_page_counts_it(
    deployment: Deployment, chromium: BrowserThread
) -> None:
    before = deployment.usage(OPS, 7)
    for model in ("gpt-4o", "gpt-4o", "claude-sonnet-4"):
        assert deployment.chat(ALICE, model) == 200
    for _ in range(2):
        assert deployment.chat(BOB, "gpt-4.1") == 200
    deadline = time.monotonic() + 5
    while True:
        after = deployment.usage(OPS, 7)
        if (_requests_of(after, "alice"), _requests_of(after, "bob")) == (
            _requests_of(before, "alice") + 3,
            _requests_of(before, "bob") + 2,
        ):
            break
        assert time.monotonic() < deadline, after
        time.sleep(0.1)

    def look(browser: Browser) -> None:
        visit = Visit(browser, deployment.origin)
        visit.sign_in(OPS)
        visit.until(lambda: visit.usage_rows() == _ledger_rows(deployment.usage(OPS, 7)))
        shown = visit.usage_rows()
        assert shown[("alice", "gpt-4o")]["requests"] >= 2
        assert shown[("alice", "claude-sonnet-4")]["input_tokens"] > 0
        assert shown[("bob", "gpt-4.1")]["requests"] >= 2
        # The period selector asks the ledger for 30 days instead.
        visit.page.click("#usage .days button[data-days='30']")
        visit.until(lambda: "?days=30" in visit.requests[-1])
        visit.until(lambda: visit.usage_rows() == _ledger_rows(deployment.usage(OPS, 30)))
        # A click on a header sorts by it, most first; another click flips it.
        header = "#usage th[data-sort='output_tokens']"
        visit.page.click(header + " button")
        assert visit.page.get_attribute(header, "aria-sort") == "descending"
        column = visit.page.eval_on_selector_all(
            "#usage tbody td[data-counter='output_tokens']",
            "cells => cells.map(cell => Number(cell.dataset.value))",
        )
        assert column == sorted(column, reverse=True) and len(column) >= 3
        visit.page.click(header + " button")
        assert visit.page.get_attribute(header, "aria-sort") == "ascending"
        # The chart has a bar pair per key.
        charted = visit.page.eval_on_selector_all(
            "#usage-chart li", "items => items.map(item => item.dataset.key)"
        )
        assert {"alice", "bob"} <= set(charted)
        visit.close()

        # A client key sees its own rows, and they are the usage page's.
        visit = Visit(browser, deployment.origin)
        visit.sign_in(ALICE)
        visit.until(lambda: visit.usage_rows() == _ledger_rows(deployment.usage(ALICE, 7)))
        assert {key for key, _ in visit.usage_rows()} == {"alice"}
        assert "key alice" in visit.page.inner_text("#viewer")
        visit.close()

    chromium.run(look)


@needs_chromium
def test_an_open_stream_appears_in_flight_and_disappears_when_it_ends(
    deployment: Deployment, chromium: BrowserThread
) -> None:
    def look(browser: Browser) -> None:
        admin = Visit(browser, deployment.origin)
        admin.sign_in(OPS)
        other = Visit(browser, deployment.origin)
        other.sign_in(BOB)
        stream = deployment.open_stream(ALICE)
        try:
            # Shown by a poll, not by a reload: the page updates itself.
            admin.until(lambda: admin.keys_in("in-flight") == ["alice"])
            row = "#in-flight tbody tr[data-key='alice']"
            assert admin.page.inner_text(row + " td:nth-child(2)") == "gpt-4o"
            assert admin.page.inner_text(row + " td:nth-child(3)") == "chat_completions"
            sent = admin.page.get_attribute(row + " td[data-counter='bytes_sent']", "data-value")
            assert sent is not None and int(sent) > 0
            assert admin.page.inner_text("#in-flight-count") == "1"
            # Another client key never sees alice's stream.
            other.refreshed()
            assert other.keys_in("in-flight") == []
        finally:
            stream.close()
        admin.until(lambda: admin.keys_in("in-flight") == [])
        assert admin.page.is_visible("#in-flight .empty")
        # Its client left early: the stream is among the recent errors.
        admin.until(lambda: "alice" in admin.keys_in("errors"))
        assert "client_gone" in admin.page.inner_text("#errors tbody tr[data-key='alice']")
        assert other.keys_in("errors") == []
        admin.close()
        other.close()

    chromium.run(look)


@needs_chromium
def test_a_bad_key_is_refused_and_the_key_form_comes_back(
    deployment: Deployment, chromium: BrowserThread
) -> None:
    def look(browser: Browser) -> None:
        visit = Visit(browser, deployment.origin)
        page = visit.page
        # By keyboard alone: the form has the focus, Enter sends it.
        page.wait_for_selector("#key-form", state="visible")
        page.keyboard.type("sk-wrong-0123456789abcdef")
        page.keyboard.press("Enter")
        page.wait_for_selector("#message", state="visible")
        assert "refused this key (401" in page.inner_text("#message")
        assert page.is_visible("#key-form") and not page.is_visible("#dashboard")
        assert page.evaluate("() => sessionStorage.length") == 0
        assert "sk-wrong" not in page.url
        page.keyboard.type(BOB)
        page.keyboard.press("Enter")
        page.wait_for_selector("#dashboard", state="visible")
        assert not page.is_visible("#message")
        # The key is kept for this tab only, never in the address.
        assert page.evaluate("() => Object.values(sessionStorage)") == [BOB]
        assert BOB not in page.url
        # Tab reaches the sort buttons; Enter sorts.
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate("() => document.activeElement.closest('th')?.dataset.sort")
            if focused == "requests":
                break
        else:
            raise AssertionError("no sort button reached with Tab")
        page.keyboard.press("Enter")
        sort = page.get_attribute("#usage th[data-sort='requests']", "aria-sort")
        assert sort == "descending"
        # Forgetting the key asks for one again.
        page.click("#forget")
        page.wait_for_selector("#key-form", state="visible")
        assert page.evaluate("() => sessionStorage.getItem('copilot-proxy.key')") is None
        visit.close()

    chromium.run(look)


@needs_chromium
def test_the_page_asks_nothing_of_another_origin_and_sends_its_policy(
    deployment: Deployment, chromium: BrowserThread
) -> None:
    def look(browser: Browser) -> None:
        visit = Visit(browser, deployment.origin)
        assert visit.headers["content-security-policy"] == POLICY
        assert visit.headers["x-content-type-options"] == "nosniff"
        assert visit.headers["referrer-policy"] == "no-referrer"
        visit.sign_in(ALICE)
        # A few polls, a period change: every request is to the proxy.
        visit.page.click("#usage .days button[data-days='1']")
        visit.until(lambda: len([u for u in visit.requests if "status.json" in u]) >= 4)
        names = {urlsplit(url).path for url in visit.requests}
        assert names == {
            "/_proxy/",
            "/_proxy/status.css",
            "/_proxy/status.js",
            "/_proxy/status.json",
        }
        visit.close()

    chromium.run(look)


@needs_chromium
def test_screenshots_at_desktop_and_phone_widths(
    deployment: Deployment, chromium: BrowserThread, tmp_path: Path
) -> None:
    artefacts = Path(os.environ.get("COPILOT_PROXY_ARTEFACTS") or tmp_path)
    artefacts.mkdir(parents=True, exist_ok=True)
    assert deployment.chat(BOB, "gpt-4o", status=503) == 503
    assert deployment.chat("sk-nobody-0123456789abcdef") == 401
    stream = deployment.open_stream(ALICE)

    def shoot(browser: Browser, name: str, width: int, height: int) -> None:
        visit = Visit(browser, deployment.origin, width, height)
        visit.sign_in(OPS)
        visit.until(lambda: visit.keys_in("in-flight") == ["alice"])
        visit.until(lambda: len(visit.keys_in("errors")) >= 2)
        # Nothing wider than the screen: wide tables scroll in place.
        scroll = visit.page.evaluate("() => document.documentElement.scrollWidth")
        assert scroll <= width, (name, scroll)
        visit.page.screenshot(path=str(artefacts / f"status-{name}.png"), full_page=True)
        visit.close()

    def look(browser: Browser) -> None:
        shoot(browser, "desktop", 1280, 800)
        shoot(browser, "phone", 390, 844)

    try:
        chromium.run(look)
    finally:
        stream.close()
    for name in ("desktop", "phone"):
        assert (artefacts / f"status-{name}.png").stat().st_size > 10_000
