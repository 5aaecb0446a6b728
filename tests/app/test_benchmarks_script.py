"""benchmarks/run stays runnable: it parses its options and reads profiles."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
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
    for option in ("--quick", "--profile", "--workers", "--python", "--scenarios"):
        assert option in out


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
