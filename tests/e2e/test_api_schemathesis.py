"""Schemathesis against the daemon's own OpenAPI document: generated from the
document, every request's answer must be documented, match its schema, and
never be a 5xx.

Every check of schemathesis runs except ``positive_data_acceptance``: a
schema-valid body may still be refused with 422 for a reason the shared
schema cannot say (``{"value": false}`` for a numeric sensor).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TOKEN, Daemon, demo_like_config, free_port

pytestmark = pytest.mark.e2e

DOOR_TOKEN = "door-token-0123456789"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "40"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261127")


def fuzz_config(tmp_path: Path, port: int) -> Path:
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    hooks = (
        "  rate_limit: {requests: 1000000, per: 1s}\n"
        "  failed_auth: {requests: 1000000, per: 1s}\n"
        "  hooks:\n"
        "    hub: {verify: standard-webhooks, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n"
        f"    door: {{verify: token, token: {DOOR_TOKEN}, header: X-Door-Token,\n"
        "           schema: {type: object, required: [door],\n"
        "                    properties: {door: {enum: [front, back]}}}}\n"
        "  tokens:\n"
    )
    text = (
        config.read_text()
        .replace("  tokens:\n", hooks)
        .replace("sensors:\n", "sensors:\n  freezer: {kind: virtual}\n")
        .replace(
            "rules:\n",
            "rules:\n  - {id: door, when: {hook: door},\n"
            "     then: [{log: 'door {{ event.payload.door }}'}]}\n",
        )
    )
    config.write_text(text)
    return config


async def test_every_answer_is_documented_and_none_is_a_5xx(
    tmp_path: Path, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    daemon = daemon_factory(fuzz_config(tmp_path, port), port)
    daemon.start()
    await daemon.wait_ready()
    # a queued webhook, so that the outbox has a message to show and retry
    status, _ = await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    assert status == 200
    run = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,  # the CLI of the installed package, wherever pip put scripts
            "-m",
            "schemathesis.cli",
            "run",
            f"{daemon.base}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--header",
            f"X-Door-Token: {DOOR_TOKEN}",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            SEED,
            "--workers",  # one: hypothesis compiles lambdas, which is not
            "1",  # thread-safe on Python 3.11 ("AST constructor recursion depth mismatch")
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
    log = daemon.log()
    assert "unexpected error" not in log, log[-4000:]
    assert "hook door:" in log  # the token hook was reached, its schema checked
