"""The rules as the outside sees them: state, traces, enable/disable, run now.

A part of the control facade (``Control.rules``): the API, ``gateway trace``
and the dashboard read and act through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.config.rules import Rule
from gateway.errors import NotFound
from gateway.history.recorder import Recorder
from gateway.localtime import iso_utc
from gateway.outbox.service import Outbox
from gateway.rules.overrides import RuleOverrides
from gateway.rules.runtime import Runtime
from gateway.rules.traces import Trace

if TYPE_CHECKING:
    from gateway.control import Live

_LOG = logging.getLogger(__name__)


def trace_view(trace: Trace) -> dict[str, Any]:
    """A trace as the API answers it: times in ISO 8601."""
    doc = trace.to_json()
    doc.pop("resumed", None)
    doc["started"] = iso_utc(trace.started)
    doc["ended"] = iso_utc(trace.ended) if trace.ended is not None else None
    doc["steps"] = [{**step, "at": iso_utc(step["at"])} for step in doc["steps"]]
    return doc


class RuleControl:
    """Reads the engine and the recorder of the live config; switches rules on and off."""

    def __init__(
        self,
        live: Callable[[], Live],
        outbox: Outbox,
        recorder: Recorder,
        overrides: RuleOverrides,
    ) -> None:
        self._live = live
        self.outbox = outbox
        self.recorder = recorder
        self.overrides = overrides

    @property
    def runtime(self) -> Runtime:
        return self._live().runtime

    def _rule(self, rule_id: str) -> Rule:
        rule = self.runtime.engine.rules.get(rule_id)
        if rule is None:
            raise NotFound(f"no rule named {rule_id!r}")
        return rule

    def views(self) -> dict[str, dict[str, Any]]:
        return {rule_id: self.get(rule_id) for rule_id in self.runtime.engine.rules}

    def get(self, rule_id: str) -> dict[str, Any]:
        rule = self._rule(rule_id)
        engine = self.runtime.engine
        last = self.recorder.last(rule_id)
        triggered = engine.last_triggered.get(rule_id)
        if triggered is None:  # before this start: from the saved traces
            ran = next((t for t in self.recorder.rule_traces(rule_id) if t.steps), None)
            triggered = ran.started if ran is not None else None
        running, queued = engine.runs(rule_id)
        return {
            "id": rule_id,
            "description": rule.description,
            "enabled": rule_id not in engine.disabled,
            "mode": rule.mode,
            "last_triggered": iso_utc(triggered) if triggered is not None else None,
            "last_result": last.result if last is not None else None,
            "last_why": last.why if last is not None else None,
            "running": running,
            "queued": queued,
            "fired": engine.fired[rule_id],
            "suppressed": sum(
                engine.suppressed[(rule_id, why)] for why in ("condition", "cooldown")
            ),
        }

    def traces(self, rule_id: str) -> list[Trace]:
        """Newest first."""
        self._rule(rule_id)
        return self.recorder.rule_traces(rule_id)

    def enable(self, rule_id: str, enabled: bool, who: str) -> dict[str, Any]:
        """Switch a rule on or off, kept across restarts until its config changes."""
        rule = self._rule(rule_id)
        disabled = self.runtime.engine.disabled
        if enabled:
            disabled.discard(rule_id)
        else:
            disabled.add(rule_id)
        self.overrides.set(rule, enabled)
        _LOG.info("rule %s %s by %s", rule_id, "enabled" if enabled else "disabled", who)
        return {"id": rule_id, "enabled": enabled}

    async def run(self, rule_id: str, who: str) -> Trace | None:
        """Run the rule's actions now (its conditions and cooldown are not looked at);
        returns once the webhooks they queued are committed, with the trace."""
        self._rule(rule_id)
        mark = self.outbox.mark()
        started = time.time()
        _LOG.info("rule %s: run now by %s", rule_id, who)
        self.runtime.run_now(rule_id, who)
        await self.outbox.flushed(since=mark)
        last = self.recorder.last(rule_id)
        return last if last is not None and last.started >= started - 1 else None
