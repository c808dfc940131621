"""Rule traces: what happened each time a trigger of a rule matched.

The engine opens a :class:`Trace` when a trigger matches and writes what it
decided (the conditions and what they compared, a cooldown, the mode); the
runtime writes what each action did (:attr:`TraceStep.outcome`) and hands
the trace on to whoever keeps traces (:mod:`gateway.history`) and the event
stream. Plain data: a trace is saved as JSON and read back after a restart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Result = Literal[
    "running",  # the actions are being carried out
    "waiting",  # in a `delay`
    "queued",  # mode queued: waiting for the run before it
    "finished",
    "error",  # finished, but an action failed (see its step)
    "suppressed",  # a condition did not hold, or the rule is in its cooldown
    "ignored",  # mode single and a run is going, or max_runs reached
    "cancelled",  # mode restart: a newer trigger replaced this run
]


@dataclass(slots=True)
class TraceStep:
    """One action of a run and what came of it."""

    action: str  # "actuate hallway_light on for 120s"
    at: float
    outcome: str = ""  # "switched on", "queued as 01J...", "skipped: ..."
    ok: bool = True


@dataclass(slots=True, eq=False)  # one trace is one object: kept by identity
class Trace:
    """One trigger of one rule, from the match to the end of its run."""

    id: str  # the run's id (a suppressed trigger gets one too)
    rule: str
    trigger: str  # "freezer_temp=-4.5 (mqtt)", "hook hub msg_1 from 10.0.0.5", "every"
    started: float
    event: dict[str, Any] = field(default_factory=dict)
    result: str = "running"
    why: str = ""  # for suppressed, ignored, waiting, cancelled, error
    conditions: list[dict[str, Any]] = field(default_factory=list)  # condition, holds
    steps: list[TraceStep] = field(default_factory=list)
    ended: float | None = None
    who: str | None = None  # who asked, for a run from the API ("run now")
    resumed: bool = False  # continued after a restart: the steps before are in the saved trace

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else max(0.0, self.ended - self.started)

    def end(self, result: str, at: float, why: str = "") -> None:
        self.result, self.ended, self.why = result, at, why

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (the event summarized, each condition as its text)."""
        return {
            "id": self.id,
            "rule": self.rule,
            "trigger": self.trigger,
            "started": self.started,
            "event": event_summary(self.event),
            "result": self.result,
            "why": self.why,
            "conditions": [
                {"condition": str(c["condition"]), "holds": c["holds"]} for c in self.conditions
            ],
            "steps": [asdict(step) for step in self.steps],
            "ended": self.ended,
            "who": self.who,
            "resumed": self.resumed,
            "duration": self.duration,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Trace:
        steps = [TraceStep(**step) for step in doc.get("steps", [])]
        keys = {f for f in cls.__dataclass_fields__ if f != "steps"}
        return cls(**{k: v for k, v in doc.items() if k in keys}, steps=steps)


EVENT_KEYS = ("trigger", "sensor", "value", "previous", "topic", "hook", "id", "source", "time")
"""What a trace keeps of the event: enough to say what fired it, not whole payloads."""


def event_summary(event: dict[str, Any]) -> dict[str, Any]:
    """What a trace keeps of its event (a summary read back stays as it is)."""
    summary = {k: event[k] for k in EVENT_KEYS if k in event}
    if "payload" in event:
        text = str(event["payload"])
        summary["payload"] = text if len(text) <= 200 else text[:200] + "..."
    return summary
