"""Check this gateway's discovery payloads with Home Assistant's own schemas.

Not part of the test suite (Home Assistant pins its own aiohttp and is large):
run it with a Python that has ``homeassistant`` installed, for example

    python3 -m venv /tmp/havenv && /tmp/havenv/bin/pip install homeassistant==2024.3.3
    python3 tests/manual/check_discovery_with_home_assistant.py > /tmp/payloads.json
    /tmp/havenv/bin/python tests/manual/check_discovery_with_home_assistant.py /tmp/payloads.json

Without an argument it prints the payloads of ``config/gateway.example.yaml`` (run with
this project's Python); with one it validates them (run with Home Assistant's).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def dump() -> None:
    from pathlib import Path

    from gateway.config import load_config
    from gateway.hub.discovery import announcements
    from gateway.hub.plan import HubPlan

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "config" / "gateway.example.yaml").config
    json.dump(announcements(config, HubPlan.of(config)), sys.stdout, ensure_ascii=False, indent=1)


def validate(path: str) -> int:
    from homeassistant.components.mqtt import (  # type: ignore[import-not-found]
        binary_sensor,
        light,
        sensor,
        switch,
    )

    schemas: dict[str, Any] = {
        "binary_sensor": binary_sensor.DISCOVERY_SCHEMA,
        "sensor": sensor.DISCOVERY_SCHEMA,
        "switch": switch.DISCOVERY_SCHEMA,
        "light": light.DISCOVERY_SCHEMA,
    }
    with open(path, encoding="utf-8") as file:
        payloads: dict[str, dict[str, Any]] = json.load(file)
    failed = 0
    for topic, payload in payloads.items():
        component = topic.split("/")[1]
        try:
            validated = schemas[component](dict(payload))
        except Exception as exc:
            failed += 1
            print(f"FAIL {topic}: {exc}")
            continue
        dropped = set(payload) - set(validated)
        print(f"ok   {topic}" + (f" (ignored keys: {sorted(dropped)})" if dropped else ""))
    print(f"{len(payloads) - failed} valid, {failed} invalid")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(validate(sys.argv[1]))
    dump()
