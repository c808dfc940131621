"""Rules switched on or off at run time (the API, the dashboard), kept in
``rules.json`` in the state directory until the config changes that rule."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from gateway.config.rules import Rule
from gateway.files import write_atomic

_LOG = logging.getLogger(__name__)


def fingerprint(rule: Rule) -> str:
    """Changes whenever anything in the rule's config does."""
    return hashlib.sha256(repr(rule).encode()).hexdigest()[:16]


class RuleOverrides:
    """``{rule: {"enabled": bool, "config": fingerprint}}``, saved at each change."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._saved: dict[str, dict[str, object]] = {}
        if path is not None and path.exists():
            try:
                doc = json.loads(path.read_bytes())
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                self._saved = {k: v for k, v in doc.items() if isinstance(v, dict)}
            except (OSError, ValueError) as exc:
                _LOG.error("ignoring %s: %s (every rule as its config says)", path, exc)

    def disabled(self, rules: Iterable[Rule]) -> set[str]:
        """The rules off now: as the config says, unless switched since it last changed."""
        off = set()
        for rule in rules:
            saved = self._saved.get(rule.id)
            enabled = rule.enabled
            if saved is not None and saved.get("config") == fingerprint(rule):
                enabled = bool(saved.get("enabled"))
            if not enabled:
                off.add(rule.id)
        return off

    def set(self, rule: Rule, enabled: bool) -> None:
        if enabled == rule.enabled:
            self._saved.pop(rule.id, None)  # as the config says: nothing to keep
        else:
            self._saved[rule.id] = {"enabled": enabled, "config": fingerprint(rule)}
        if self.path is not None:
            try:
                write_atomic(self.path, json.dumps(self._saved, indent=1).encode())
            except OSError as exc:
                _LOG.error("cannot save %s: %s (the switch holds until a restart)", self.path, exc)
