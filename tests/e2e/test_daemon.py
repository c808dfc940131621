"""The daemon as a subprocess, driven over HTTP like a user would."""

from __future__ import annotations

import asyncio
import datetime
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from gateway.signing import verify
from tests.conftest import SECRET, TOKEN, Daemon, Receiver, demo_like_config, edited, free_port

pytestmark = pytest.mark.e2e

MakeDaemon = Callable[[Path, int], Daemon]


async def test_motion_lights_the_hallway_and_the_signed_webhook_arrives(
    tmp_path: Path, receiver: Receiver, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    daemon = daemon_factory(demo_like_config(tmp_path, port, receiver.url), port)
    daemon.start()
    await daemon.wait_ready()
    status, _ = await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    assert status == 200
    await asyncio.sleep(0.1)
    status, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
    assert (status, light["state"]) == (200, "on")
    [hook] = await receiver.wait_for(1)
    assert verify([SECRET], hook.headers, hook.body, now=time.time()) == hook.headers["webhook-id"]
    assert hook.headers["webhook-id"].startswith("msg_")
    assert hook.headers["user-agent"].startswith("edge-gateway/")
    assert hook.json["type"] == "motion.detected"
    assert set(hook.json) == {"type", "timestamp", "data"}
    await asyncio.sleep(1.2)  # the rule's `for: 1s` has passed
    status, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
    assert light["state"] == "off"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0


async def test_a_webhook_queued_before_a_kill_9_arrives_after_the_restart(
    tmp_path: Path, receiver: Receiver, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, receiver.url, retry="[300ms]")
    await receiver.stop()  # the receiver is down
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    await asyncio.sleep(0.5)  # committed, and at least one attempt failed
    status, outbox = await daemon.request("GET", "/api/v1/outbox")
    assert outbox["pending"] == 1
    daemon.kill()  # SIGKILL: no clean shutdown
    await receiver.start()  # the receiver comes back
    daemon.start()
    await daemon.wait_ready()
    [hook] = await receiver.wait_for(1)
    assert hook.json["type"] == "motion.detected"
    assert verify([SECRET], hook.headers, hook.body, now=time.time())


async def test_sighup_with_a_broken_config_keeps_the_old_rules_working(
    tmp_path: Path, receiver: Receiver, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, receiver.url)
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    good = config.read_text()
    config.write_text(edited(good, ("to: on", "to: on, tpyo: 1")))
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("still running the old one")
    assert "unknown key 'tpyo'" in daemon.log()
    await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    await asyncio.sleep(0.1)
    status, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
    assert light["state"] == "on"
    await receiver.wait_for(1)


async def test_sighup_with_a_good_config_applies_the_new_rules(
    tmp_path: Path, receiver: Receiver, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, receiver.url)
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    config.write_text(
        edited(
            config.read_text(),
            ("event: motion.detected", "event: motion.seen"),
        )
    )
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("reloaded")
    await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    [hook] = await receiver.wait_for(1)
    assert hook.json["type"] == "motion.seen"


async def test_sigterm_exits_0_quickly_and_switches_actuators_off(
    tmp_path: Path, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    daemon = daemon_factory(demo_like_config(tmp_path, port, "http://127.0.0.1:9/"), port)
    daemon.start()
    await daemon.wait_ready()
    await daemon.request("POST", "/api/v1/actuators/hallway_light", {"state": "on"})
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert time.monotonic() - started < 5
    assert "stopped" in daemon.log()


async def test_a_daemon_with_an_invalid_config_exits_2_with_positions(
    tmp_path: Path, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(edited(config.read_text(), ("kind: relay", "kind: rellay")))
    daemon = daemon_factory(config, port)
    daemon.start()
    assert daemon.wait(20) == 2
    assert "gateway.yaml:8:35: actuators.hallway_light.kind: input should be" in daemon.log()


async def test_a_daemon_refuses_the_network_without_tokens(
    tmp_path: Path, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    text = edited(
        config.read_text(),
        (f"127.0.0.1:{port}", f"0.0.0.0:{port}"),
    )
    config.write_text(
        edited(
            text,
            (f"  tokens:\n    tester: {{token: {TOKEN}}}\n", ""),
        )
    )
    daemon = daemon_factory(config, port)
    daemon.start()
    assert daemon.wait(20) == 2
    assert "listening on 0.0.0.0 (not loopback) needs server.tokens" in daemon.log()


async def test_an_auto_off_keeps_its_deadline_across_a_kill_9(
    tmp_path: Path, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    status, light = await daemon.request(
        "POST", "/api/v1/actuators/hallway_light", {"state": "on", "for": "6s"}
    )
    deadline = time.time() + 6  # a restart takes 1.5-2.5 s here: room for it on a busy box
    assert light["state"] == "on"
    await asyncio.sleep(1.0)
    daemon.kill()  # power cut: the relay board keeps its state, the timer is on disk
    daemon.start()
    await daemon.wait_ready()
    # the saved timer says the light was on until the deadline: it comes back on,
    # and goes off at the original deadline, not 3 s after the restart
    status, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
    assert light["state"] == "on"
    until = datetime.datetime.fromisoformat(light["until"]).timestamp()
    assert abs(until - deadline) < 1.0
    while time.time() < deadline - 0.3:
        await asyncio.sleep(0.05)
    status, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
    assert light["state"] == "on"
    while time.time() < deadline + 0.5:
        await asyncio.sleep(0.05)
    status, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
    assert light["state"] == "off"
    assert light["until"] is None
    assert "restored on until" in daemon.log()


async def test_a_signed_hook_from_a_local_client_switches_the_relay_through_a_rule(
    tmp_path: Path, daemon_factory: MakeDaemon
) -> None:
    from gateway.signing import sign

    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(
        edited(
            config.read_text(),
            (
                "  tokens:\n",
                f"  hooks:\n    hub: {{verify: standard-webhooks, secret: {SECRET}}}\n  tokens:\n",
            ),
            (
                "rules:\n",
                "rules:\n  - {id: hub, when: {hook: hub}, then: "
                "[{actuate: hallway_light, state: on}]}\n",
            ),
        )
    )
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    body = b'{"door": "front"}'
    stamp = int(time.time())
    headers = {
        "webhook-id": "msg_e2e",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(SECRET, "msg_e2e", stamp, body),
        "content-type": "application/json",
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{daemon.base}/hooks/hub", data=body, headers=headers) as r:
            assert r.status == 202
        async with s.post(f"{daemon.base}/hooks/hub", data=body, headers=headers) as r:
            assert (r.status, (await r.json())["duplicate"]) == (200, True)
    status, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
    assert light["state"] == "on"
    assert "hook hub: msg_e2e accepted from 127.0.0.1" in daemon.log()
