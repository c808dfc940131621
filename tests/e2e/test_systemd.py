"""systemd: sd_notify over a real datagram socket, the unit's hardening, the installer."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import load_config
from tests.conftest import Daemon, demo_like_config, edited, free_port

ROOT = Path(__file__).resolve().parents[2]
MakeDaemon = Callable[[Path, int], Daemon]


class NotifySocket:
    """systemd's side of $NOTIFY_SOCKET: records every datagram with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def fields(self) -> list[str]:
        return [m for _, m in self.messages]

    async def wait_for(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in m for m in self.fields()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} among {self.fields()}")
            await asyncio.sleep(0.02)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


async def test_the_daemon_speaks_sd_notify(
    tmp_path: Path, notify: NotifySocket, daemon_factory: MakeDaemon
) -> None:
    port = free_port()
    daemon = daemon_factory(demo_like_config(tmp_path, port, "http://127.0.0.1:9/"), port)
    daemon.start(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    await daemon.wait_ready()
    await notify.wait_for("READY=1")
    ready = next(m for m in notify.fields() if "READY=1" in m)
    assert "STATUS=1 sensors, 1 actuators, 1 rules" in ready
    await asyncio.sleep(1.0)
    beats = [t for t, m in notify.messages if m == "WATCHDOG=1"]
    assert len(beats) >= 4  # every 0.2 s: half of WATCHDOG_USEC
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert max(gaps) < 1.0  # 0.2 s apart; generous for a loaded CI machine
    daemon.signal(signal.SIGHUP)
    await notify.wait_for("RELOADING=1")
    reloading = next(i for i, m in enumerate(notify.fields()) if "RELOADING=1" in m)
    assert re.search(r"MONOTONIC_USEC=\d+", notify.fields()[reloading])
    await asyncio.sleep(0.3)
    assert any("READY=1" in m for m in notify.fields()[reloading + 1 :])
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert "STOPPING=1" in notify.fields()[-1]


async def test_no_watchdog_ping_while_the_event_loop_is_blocked(
    tmp_path: Path, notify: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    gw = Gateway(load_config(demo_like_config(tmp_path, free_port(), "http://127.0.0.1:9/")), True)
    task = asyncio.create_task(gw.run())
    await notify.wait_for("READY=1")
    await asyncio.sleep(0.3)
    blocked_at = time.monotonic()
    time.sleep(1.0)  # noqa: ASYNC251 - a stuck event loop: systemd must see the pings stop
    await asyncio.sleep(0.3)
    gw.stop()
    await task
    beats = [t for t, m in notify.messages if m == "WATCHDOG=1"]
    during = [t for t in beats if blocked_at + 0.05 < t < blocked_at + 0.95]
    assert during == []
    assert any(t > blocked_at + 1.0 for t in beats)  # and they resume afterwards


def test_without_notify_socket_nothing_is_sent() -> None:
    from gateway.systemd import Notifier

    notifier = Notifier(address="")
    assert not notifier.enabled
    notifier.ready("x")  # a no-op, no error


UNIT = ROOT / "systemd" / "edge-gateway.service"


def test_the_unit_is_hardened_to_an_exposure_of_at_most_2() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for edge-gateway.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0
    text = UNIT.read_text()
    for needed in (
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DeviceAllow=char-gpiochip",
        "SupplementaryGroups=gpio dialout",
        "WorkingDirectory=/run/edge-gateway",
        "RuntimeDirectory=edge-gateway",
    ):
        assert needed in text
    assert not re.search(r"^PrivateDevices=", text, re.M)  # hides /dev/gpiochip*
    assert not re.search(r"^ProcSubset=", text, re.M)  # breaks board detection


def run_script(name: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DESTDIR=str(root), SYSTEM_SITE="1", PIP_ARGS="--no-deps")
    return subprocess.run(
        ["bash", str(ROOT / "systemd" / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def lend_our_packages(root: Path) -> None:
    """The staged venv gets the gateway alone (``--no-deps``): its libraries come from the
    environment running the tests, the base interpreter's (``SYSTEM_SITE``) or a venv's."""
    [site_dir] = (root / "opt/edge-gateway/lib").glob("python3.*/site-packages")
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site_dir / "test-runner.pth").write_text("\n".join(ours) + "\n")


def test_the_scripts_are_shellcheck_clean() -> None:
    scripts = [str(p) for p in (ROOT / "systemd").glob("*.sh")]
    result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_install_upgrade_and_uninstall_into_a_staging_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = run_script("install.sh", root)
    assert first.returncode == 0, first.stderr
    lend_our_packages(root)
    assert "gateway check --config /etc/edge-gateway/gateway.yaml" in first.stdout
    conf = root / "etc/edge-gateway"
    assert oct((conf / "gateway.yaml").stat().st_mode & 0o777) == "0o640"
    assert oct((conf / "secrets.yaml").stat().st_mode & 0o777) == "0o640"
    assert oct(conf.stat().st_mode & 0o777) == "0o750"
    unit = root / "etc/systemd/system/edge-gateway.service"
    assert unit.read_text() == UNIT.read_text()
    assert os.readlink(root / "usr/local/bin/gateway") == "/opt/edge-gateway/bin/gateway"
    binary = root / "opt/edge-gateway/bin/gateway"
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("edge-gateway ")
    checked = subprocess.run(
        [str(binary), "check", "--config", str(conf / "gateway.yaml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr

    # the unit verifies against the binary it starts
    staged_unit = tmp_path / "edge-gateway.service"
    staged_unit.write_text(
        edited(
            unit.read_text(),
            ("/opt/edge-gateway", str(root / "opt/edge-gateway")),
        )
    )
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(staged_unit)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr

    # an upgrade keeps the user's config and state
    (conf / "gateway.yaml").write_text("gateway: {name: mine}\n")
    (root / "var/lib/edge-gateway/outbox.db").write_bytes(b"queued webhooks")
    again = run_script("install.sh", root)
    assert again.returncode == 0, again.stderr
    assert (conf / "gateway.yaml").read_text() == "gateway: {name: mine}\n"
    assert (root / "var/lib/edge-gateway/outbox.db").read_bytes() == b"queued webhooks"

    removed = run_script("uninstall.sh", root)
    assert removed.returncode == 0, removed.stderr
    assert not (root / "opt/edge-gateway").exists()
    assert not unit.exists()
    assert (conf / "gateway.yaml").exists()
    assert (root / "var/lib/edge-gateway/outbox.db").exists()
    purged = run_script("uninstall.sh", root, "--purge")
    assert purged.returncode == 0
    assert not conf.exists()
    assert shutil.which("bash")
