"""1-Wire probes and thermal zones, read from a directory tree shaped like /sys.

The files and formats are the kernel's (``w1_therm``'s ``w1_slave`` with its
CRC line, ``temperature``, a thermal zone's ``temp``), including what goes
wrong on a real bus: a CRC failure, the DS18B20's 85 °C power-on value, a
probe that vanishes and comes back.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from gateway.inputs import kernel
from gateway.inputs.kernel import (
    BadReading,
    hwmon_device,
    iio_device,
    read_hwmon,
    read_iio,
    read_onewire,
    read_thermal,
)
from tests.conftest import free_port, running, value_of, wait_until, write_config

PROBE = "28-0316a279cbff"


def w1_slave(millis: int, crc_ok: bool = True) -> str:
    """What ``cat w1_slave`` prints for a DS18B20."""
    raw = "72 01 4b 46 7f ff 0e 10 57"
    return f"{raw} : crc=57 {'YES' if crc_ok else 'NO'}\n{raw} t={millis}\n"


def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    probe = root / "bus" / "w1" / "devices" / PROBE
    probe.mkdir(parents=True)
    (probe / "w1_slave").write_text(w1_slave(-18125))
    zone = root / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("48312\n")
    return root


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (w1_slave(23125), 23.125),
        (w1_slave(-18125), -18.125),
        (w1_slave(0), 0.0),
    ],
)
def test_w1_slave_is_read_as_the_kernel_prints_it(
    tmp_path: Path, text: str, expected: float
) -> None:
    (tmp_path / "w1_slave").write_text(text)
    assert read_onewire(tmp_path) == expected


def test_the_temperature_file_of_newer_kernels_is_read_first(tmp_path: Path) -> None:
    (tmp_path / "temperature").write_text("21500\n")
    (tmp_path / "w1_slave").write_text(w1_slave(99000))
    assert read_onewire(tmp_path) == 21.5


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (w1_slave(23125, crc_ok=False), "CRC check failed"),
        (w1_slave(85000), "power-on value"),
        ("", "CRC check failed"),
        ("72 01 : crc=57 YES\n72 01 t=abc\n", "not a number"),
        ("72 01 : crc=57 YES\n72 01\n", "no t="),
    ],
)
def test_bad_reads_are_not_readings(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "w1_slave").write_text(text)
    with pytest.raises(BadReading, match=why):
        read_onewire(tmp_path)


def test_a_vanished_device_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="28-000000000000"):
        read_onewire(tmp_path / "28-000000000000")
    with pytest.raises(FileNotFoundError, match="thermal_zone9"):
        read_thermal(tmp_path / "thermal_zone9")


async def test_the_freezer_probe_and_the_cpu_temperature_reach_the_rules(tmp_path: Path) -> None:
    root = sysfs(tmp_path)
    iio_tree(root)
    config = write_config(
        tmp_path,
        f"""
        gateway: {{name: cold, state_dir: {tmp_path / "state"}, simulate: true, sysfs: {root}}}
        sensors:
          freezer: {{onewire: {PROBE}, every: 1s}}
          cpu_temp: {{thermal: thermal_zone0, every: 100ms}}
          hall_humidity: {{iio: bme280, channel: humidityrelative, every: 1s}}
        webhooks:
          phone: {{url: "http://127.0.0.1:9/"}}
        server: {{listen: 127.0.0.1:{free_port()}}}
        rules:
          - id: freezer_warm
            when: {{sensor: freezer, above: -10}}
            then: [{{webhook: phone, event: freezer.warm, data: {{t: "{{{{ event.value }}}}"}}}}]
          - id: pi_hot
            when: {{sensor: cpu_temp, above: 70}}
            then: [{{log: "the Pi is at {{{{ event.value }}}} °C"}}]
        """,
    )
    probe = root / "bus" / "w1" / "devices" / PROBE
    async with running(config) as control:

        def value(name: str) -> float | None:
            got = control.sensor(name).value
            return None if got is None or isinstance(got, bool | str) else float(got)

        await wait_until(lambda: value_of(value("freezer")), lambda v: v == -18.125)
        await wait_until(lambda: value_of(value("cpu_temp")), lambda v: v == 48.312)
        await wait_until(lambda: value_of(value("hall_humidity")), lambda v: v == 45.123)
        status = await control.status()
        assert status.inputs["freezer"]["state"] == "connected"
        assert status.inputs["cpu_temp"]["type"] == "thermal"

        (probe / "w1_slave").write_text(w1_slave(85000))  # a probe that just reset
        await wait_until(
            lambda: value_of(control.live.connections.kernel["freezer"].malformed),
            lambda n: n >= 1,
        )
        assert value("freezer") == -18.125  # kept: 85 °C is not a reading

        (probe / "w1_slave").unlink()
        probe.rmdir()  # unplugged
        await wait_until(
            lambda: value_of(control.live.connections.kernel["freezer"].state),
            lambda s: s == "disconnected",
        )
        gone = control.sensor("freezer")  # at once, not when its value gets old
        assert (gone.state, gone.available, gone.value) == ("unavailable", False, None)

        probe.mkdir()
        (probe / "w1_slave").write_text(w1_slave(-5250))  # back, and the freezer is warm
        await wait_until(lambda: value_of(value("freezer")), lambda v: v == -5.25)
        assert control.sensor("freezer").available
        [message] = await control.outbox.messages(None, None, 10)
        assert message["event"] == "freezer.warm"
        assert control.live.connections.kernel["freezer"].reconnects == 1
        metrics = await control.metrics()
        assert 'gateway_input_readings_total{input="freezer"} 2' in metrics
        assert 'gateway_input_malformed_total{input="freezer"} 1' in metrics


def iio_tree(root: Path) -> Path:
    """A BME280 as iio:device0 (processed values) and an ADS1115 as iio:device1 (raw)."""
    devices = root / "bus" / "iio" / "devices"
    bme = devices / "iio:device0"
    bme.mkdir(parents=True)
    (bme / "name").write_text("bme280\n")
    (bme / "in_temp_input").write_text("21375\n")
    (bme / "in_humidityrelative_input").write_text("45123\n")
    (bme / "in_pressure_input").write_text("101.325\n")
    adc = devices / "iio:device1"
    adc.mkdir()
    (adc / "name").write_text("ads1115\n")
    (adc / "in_voltage0_raw").write_text("8000\n")
    (adc / "in_voltage0_scale").write_text("0.125000000\n")
    return devices


@pytest.mark.parametrize(
    ("device", "channel", "expected"),
    [
        ("bme280", "temp", 21.375),
        ("bme280", "humidityrelative", 45.123),
        ("bme280", "pressure", 1013.25),
        ("ads1115", "voltage0", 1.0),
        ("iio:device1", "voltage0", 1.0),
    ],
)
def test_iio_channels_are_read_in_peoples_units(
    tmp_path: Path, device: str, channel: str, expected: float
) -> None:
    devices = iio_tree(tmp_path)
    assert read_iio(iio_device(devices, device), channel) == pytest.approx(expected)


def test_raw_with_an_offset_is_scaled_as_the_kernel_documents(tmp_path: Path) -> None:
    (tmp_path / "in_temp_raw").write_text("1000\n")
    (tmp_path / "in_temp_offset").write_text("-500\n")
    (tmp_path / "in_temp_scale").write_text("10\n")
    assert read_iio(tmp_path, "temp") == pytest.approx(5.0)  # (1000 - 500) * 10 m°C


def test_a_dht_eio_is_tried_again_and_a_missing_device_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[float | OSError] = [OSError(errno.EIO, "EIO"), OSError(errno.EIO, "EIO"), 23000]

    def flaky(device: Path, channel: str) -> float:
        answer = answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer

    monkeypatch.setattr(kernel, "_iio_value", flaky)
    monkeypatch.setattr("gateway.inputs.kernel.time.sleep", lambda s: None)
    assert read_iio(tmp_path, "temp") == 23.0
    with pytest.raises(FileNotFoundError, match="no IIO device named 'dht11'"):
        iio_device(iio_tree(tmp_path / "sys"), "dht11")


def test_hwmon_channels_are_found_by_chip_name(tmp_path: Path) -> None:
    hwmon = tmp_path / "class" / "hwmon"
    for n, name in enumerate(("cpu_thermal", "sht3x")):
        chip = hwmon / f"hwmon{n}"
        chip.mkdir(parents=True)
        (chip / "name").write_text(f"{name}\n")
    (hwmon / "hwmon1" / "temp1_input").write_text("22150\n")
    (hwmon / "hwmon1" / "humidity1_input").write_text("51200\n")
    sht = hwmon_device(hwmon, "sht3x")
    assert read_hwmon(sht, "temp1") == pytest.approx(22.15)
    assert read_hwmon(sht, "humidity1") == pytest.approx(51.2)
    with pytest.raises(FileNotFoundError, match="no hwmon chip named 'lm75'"):
        hwmon_device(hwmon, "lm75")
