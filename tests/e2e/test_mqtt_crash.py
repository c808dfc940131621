"""No MQTT message lost across kill -9: a QoS 1 message is acknowledged to the
broker only after the webhook its rule queued is committed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import SECRET, Daemon, Mosquitto, Receiver, free_port, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MESSAGES = 600


def forwarding_config(tmp: Path, port: int, broker: int, url: str) -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{name: mqtt-crash, state_dir: {tmp / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {broker}, client_id: crash-gw}}
        webhooks:
          sink: {{url: {url}, secret: {SECRET}, retry: [50ms], concurrency: 8}}
        server: {{listen: 127.0.0.1:{port}}}
        rules:
          - id: forward
            when: {{mqtt: "bench/#"}}
            mode: parallel
            then:
              - {{webhook: sink, event: bench.msg, data: {{seq: "{{{{ event.payload.seq }}}}"}}}}
        """,
    )


@pytest.mark.parametrize("rate", [100, 1000])
async def test_no_message_is_lost_when_the_daemon_is_killed(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver, rate: int
) -> None:
    port = free_port()
    daemon = Daemon(
        forwarding_config(tmp_path, port, mosquitto.port, receiver.url), port, tmp_path / "d.log"
    )
    daemon.start()
    await daemon.wait_ready()
    await asyncio.sleep(0.5)  # subscribed: the persistent session exists from now on
    kills = {MESSAGES // 3, 2 * MESSAGES // 3}
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="publisher") as pub:
            for seq in range(MESSAGES):
                if seq in kills:
                    daemon.kill()  # SIGKILL in the middle of the stream
                    daemon.start()
                payload = json.dumps({"seq": seq}).encode()
                await pub.publish(f"bench/{seq % 4}", payload, qos=1)
                await asyncio.sleep(1 / rate)
        await daemon.wait_ready()
        seen: set[int] = set()
        deadline = asyncio.get_running_loop().time() + 60
        while len(seen) < MESSAGES and asyncio.get_running_loop().time() < deadline:
            seen = {int(r.json["data"]["seq"]) for r in receiver.received if r.status == 200}
            await asyncio.sleep(0.2)
        missing = sorted(set(range(MESSAGES)) - seen)
        assert not missing, f"{len(missing)} messages lost: {missing[:20]}\n{daemon.log()[-3000:]}"
    finally:
        daemon.kill()
