"""
The wheel carries our twistd drop-in (and only ours), and twistd finds the
plugin from an installed wheel as well as from an editable install.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("copilot_proxy-*.whl")
    return wheel


def test_wheel_carries_only_our_plugin_and_finds_it(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    twisted_files = [n for n in names if n.startswith("twisted/")]
    assert twisted_files == ["twisted/plugins/copilot_proxy_plugin.py"]
    assert "copilot_proxy/py.typed" in names
    # The status page's files are package data, served from the wheel.
    for page in ("index.html", "status.css", "status.js"):
        assert f"copilot_proxy/server/page/{page}" in names

    # Install the wheel into a bare directory and look for the plugin from a
    # Python whose sys.path has that directory but not the project checkout.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = f"""
import sys
sys.path = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
sys.path.insert(0, {str(target)!r})
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
import copilot_proxy
assert copilot_proxy.__file__.startswith({str(target)!r}), copilot_proxy.__file__
print(sorted(p.tapname for p in getPlugins(IServiceMaker)))
from copilot_proxy.server._status_page import PAGE_FILES, page_file
for name, _ in PAGE_FILES.values():
    assert page_file(name), name
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert "'copilot-proxy'" in result.stdout


def test_editable_install_is_found_by_twistd() -> None:
    # The test environment itself is an editable install (README, .ci/run).
    twistd = Path(sys.executable).with_name("twistd")
    result = subprocess.run(
        [str(twistd), "--help"], capture_output=True, text=True, cwd="/", check=True
    )
    assert "copilot-proxy" in result.stdout


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    # Packages are listed by hand (pyproject.toml): a new layer left out would
    # install a wheel that cannot import.
    root = Path(__file__).resolve().parents[2]
    listed = (root / "pyproject.toml").read_text()
    for init in (root / "copilot_proxy").glob("*/__init__.py"):
        assert f'"copilot_proxy.{init.parent.name}"' in listed, init.parent.name
