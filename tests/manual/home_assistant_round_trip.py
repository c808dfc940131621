"""A real Home Assistant against a real gateway on one mosquitto: the announcements
become entities, a switch service in Home Assistant switches the gateway's relay,
and a motion on the gateway reaches a Home Assistant automation.

Not in CI (Home Assistant is large and pins its own aiohttp). Run it with this
project's Python, pointing at a Python environment that has Home Assistant:

    python3 -m venv /tmp/havenv && /tmp/havenv/bin/pip install homeassistant==2024.3.3
    python3 tests/manual/home_assistant_round_trip.py /tmp/havenv/bin/hass
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import Daemon, Mosquitto, free_port, write_config
from tests.integration.test_hub import watching

HA_CONFIG = """
homeassistant:
  name: test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
mqtt:
automation:
  - alias: the phone switches the hallway light
    trigger: {platform: homeassistant, event: start}
    action:
      - wait_template: "{{ states('switch.pi_hallway_light') == 'off' }}"
        timeout: 60
      - service: switch.turn_on
        target: {entity_id: switch.pi_hallway_light}
  - alias: motion is seen
    trigger: {platform: state, entity_id: binary_sensor.pi_hallway_motion, to: "on"}
    action:
      - service: mqtt.publish
        data: {topic: ha/seen, payload: "motion {{ trigger.to_state.state }}"}
"""


def entries(port: int) -> str:
    entry = {
        "entry_id": "edgegatewaytest",
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": "127.0.0.1",
        "data": {"broker": "127.0.0.1", "port": port, "discovery": True},
        "options": {"discovery": True, "discovery_prefix": "homeassistant"},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    return json.dumps(
        {
            "version": 1,
            "minor_version": 1,
            "key": "core.config_entries",
            "data": {"entries": [entry]},
        }
    )


def start_hass(hass: str, config_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen([hass, "-c", str(config_dir)], stdout=log, stderr=subprocess.STDOUT)


async def main(hass: str) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="ha-round-trip-"))
    broker = Mosquitto(tmp)
    broker.start()
    port = free_port()
    config = write_config(
        tmp,
        f"""
        gateway: {{name: pi, state_dir: {tmp / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {broker.port}, publish_states: true, commands: true}}
        homeassistant: {{discovery: true}}
        sensors:
          hallway_motion: {{gpio: 17, kind: motion}}
          freezer_temp: {{kind: virtual, unit: "°C", device_class: temperature, initial: -18}}
        actuators:
          hallway_light: {{gpio: 27, kind: relay}}
        server: {{listen: 127.0.0.1:{port}}}
        """,
    )
    daemon = Daemon(config, port, tmp / "gateway.log")
    ha_dir = tmp / "ha"
    (ha_dir / ".storage").mkdir(parents=True)
    (ha_dir / "configuration.yaml").write_text(textwrap.dedent(HA_CONFIG))
    (ha_dir / ".storage" / "core.config_entries").write_text(entries(broker.port))
    ha = None
    try:
        daemon.start()
        await daemon.wait_ready()
        ha = start_hass(hass, ha_dir, tmp / "ha.log")
        async with watching(broker, "ha/#", "gateway/pi/#") as seen:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                _, light = await daemon.request("GET", "/api/v1/actuators/hallway_light")
                if light["state"] == "on":
                    break
                await asyncio.sleep(1)
            else:
                print("FAIL: Home Assistant did not switch the light; see", tmp)
                return 1
            print("ok   switch.turn_on in Home Assistant switched the gateway's relay")
            await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
            await seen.wait("ha/seen", "motion on", timeout=30)
            print("ok   a motion on the gateway fired a Home Assistant automation")
        audit = [line for line in daemon.log().splitlines() if "by mqtt from" in line]
        print("audit:", audit[-1].split("INFO")[-1].strip() if audit else "none")
        ha.terminate()  # it writes its entity registry on the way out
        ha.wait(60)
        registry = json.loads((ha_dir / ".storage" / "core.entity_registry").read_text())
        ours = sorted(e["entity_id"] for e in registry["data"]["entities"])
        print("entities:", ", ".join(ours))
        return 0
    finally:
        if ha is not None and ha.poll() is None:
            ha.terminate()
            ha.wait(60)
        daemon.kill()
        broker.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "hass")))
