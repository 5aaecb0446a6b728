"""
The real C{twistd} start with a file option that names no file to read (a
FIFO, a link to C{/dev/zero}, one far too large): one line on stderr naming
the file and what it is, exit status 1, no traceback, no wait, no token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted

from copilot_proxy.app import Options, config_from
from copilot_proxy.settings import ConfigError

from .._twistd import clean_env, free_port
from .._unfit_files import REFUSAL, bounded, failed_start, replace_with

COPILOT_TOKEN = "tid=unfit;exp=9999999999"
ALICE = "sk-alice-0123456789abcdef"
KINDS = sorted(REFUSAL)


@pytest.mark.parametrize(
    ("option", "kind", "what"),
    [
        *(("--client-keys-file", kind, "client keys file") for kind in KINDS),
        *(("--token-file", kind, "token file") for kind in KINDS),
        ("--github-token-file", "fifo", "token file"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_an_unfit_file_fails_the_start_with_one_line(
    tmp_path: Path, option: str, kind: str, what: str
) -> None:
    path = replace_with(tmp_path / "file", kind, ALICE if "keys" in option else COPILOT_TOKEN)
    run = await failed_start(
        [
            *(
                "-n",
                "--pidfile=",
                "copilot-proxy",
                "--port",
                f"tcp:{free_port()}:interface=127.0.0.1",
            ),
            *(option, str(path)),
        ],
        # COPILOT_TOKEN would win over --github-token-file.
        clean_env() if option == "--github-token-file" else clean_env(COPILOT_TOKEN=COPILOT_TOKEN),
    )
    assert run.ended.result == 1, run.text
    lines = run.error_lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"copilot-proxy: cannot read {what} {path}: {REFUSAL[kind]}")
    assert ALICE not in run.text and COPILOT_TOKEN not in run.text


@pytest.mark.parametrize("kind", KINDS)
def test_an_unfit_upstream_ca_is_refused_naming_it(tmp_path: Path, kind: str) -> None:
    path = replace_with(tmp_path / "ca.pem", kind, "-----BEGIN CERTIFICATE-----")
    options = Options()
    options.parseOptions(["--upstream-ca", str(path)])
    with bounded(), pytest.raises(ConfigError) as caught:
        config_from(options, {})
    assert str(caught.value).startswith(f"cannot read --upstream-ca {path}: {REFUSAL[kind]}")
