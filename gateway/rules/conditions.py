"""A rule's ``if:`` conditions: whether they hold, and, for the log line of a trigger
they suppressed, which one did not and what it compared."""

from __future__ import annotations

import logging
from typing import Any, assert_never

from gateway.config.rules import (
    AnyCondition,
    Condition,
    NotCondition,
    Rule,
    SensorCondition,
    TemplateCondition,
    TimeCondition,
)
from gateway.rules.decisions import Snapshot
from gateway.rules.values import equal, in_range
from gateway.templates import TemplateError, as_text, render

_LOG = logging.getLogger(__name__)


def holds(condition: Condition, snap: Snapshot, context: dict[str, Any], rule: Rule) -> bool:
    match condition:
        case TimeCondition():
            return condition.time.contains(snap.now)
        case AnyCondition():
            return any(holds(c, snap, context, rule) for c in condition.any)
        case NotCondition():
            inner = condition.not_ if isinstance(condition.not_, list) else [condition.not_]
            return not any(holds(c, snap, context, rule) for c in inner)
        case TemplateCondition():
            try:
                return bool(render(condition.template, context))
            except TemplateError as exc:
                _LOG.error("rule %s: condition counted as false: %s", rule.id, exc)
                return False
        case SensorCondition():
            value = snap.sensors.get(condition.sensor)
            if value is None:
                return False
            if condition.is_ is not None and not equal(value, condition.is_):
                return False
            if condition.above is not None or condition.below is not None:
                return in_range(value, condition.above, condition.below)
            return True
        case _:
            assert_never(condition)


def checked(
    rule: Rule, snap: Snapshot, context: dict[str, Any]
) -> tuple[int | None, list[dict[str, Any]]]:
    """The index of the first condition that does not hold (None: they all do), and
    each condition looked at with what it compared, for the trace (the ones after
    the first that fails are not looked at). The text is made only if it is read."""
    seen: list[dict[str, Any]] = []
    for i, condition in enumerate(rule.if_):
        result = holds(condition, snap, context, rule)
        seen.append({"condition": Looked(condition, snap), "holds": result})
        if not result:
            return i, seen
    return None, seen


class Looked:
    """A condition and what it compared when it was looked at; ``str()`` says it."""

    __slots__ = ("condition", "now", "values")

    def __init__(self, condition: Condition, snap: Snapshot) -> None:
        self.condition, self.now = condition, snap.now
        self.values = {name: snap.sensors.get(name) for name in sensors_of(condition)}

    def __str__(self) -> str:
        values = {k: v for k, v in self.values.items() if v is not None}
        return shown(self.condition, Snapshot(values, {}, self.now))


def sensors_of(condition: Condition) -> list[str]:
    """The sensors a condition compares (the values its trace keeps)."""
    match condition:
        case SensorCondition():
            return [condition.sensor]
        case AnyCondition():
            return [name for c in condition.any for name in sensors_of(c)]
        case NotCondition():
            inner = condition.not_ if isinstance(condition.not_, list) else [condition.not_]
            return [name for c in inner for name in sensors_of(c)]
        case _:
            return []


def shown(condition: Condition, snap: Snapshot) -> str:
    """A condition and what it compared, for a person: ``freezer_temp above -10 (it is -18)``."""
    match condition:
        case TimeCondition():
            window = condition.time
            span = f"{window.after or ''}-{window.before or ''}".strip("-")
            days = f" on {','.join(window.weekdays)}" if window.weekdays else ""
            return f"time {span}{days} (it is {snap.now:%a %H:%M})"
        case SensorCondition():
            tests = [
                f"is {as_text(condition.is_)}" if condition.is_ is not None else "",
                f"above {condition.above:g}" if condition.above is not None else "",
                f"below {condition.below:g}" if condition.below is not None else "",
            ]
            value = snap.sensors.get(condition.sensor)
            now = "no reading yet" if value is None else f"it is {as_text(value)}"
            return f"{condition.sensor} {' and '.join(t for t in tests if t)} ({now})"
        case TemplateCondition():
            return f"template {condition.template!r}"
        case AnyCondition():
            return "any of: " + "; ".join(shown(c, snap) for c in condition.any)
        case NotCondition():
            inner = condition.not_ if isinstance(condition.not_, list) else [condition.not_]
            return "not: " + "; ".join(shown(c, snap) for c in inner)
        case _:
            assert_never(condition)
