"""The README's API examples, run as written against the daemon.

The curl lines of "HTTP API", the Python and shell hook signing examples,
and the schema example's answer: only the port, the secrets and a real
message id are put in. Every path of the OpenAPI document must have an
example.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.api.openapi import openapi_document
from gateway.config import load_config
from tests.conftest import SECRET, TOKEN, Daemon, demo_like_config, free_port

pytestmark = pytest.mark.e2e

README = (Path(__file__).parents[2] / "README.md").read_text()
DOOR = "door-token-0123456789"


def block(language: str, containing: str) -> str:
    """The README's fenced ``language`` block that contains ``containing``."""
    for found in re.finditer(rf"```{language}\n(.*?)```", README, re.S):
        if containing in found.group(1):
            return found.group(1)
    raise AssertionError(f"no ```{language} block with {containing!r} in the README")


def readme_config(tmp_path: Path, port: int) -> Path:
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    hooks = (
        "  hooks:\n"
        f"    home_hub: {{verify: standard-webhooks, secret: {SECRET}}}\n"
        f"    door: {{verify: token, token: {DOOR}, header: X-Door-Token,\n"
        "           schema: {type: object, required: [door],\n"
        "                    properties: {door: {enum: [front, back]}, open: {type: boolean}}}}\n"
        "  tokens:\n"
    )
    text = (
        config.read_text()
        .replace("  tokens:\n", hooks)
        .replace("sensors:\n", "sensors:\n  freezer_temp: {kind: virtual}\n")
    )
    config.write_text(text)
    return config


async def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [*args, script], capture_output=True, text=True, timeout=60
    )


async def test_the_readme_api_examples_work_as_written(
    tmp_path: Path, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    config = readme_config(tmp_path, port)
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    here = f"127.0.0.1:{port}"

    # the curl line for every endpoint; -f: any 4xx or 5xx fails the script
    status, _ = await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    status, listed = await daemon.request("GET", "/api/v1/outbox/messages")
    msg_id = listed["messages"][0]["id"]
    curls = block("sh", 'T="Authorization: Bearer $TOKEN"')
    script = f"set -e\nTOKEN={TOKEN}\n"
    script += "curl() { command curl -fsS -o /dev/null -w '%{http_code}\\n' \"$@\"; }\n"
    script += curls.replace("localhost:8080", here).replace("msg_2xFq...", msg_id)
    done = await run(script, "bash", "-c")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200"] * len(re.findall(r"^curl ", curls, re.M))

    # signing a hook request from Python
    python = block("python", "urllib.request").replace('"whsec_..."', repr(SECRET))
    done = await run(python.replace("127.0.0.1:8080", here), sys.executable, "-c")
    assert (done.returncode, done.stdout.strip()) == (0, "202"), done.stderr

    # ... and from a shell
    shell = block("sh", "openssl dgst").replace("SECRET=whsec_...", f"SECRET={SECRET}")
    done = await run(shell.replace("localhost:8080", here), "bash", "-c")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r'\{"id": "msg_\d+"\}', done.stdout.strip()), done.stdout

    # the schema example's answer
    example = block("text", "hooks/door")
    command, answer = example.strip().split("\n")
    command = command.removeprefix("$ ").replace("localhost:8080", here)
    done = await run(f"DOOR={DOOR}; {command}", "bash", "-c")
    assert done.stdout.strip() == answer


def test_every_api_path_has_a_curl_example(tmp_path: Path) -> None:
    fenced = re.finditer(r"```(?:sh|python|text)\n(.*?)```", README, re.S)
    examples = "".join(m.group(1) for m in fenced)
    doc = openapi_document(load_config(readme_config(tmp_path, 8080)).config)
    for path in doc["paths"]:
        pattern = re.escape(path).replace(r"\{id\}", '(?:msg_[^/"\\s]+|[a-z_]+)')
        pattern = pattern.replace(r"\{name\}", "[a-z_]+")
        assert re.search(f":8080{pattern}", examples), f"no example for {path} in the README"
