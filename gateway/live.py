"""What one config builds (:class:`~gateway.control.Live`), and what decides
whether a reload must build the connections anew."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from gateway.config.connections import MqttSensor, SerialSensor
from gateway.config.kernel import KernelSensor
from gateway.config.models import GatewayConfig
from gateway.config.rules import MqttTrigger
from gateway.control import Live
from gateway.devices import Devices
from gateway.hub.hub import Hub
from gateway.hub.plan import HubPlan
from gateway.inputs.connections import Connections
from gateway.interfaces import Observer
from gateway.localtime import local_zone
from gateway.outbox.service import Outbox
from gateway.rules.runtime import Runtime
from gateway.rules.timers import TimerTable


def build_live(
    config: GatewayConfig,
    connections: Connections,
    *,
    simulate: bool,
    outbox: Outbox,
    timers: TimerTable,
    on_gpio: Callable[[str, bool], None],
    wake: Callable[[], None] | None = None,
    states: dict[str, bool | float] | None = None,
    observers: Sequence[Observer] = (),
) -> Live:
    """Devices and runtime for ``config`` over ``connections``; on an error nothing
    stays open. The daemon and the API tests build their parts with it."""
    loop = asyncio.get_running_loop()
    devices = Devices.open(config, simulate, connections, loop, on_gpio, states)
    hub = Hub(config, connections)
    runtime = Runtime(
        config,
        devices.outputs,
        outbox,
        timers,
        time.time,
        local_zone(config.gateway.timezone),
        connections,
        wake,
        observers=[hub, *observers],
    )
    runtime.known(devices.readings())
    hub.attach(runtime)
    if connections.mqtt is not None:
        connections.mqtt.hub = hub
    return Live(config, runtime, devices, connections, hub)


def link_settings(config: GatewayConfig) -> tuple[object, ...]:
    """Everything the MQTT, serial and polled kernel inputs are built from."""
    return (
        config.gateway.name,
        config.mqtt,
        config.serial,
        config.gateway.sysfs,
        {
            n: s
            for n, s in config.sensors.items()
            if isinstance(s, MqttSensor | SerialSensor | KernelSensor)
        },
        sorted({t.mqtt for r in config.rules for t in r.when if isinstance(t, MqttTrigger)}),
        sorted(HubPlan.of(config).commands),  # subscribed to
    )
