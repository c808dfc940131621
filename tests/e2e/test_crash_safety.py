"""At-least-once under fire: 1,000 webhooks, a flapping receiver, kill -9 at random moments."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import SECRET, TOKEN, Daemon, Receiver, free_port, write_config

pytestmark = pytest.mark.e2e

EVENTS = 1000


SHAPED = ", method: PUT, format: json, body: {data: {n: '{{ data.n }}'}, via: shaped}"


def counter_config(tmp: Path, port: int, url: str, shape: str = "") -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{name: crash-test, state_dir: {tmp / "state"}, simulate: true}}
        sensors:
          counter: {{kind: virtual, type: number}}
        webhooks:
          sink: {{url: {url}, secret: {SECRET}, retry: [50ms, 100ms], concurrency: 4{shape}}}
        server:
          listen: 127.0.0.1:{port}
          rate_limit: {{requests: 100000, per: 1s}}
          tokens: {{t: {{token: {TOKEN}}}}}
        rules:
          - id: every_reading
            when: {{sensor: counter}}
            then:
              - {{webhook: sink, event: counter.changed, data: {{n: "{{{{ event.value }}}}"}}}}
        """,
    )


async def flap(receiver: Receiver, stop: asyncio.Event, rng: random.Random) -> None:
    """Down, up answering 503, up answering 200: in random turns."""
    while not stop.is_set():
        mode = rng.choice(["down", "503", "ok", "ok"])
        if mode == "down":
            await receiver.stop()
        else:
            if receiver.runner is None:
                await receiver.start()
            receiver.responses = [(503, {"Retry-After": "0"})] * 50 if mode == "503" else []
        await asyncio.sleep(rng.uniform(0.1, 0.5))
    if receiver.runner is None:
        await receiver.start()
    receiver.responses = []


@pytest.mark.parametrize("shape", ["", SHAPED], ids=["standard", "templated"])
async def test_every_acknowledged_webhook_arrives_despite_kill_9_and_a_flapping_receiver(
    tmp_path: Path, receiver: Receiver, shape: str
) -> None:
    rng = random.Random(20261126)
    port = free_port()
    config = counter_config(tmp_path, port, receiver.url, shape)
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    kill_at = sorted(rng.sample(range(50, EVENTS - 50), 3))
    acknowledged: list[int] = []
    stop_flapping = asyncio.Event()
    flapper = asyncio.create_task(flap(receiver, stop_flapping, rng))
    try:
        daemon.start()
        await daemon.wait_ready()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
            for n in range(1, EVENTS + 1):
                if kill_at and n == kill_at[0]:
                    kill_at.pop(0)
                    daemon.kill()  # SIGKILL: no shutdown, whatever was in flight
                    daemon.start()
                    await daemon.wait_ready()
                url = f"{daemon.base}/api/v1/sensors/counter"
                async with s.post(url, json={"value": n}) as resp:
                    if resp.status == 200:
                        acknowledged.append(n)
        stop_flapping.set()
        await flapper
        assert len(acknowledged) == EVENTS
        arrived: dict[int, tuple[str, bytes]] = {}
        deadline = asyncio.get_running_loop().time() + 60
        while len(arrived) < EVENTS and asyncio.get_running_loop().time() < deadline:
            for hook in receiver.received:
                if hook.status != 200:
                    continue  # the receiver refused it: it does not count as delivered
                n = int(json.loads(hook.body)["data"]["n"])
                assert ("via" in json.loads(hook.body)) == bool(shape)
                first = arrived.setdefault(n, (hook.headers["webhook-id"], hook.body))
                assert first == (hook.headers["webhook-id"], hook.body)  # duplicates identical
            await asyncio.sleep(0.2)
        missing = sorted(set(acknowledged) - set(arrived))
        assert not missing, f"{len(missing)} acknowledged webhooks never arrived: {missing[:20]}"
        assert len({msg_id for msg_id, _ in arrived.values()}) == EVENTS
    finally:
        stop_flapping.set()
        await flapper
        daemon.kill()
