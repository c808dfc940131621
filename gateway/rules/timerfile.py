"""``timers.json``: the timers, queued runs and holds as saved, and reading them back.

Version 2 is ``{"version": 2, "timers", "queued", "holds"}``; the plain list
of timers written before it is read on upgrade (a queued run was a
``queued`` timer then). A damaged entry is logged and skipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gateway import safejson
from gateway.rules.timerkinds import (
    ACTUATOR_KINDS,
    Hold,
    QueuedRun,
    Step,
    Switch,
    Timer,
    TimerKind,
)

_LOG = logging.getLogger(__name__)

FILE_VERSION = 2


def dump(timer: Timer) -> dict[str, Any]:
    p = timer.payload
    data: dict[str, Any]
    if isinstance(p, Switch):
        data = {"state": p.state, "by": p.by}
        if p.was is not None:
            data["was"] = p.was
        if p.lasts is not None:
            data["lasts"] = p.lasts
        if p.hold is not None:
            data["hold"] = p.hold
    else:
        data = {"rule": p.rule, "index": p.index}
        if p.event is not None:
            data["event"] = p.event
    return {"kind": str(timer.kind), "key": timer.key, "due": timer.due, "data": data}


Loaded = tuple[dict[tuple[TimerKind, str], Timer], dict[str, QueuedRun], dict[str, Hold]]


def load(path: Path) -> Loaded:
    """The saved timers; a damaged file or entry is logged and skipped, never a crash.

    Reads this format (``{"version": 2, "timers", "queued"}``) and the list
    of timers written before it (where a queued run was a ``queued`` timer)."""
    timers: dict[tuple[TimerKind, str], Timer] = {}
    queued: dict[str, QueuedRun] = {}
    holds: dict[str, Hold] = {}
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return timers, queued, holds
    except (OSError, ValueError, RecursionError) as exc:
        _LOG.error("cannot read saved timers %s: %s; starting without them", path, exc)
        return timers, queued, holds
    if isinstance(raw, dict) and isinstance(raw.get("timers"), list):
        entries, waiting = raw["timers"], raw.get("queued", [])
    elif isinstance(raw, list):  # the format before version 2
        entries, waiting = raw, []
    else:
        _LOG.error(
            "saved timers %s: expected timers, found a JSON %s; starting without them",
            path,
            type(raw).__name__,
        )
        return timers, queued, holds
    for index, item in enumerate([*entries, *(waiting if isinstance(waiting, list) else [])]):
        entry = _entry(item)
        if entry is None:
            _LOG.error(
                "saved timers %s: entry %d is not a timer, skipped: %.200r", path, index, item
            )
        elif isinstance(entry, QueuedRun):
            queued[entry.id] = entry
        else:
            timers[entry.slot] = entry
    for item in raw.get("holds", []) if isinstance(raw, dict) else []:
        hold = _hold(item)
        if hold is None:
            _LOG.error("saved timers %s: a hold is damaged, skipped: %.200r", path, item)
        else:
            holds[hold.actuator] = hold
    return timers, queued, holds


def _hold(item: Any) -> Hold | None:
    if not isinstance(item, dict) or set(item) != {"actuator", "sensor", "delay", "back", "by"}:
        return None
    actuator, sensor, delay, back, by = (
        item[k] for k in ("actuator", "sensor", "delay", "back", "by")
    )
    if not (isinstance(actuator, str) and isinstance(sensor, str) and isinstance(by, str)):
        return None
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        return None
    if not isinstance(back, bool | int | float) or not safejson.finite(float(delay)):
        return None
    return Hold(actuator, sensor, float(delay), _state(back), by)


def _entry(item: Any) -> Timer | QueuedRun | None:
    """One saved entry, if every field has its type."""
    if not isinstance(item, dict):
        return None
    if set(item) == {"id", "rule", "event"}:
        run, rule, event = item["id"], item["rule"], item["event"]
        if isinstance(run, str) and isinstance(rule, str) and isinstance(event, dict):
            return QueuedRun(run, rule, event)
        return None
    if set(item) - {"kind", "key", "due", "data", "durable"}:
        return None
    kind, key, due = item.get("kind"), item.get("key"), item.get("due")
    data, durable = item.get("data", {}), item.get("durable", True)
    if not (isinstance(kind, str) and isinstance(key, str) and isinstance(data, dict)):
        return None
    if isinstance(due, bool) or not isinstance(due, int | float) or durable is not True:
        return None
    if not safejson.finite(float(due)):
        return None
    if kind == "queued":  # before version 2: a run waiting in a queue, as a timer
        rule, event = data.get("rule"), data.get("event")
        if isinstance(rule, str) and isinstance(event, dict):
            return QueuedRun(key, rule, event)
        return None
    if kind not in TimerKind.__members__.values():
        return None
    payload = _payload(TimerKind(kind), key, data)
    return None if payload is None else Timer(TimerKind(kind), key, float(due), payload)


def _payload(kind: TimerKind, key: str, data: dict[str, Any]) -> Switch | Step | None:
    if kind in ACTUATOR_KINDS:
        state, by, was = data.get("state", False), data.get("by", ""), data.get("was")
        if not isinstance(state, bool | float | int) or not isinstance(by, str):
            return None
        if was is not None and not isinstance(was, bool | float | int):
            return None
        lasts, hold = data.get("lasts"), data.get("hold")
        if lasts is not None and (isinstance(lasts, bool) or not isinstance(lasts, float | int)):
            return None
        if hold is not None and not isinstance(hold, str):
            return None
        was_state = None if was is None else _state(was)
        return Switch(_state(state), by, was_state, None if lasts is None else float(lasts), hold)
    rule, event = data.get("rule"), data.get("event")
    index = data.get("index", data.get("trigger"))
    if index is None and kind is TimerKind.FOR:  # before version 2: the index in the key
        number = key.rpartition("#")[2]
        index = int(number) if number.isdigit() else None
    elif index is None and kind is TimerKind.COOLDOWN:
        index = 0
    if not isinstance(rule, str) or isinstance(index, bool) or not isinstance(index, int):
        return None
    if event is not None and not isinstance(event, dict):
        return None
    if kind in (TimerKind.FOR, TimerKind.RUN) and event is None:
        return None
    return Step(rule, index, event)


def _state(value: bool | float | int) -> bool | float:
    return value if isinstance(value, bool) else float(value)
