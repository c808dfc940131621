"""The README runs as pasted, in order, against the demo config.

The code blocks of the quickstart walkthrough, "HTTP API" and "Inbound
webhooks" are taken from the README and run in one shell, in the order a
reader meets them, against a daemon on ``config/demo.yaml``. Only the port
(``8080`` -> a free one) and the state directory differ from what a reader
gets; every name, token and secret is the demo's own. ``curl`` fails on any
HTTP error, so a token the walkthrough gets wrong, a name the demo lacks or a
lockout after failed attempts fails this test. Every path of the OpenAPI
document must have an example.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gateway.api.openapi import openapi_document
from gateway.config import load_config
from tests.conftest import Daemon, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
DEMO = ROOT / "config" / "demo.yaml"


def section(title: str) -> str:
    """The README's text from ``title`` to the next heading of its level or above
    (a ``#`` line inside a code block is a comment, not a heading)."""
    level = len(title.split(" ")[0])
    lines = README[README.index(f"\n{title}\n") + 1 :].splitlines(keepends=True)
    taken, fenced = [lines[0]], False
    for line in lines[1:]:
        fenced ^= line.startswith("```")
        heading = re.match(r"(#+) ", line)
        if not fenced and heading and len(heading.group(1)) <= level:
            break
        taken.append(line)
    return "".join(taken)


RUN = ("## Quickstart", "## HTTP API", "### Inbound webhooks")
"""The sections whose examples run against the demo (the others install on a Pi)."""


def blocks(text: str, language: str) -> list[str]:
    """The fenced blocks of ``language`` ("" for a bare fence), in order."""
    found: list[str] = []
    current: list[str] = []
    lang: str | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if lang is None:
                lang, current = line[3:].strip(), []
            else:
                if lang == language:
                    found.append("".join(current))
                lang = None
        elif lang is not None:
            current.append(line)
    return found


def demo_copy(tmp_path: Path, port: int) -> Path:
    """config/demo.yaml with only its port and state directory changed."""
    text = DEMO.read_text()
    assert "listen: 127.0.0.1:8080" in text
    assert "state_dir: ../state/demo" in text
    text = text.replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}")
    text = text.replace("state_dir: ../state/demo", f"state_dir: {tmp_path / 'state'}")
    config = tmp_path / "demo.yaml"
    config.write_text(text)
    return config


def here(text: str, port: int) -> str:
    return text.replace("localhost:8080", f"127.0.0.1:{port}").replace(
        "127.0.0.1:8080", f"127.0.0.1:{port}"
    )


async def shell(script: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, ["bash", "-c", script], capture_output=True, text=True, timeout=120
    )


async def test_the_readme_runs_as_pasted_against_the_demo(
    tmp_path: Path, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    daemon = daemon_factory(demo_copy(tmp_path, port), port)
    daemon.start()
    await daemon.wait_ready()

    quickstart = blocks(section("## Quickstart"), "sh")
    assert len(quickstart) == 3, "install-and-run, install-and-test, the walkthrough"
    walkthrough = quickstart[2]
    api = blocks(section("## HTTP API"), "sh")
    hooks = section("### Inbound webhooks")
    [signer] = [b for b in blocks(hooks, "sh") if "openssl dgst" in b]
    steps = [walkthrough, *api, signer]
    script = "set -e\n"
    # -f: any HTTP error fails the script; -sS: quiet, but say why
    script += 'curl() { command curl -fsS "$@"; echo; }\n'
    script += "\n".join(here(step, port) for step in steps)
    done = await shell(script)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr}\n{daemon.log()[-2000:]}"
    assert "locked" not in daemon.log()
    assert "rejected" not in daemon.log()

    # signing a hook request from Python, pasted into an interpreter
    [python] = [b for b in blocks(hooks, "python") if "urllib.request" in b]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", here(python, port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "202"), done.stderr

    # the schema example: the command gives the answer shown
    [example] = [b for b in blocks(hooks, "text") if "hooks/door" in b]
    command, answer = example.strip().split("\n")
    done = await shell(here(command.removeprefix("$ "), port))
    assert done.stdout.strip() == answer

    # what the walkthrough and the hooks did is what the README says they do
    log = daemon.log()
    assert "hallway_light on by rule hallway_motion_light" in log
    assert "hallway_light on by rule hub_lights_the_hallway" in log


def test_the_demo_has_what_the_readme_names() -> None:
    demo = yaml.safe_load(DEMO.read_text())
    for name in ("freezer_temp", "hallway_motion"):
        assert f"/sensors/{name}" in README
        assert name in demo["sensors"]
    for hook in ("home_hub", "door"):
        assert f"/hooks/{hook}" in README
        assert hook in demo["server"]["hooks"]
    for title in RUN:
        code = "".join(b for lang in ("sh", "python", "text") for b in blocks(section(title), lang))
        assert "..." not in code, f"a placeholder a reader cannot paste, in {title}"


def test_every_api_path_has_a_curl_example() -> None:
    fenced = re.finditer(r"```(?:sh|python|text)\n(.*?)```", README, re.S)
    examples = "".join(m.group(1) for m in fenced)
    doc = openapi_document(load_config(DEMO).config)
    for path in doc["paths"]:
        pattern = re.escape(path).replace(r"\{id\}", r"(?:\$MSG|[a-z_]+)")
        pattern = pattern.replace(r"\{name\}", "[a-z_]+")
        assert re.search(f":8080{pattern}", examples), f"no example for {path} in the README"


def test_the_check_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """Both files of the example, written out, give exactly the output shown."""
    config = section("## Config")
    for text in blocks(config, "yaml"):
        first, _, body = text.partition("\n")
        if first in ("# broken.yaml", "# rules.yaml"):
            (tmp_path / first.removeprefix("# ")).write_text(body)
    [shown] = [b for b in blocks(config, "") if b.startswith("$ gateway check")]
    command, _, expected = shown.partition("\n")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *command.split()[2:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout + done.stderr == expected
