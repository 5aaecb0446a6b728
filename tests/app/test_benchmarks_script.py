"""benchmarks/run stays runnable: it parses its options and reads profiles."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("benchmarks_run", str(SCRIPT))
    spec = importlib.util.spec_from_loader("benchmarks_run", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_help_lists_the_modes() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--quick", "--profile", "--workers", "--python", "--scenarios", "--redis"):
        assert option in out


def test_redis_and_profile_are_refused_together() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--redis", "--profile", "stream-200"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "benchmarks/run: --redis and --profile are separate runs: give one of them"
    ]


def test_redis_table_gives_what_redis_adds_to_the_in_process_limits() -> None:
    def leg(variant: str, cycle: int, p50: float, cpu: float) -> dict[str, object]:
        redis = None
        if variant.startswith("redis"):
            calls = {"evalsha": 1000, "time": 1000, "get": 1000, "set": 1000}
            redis = {"commands": 4000, "reads": 1000, "calls": calls, "cpu_s": 0.05}
        return {
            "variant": variant,
            "cycle": cycle,
            "scenario": "seq-1",
            "requests": 1000,
            "seconds": 1.0,
            "errors": 0,
            "latency_ms": {"p50": p50, "p99": 2 * p50},
            "proxy_cpu_s": cpu,
            "core_busy_pct": [20.0, 80.0],
            "redis": redis,
        }

    # The machine slows down in the second cycle: only differences within
    # a cycle count, so redis-rate adds 0.2 ms in both.
    summaries = [
        leg("no-limits", 0, 0.800, 0.5),
        leg("local-rate", 0, 0.810, 0.52),
        leg("redis-rate", 0, 1.010, 0.6),
        leg("no-limits", 1, 1.800, 0.5),
        leg("local-rate", 1, 1.810, 0.52),
        leg("redis-rate", 1, 2.010, 0.6),
    ]
    lines = _load().redis_table(
        ["seq-1"], "proxy", ["no-limits", "local-rate", "redis-rate"], summaries
    )
    text = "\n".join(lines)
    assert (
        "seq-1     added p50 ms vs in-process  -                -                 +0.200" in text
    )
    assert "seq-1     redis scripts/request       -                -                 1.00" in text
    assert "seq-1     redis commands/request      -                -                 4.00" in text
    assert (
        "seq-1: --redis (redis-rate vs local-rate) adds p50 +0.200 ms (quartiles +0.200 to "
        "+0.200 over 2 cycles), proxy CPU +80 us/request (520 -> 600); Redis 50.0 us CPU and "
        "1.00 round trips per request (expected 1); target one round trip, added p50 under "
        "0.5 ms: met"
    ) in text


def test_missing_rig_fails_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        env={"BENCH_RIG": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"benchmarks/run: no load rig at {tmp_path}: set BENCH_RIG to the directory holding run.sh"
    ]


def test_profile_summary_counts_work_and_leaves_out_waiting(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (a.py:1);work (a.py:5);send (b.py:9) 30\n"
        "main (a.py:1);work (a.py:6) 10\n"
        "main (a.py:1);EPollReactor.doPoll (twisted/internet/epollreactor.py:227) 60\n"
    )
    text = _load().summarize_pyspy(raw, 5)
    assert "40 samples of the proxy at work; 60 more waiting in epoll" in text
    assert " 75.0  send (b.py)" in text
    assert " 25.0  work (a.py)" in text
    assert "100.0  work (a.py)" in text


def test_translated_table_gives_the_ratio_against_the_target() -> None:
    def summary(leg: str, cpu: float) -> dict[str, object]:
        return {
            "leg": leg,
            "events": 1000,
            "seconds": 2.0,
            "errors": 0,
            "pids": [1],
            "proxy_cpu_s": cpu,
            "proxy_rss_peak_kb": 65536,
            "core_busy_pct": [50.0, 60.0],
            "ttfb_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0},
            "latency_ms": {"p50": 0.5 if leg == "passthrough" else 0, "p99": 1.0},
        }

    lines = _load().translated_table(
        "translated-200",
        "proxy",
        ["passthrough", "translated"],
        [summary("passthrough", 0.1), summary("translated", 0.15)],
        {},
    )
    text = "\n".join(lines)
    assert "proxy CPU us/event    100                150 (1.50x)" in text
    assert "translated / passthrough CPU per event: 1.50x (target at most 2x: met)" in text


def _serve_once_per_connection(body: bytes) -> tuple[int, threading.Thread]:
    """A server answering every request on every connection with this chunked body."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in body.split(b"|")) + b"0\r\n\r\n"

    def handle(conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
                while b"\r\n\r\n" in data:
                    request, _, data = data.partition(b"\r\n\r\n")
                    length = int(request.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    while len(data) < length:
                        data += conn.recv(65536)
                    data = data[length:]
                    conn.sendall(head + chunks)

    def accept() -> None:
        with server:
            server.settimeout(10)
            for _ in range(2):
                conn, _ = server.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def _run_load(port: int, shape: str, path: str) -> dict[str, object]:
    config = {
        "url": f"http://127.0.0.1:{port}",
        "path": path,
        "body": "{}",
        "shape": shape,
        "clients": 2,
        "seconds": 0,
        "events": 2,
        "interval_ms": 0,
        "bytes": 1,
        "ramp_s": 0,
        "timeout_s": 10,
        "pids": [],
        "target": "t",
        "scenario": "s",
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "_load", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_load_client_counts_the_content_events_of_a_translated_stream() -> None:
    delta = b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n'
    body = (
        b'event: message_start\ndata: {"type":"message_start"}\n\n|'
        + delta[:20]
        + b"|"
        + delta[20:]
        + delta
        + b'|event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    port, _ = _serve_once_per_connection(body)
    summary = _run_load(port, "messages", "/v1/messages")
    assert (summary["requests"], summary["events"], summary["errors"]) == (2, 4, 0)


def test_load_client_reads_chat_events_and_their_send_times() -> None:
    event = b'data: {"choices":[],"t":%d}\n\n' % (time.time_ns(),)
    port, _ = _serve_once_per_connection(event + b"|" + event + b"|data: [DONE]\n\n")
    summary = _run_load(port, "chat", "/chat/completions")
    assert (summary["requests"], summary["events"], summary["errors"]) == (2, 4, 0)
    latency = summary["latency_ms"]
    assert isinstance(latency, dict) and latency["max"] > 0
