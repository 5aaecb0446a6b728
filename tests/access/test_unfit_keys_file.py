"""
A client keys file that is no file to read (a FIFO, a link to C{/dev/zero},
one far too large): refused with one clear reason, at start and on SIGHUP,
without a wait and without reading it whole; on SIGHUP the keys in use stay
and the proxy goes on answering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from copilot_proxy.access import AccessConfig, KeyFileError, KeysFromFile

from .._helpers import Upstream, fetch, until
from .._twistd import clean_env, free_port
from .._unfit_files import REFUSAL, CappedTwistd, bounded, replace_with

TOKEN = "fake-copilot-token"
ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"
KINDS = sorted(REFUSAL)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unfit_keys_file_is_refused_naming_it(tmp_path: Path, kind: str) -> None:
    path = replace_with(tmp_path / "keys", kind, f"{ALICE} alice")
    with bounded(), pytest.raises(KeyFileError) as caught:
        KeysFromFile(str(path))
    message = str(caught.value)
    assert message.startswith(f"cannot read client keys file {path}: {REFUSAL[kind]}")
    assert ALICE not in message


@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_reload_of_an_unfit_keys_file_keeps_the_keys_and_serves(
    make_proxy: Any,
    upstream: Upstream,
    log_events: list[dict[str, Any]],
    tmp_path: Path,
    kind: str,
) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice\n")
    proxy = make_proxy(upstream.url, access=AccessConfig(keys_file=str(path)))
    replace_with(path, kind, f"{BOB} bob")

    with bounded():
        proxy.service.reload_client_keys()

    response, _ = await fetch(proxy.url + "/models", headers={"x-api-key": ALICE})
    assert response.code == 200
    response, _ = await fetch(proxy.url + "/models", headers={"x-api-key": BOB})
    assert response.code == 401
    errors = [e for e in log_events if "client keys not reloaded" in e.get("log_format", "")]
    assert len(errors) == 1
    assert REFUSAL[kind] in str(errors[0]["why"])
    assert not any(ALICE in str(e) or BOB in str(e) for e in log_events)


@pytest_twisted.ensureDeferred
async def test_sighup_to_twistd_with_a_fifo_then_dev_zero_keeps_serving(
    upstream: Upstream, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{ALICE} alice\n")
    port = free_port()
    run = CappedTwistd.start(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
            *("--upstream", upstream.url, "--client-keys-file", str(keys)),
        ],
        clean_env(COPILOT_TOKEN=TOKEN),
    )
    url = f"http://127.0.0.1:{port}/models"
    try:
        await run.serving(url, headers={"x-api-key": ALICE})
        for kind in ("fifo", "dev-zero"):
            replace_with(keys, kind, "")
            run.signal("HUP")
            await until(lambda refusal=REFUSAL[kind]: refusal in run.text, seconds=10)
            response, _ = await fetch(url, headers={"x-api-key": ALICE})
            assert response.code == 200, run.text
    finally:
        try:
            code = await run.stop(10)
        finally:
            run.kill()
    assert code == 0, run.text
    assert run.text.count("client keys not reloaded, the 1 in use stay") == 2
    assert ALICE not in run.text
