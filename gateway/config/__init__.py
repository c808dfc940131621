"""Loading and checking the config: YAML with positions -> typed models.

``load_config`` either returns a valid :class:`GatewayConfig` or raises a
:class:`ConfigError` listing every problem as ``file:line:col: message``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.config.loader import Missing, SecretText, load_yaml, locate
from gateway.config.models import TAGGED_MODELS, GatewayConfig
from gateway.config.references import check_references
from gateway.errors import ConfigError, ConfigProblem

__all__ = ["ConfigError", "GatewayConfig", "LoadedConfig", "default_config_path", "load_config"]

DEFAULT_PATHS = ("/etc/edge-gateway/gateway.yaml", "config/gateway.yaml")


def default_config_path() -> str:
    """``$GATEWAY_CONFIG``, else the first of the default paths that exists."""
    env = os.environ.get("GATEWAY_CONFIG")
    if env:
        return env
    for candidate in DEFAULT_PATHS:
        if os.path.exists(candidate):
            return candidate
    return DEFAULT_PATHS[0]


@dataclass(frozen=True)
class LoadedConfig:
    """A valid config, with where it came from."""

    config: GatewayConfig
    path: str

    @property
    def state_dir(self) -> Path:
        state = Path(self.config.gateway.state_dir)
        if not state.is_absolute():
            state = Path(self.path).resolve().parent / state
        return state

    def summary(self) -> str:
        c = self.config
        return (
            f"{len(c.sensors)} sensors, {len(c.actuators)} actuators, "
            f"{len(c.rules)} rules, {len(c.webhooks)} webhooks"
        )


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Load, validate and cross-check a config file."""
    loaded = load_yaml(path)
    problems = list(loaded.problems)
    data = loaded.data
    if data is None and not problems:
        data = {}
    if isinstance(data, Missing) or (data is not None and not isinstance(data, dict)):
        if not problems:
            problems.append(ConfigProblem(loaded.file, 1, 1, "the config must be a mapping"))
        raise ConfigError(problems)
    if data is None:
        raise ConfigError(problems)
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        seen: set[tuple[int, int]] = set()
        for error in errors:
            problem = _problem_from(error, data, loaded.file)
            # a union reports one error per member at the same place: keep the first
            if problem is not None and (problem.line, problem.column) not in seen:
                seen.add((problem.line, problem.column))
                problems.append(problem)
        # the names the valid parts refer to are checked too: one run shows every mistake
        for loc, message in _references_of_the_rest(data, errors):
            problems.append(locate(data, loc, loaded.file).position.problem(message))
        raise ConfigError(_hide_secrets(problems, data)) from None
    for loc, message in check_references(config):
        located = locate(data, loc, loaded.file)
        problems.append(located.position.problem(message))
    if problems:
        raise ConfigError(_hide_secrets(problems, data))
    return LoadedConfig(config, os.fspath(path))


NAMED = ("sensors", "actuators", "webhooks", "serial")


def _references_of_the_rest(
    data: dict[str, Any], errors: list[ErrorDetails]
) -> list[tuple[tuple[int | str, ...], str]]:
    """Reference problems of the config without its invalid parts, at their places
    in the original, so that one run of ``gateway check`` shows every mistake.

    What is dropped: an unknown key; a sensor, actuator, webhook or port with
    an error; a rule's trigger, condition or action with an error (the rule,
    if that leaves it invalid). Problems that name a dropped entry are left
    out (its own error says what is wrong). An error elsewhere (a settings
    section): no good guess, no reference problems."""
    rest = copy.deepcopy(_plain(data))
    kept: dict[tuple[int | str, ...], list[int]] = {}  # list path -> original indexes
    dropped: set[str] = set()
    for _ in range(3):
        for error in errors:
            if not _drop(rest, tuple(error["loc"]), error["type"], kept, dropped):
                return []
        try:
            config = GatewayConfig.model_validate(rest)
            break
        except ValidationError as exc:
            errors = exc.errors(include_input=False)
    else:
        return []
    found = []
    for loc, message in check_references(config):
        if any(f"'{name}'" in message for name in dropped):
            continue
        found.append((_original(loc, kept), message))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _drop(
    rest: dict[str, Any],
    loc: tuple[int | str, ...],
    kind: str,
    kept: dict[tuple[int | str, ...], list[int]],
    dropped: set[str],
) -> bool:
    """Remove the part of ``rest`` an error is about; False if it is not one of ours."""
    if len(loc) >= 2 and loc[0] in NAMED and isinstance(rest.get(loc[0]), dict):
        rest[loc[0]].pop(loc[1], None)
        dropped.add(str(loc[1]))
        return True
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        if len(loc) >= 4 and loc[2] in ("when", "if", "then") and isinstance(loc[3], int):
            return _drop_item(rest, ("rules", loc[1], loc[2]), loc[3], kept)
        return _drop_item(rest, ("rules",), loc[1], kept)
    if kind == "extra_forbidden":
        parent: Any = rest
        for part in loc[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(loc[-1], None)
            return True
    return False


def _drop_item(
    rest: dict[str, Any],
    path: tuple[int | str, ...],
    index: int,
    kept: dict[tuple[int | str, ...], list[int]],
) -> bool:
    """Drop element ``index`` (in the current numbering) of the list at ``path``."""
    target: Any = rest
    for part in path:
        if isinstance(target, dict):
            target = target.get(part)
        elif isinstance(target, list) and isinstance(part, int) and part < len(target):
            target = target[part]
        else:
            return False
    if isinstance(target, dict) and len(path) == 3:  # a single trigger/condition/action
        owner = rest["rules"][path[1]]
        owner[path[2]] = []
        return True
    if not isinstance(target, list) or not 0 <= index < len(target):
        return False
    original = kept.setdefault(path, list(range(len(target))))
    del target[index]
    del original[index]
    return True


def _original(
    loc: tuple[int | str, ...], kept: dict[tuple[int | str, ...], list[int]]
) -> tuple[int | str, ...]:
    """A location in the pruned config as a location in the original."""
    out: list[int | str] = []
    for part in loc:
        indexes = kept.get(tuple(out))
        if isinstance(part, int) and indexes is not None and part < len(indexes):
            part = indexes[part]
        out.append(part)
    return tuple(out)


def _hide_secrets(problems: list[ConfigProblem], data: Any) -> list[ConfigProblem]:
    """Every message that quotes a ``!secret``/``!env`` value shows ``<secret>`` instead."""
    found = sorted(_secrets_in(data), key=len, reverse=True)
    if not found:
        return problems
    hidden = []
    for problem in problems:
        message = problem.message
        for secret in found:
            message = message.replace(repr(secret), "<secret>").replace(secret, "<secret>")
        hidden.append(dataclasses.replace(problem, message=message))
    return hidden


def _secrets_in(node: Any) -> set[str]:
    if isinstance(node, SecretText):
        return {str(node)} if node else set()
    if isinstance(node, dict):
        return {s for key, value in node.items() for s in _secrets_in(key) | _secrets_in(value)}
    if isinstance(node, list):
        return {s for item in node for s in _secrets_in(item)}
    return set()


_ALIASES = {"from_": "from", "is_": "is", "if_": "if", "for_": "for"}


def _problem_from(error: ErrorDetails, data: Any, file: str) -> ConfigProblem | None:
    loc = tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in error["loc"])
    located = locate(data, loc, file)
    if isinstance(located.node, Missing):
        return None  # already reported where the !secret or !include is
    kind = error["type"]
    where = located.dotted
    if kind == "extra_forbidden":
        key = loc[-1]
        message = f"unknown key {key!r}"
        hint = _suggest(str(key), loc, data)
        if hint:
            message += f" (did you mean {hint!r}?)"
        return located.key_position.problem(message)
    if kind == "missing":
        at = located.position if isinstance(located.node, dict) else located.key_position
        return at.problem(f"missing required key {loc[-1]!r} in {where or 'root'}")
    message = error["msg"]
    message = message.removeprefix("Value error, ")
    if message and message[0].isupper() and not message[:2].isupper():
        message = message[0].lower() + message[1:]
    return located.position.problem(f"{where}: {message}" if where else message)


def _suggest(key: str, loc: tuple[Any, ...], data: Any) -> str | None:
    known = _known_keys(loc[:-1], data)
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _known_keys(loc: tuple[Any, ...], data: Any) -> list[str]:
    """Key names allowed at ``loc``, found by walking the model classes."""
    current: list[type[BaseModel]] = [GatewayConfig]
    for part in loc:
        if len(current) > 1:  # a union: the next part may be the member's tag
            having = [m for m in current if _has_key(m, part)]
            if part in TAGGED_MODELS or having:
                current = [TAGGED_MODELS[part]] if part in TAGGED_MODELS else having
                continue
        fields = [m.model_fields[_field_name(m, part)] for m in current if _has_key(m, part)]
        if fields:
            current = [m for f in fields for m in _models_in(f.annotation)]
    return [f.alias or name for m in current for name, f in m.model_fields.items()]


def _has_key(model: type[BaseModel], key: Any) -> bool:
    return isinstance(key, str) and _field_name(model, key) in model.model_fields


def _field_name(model: type[BaseModel], key: str) -> str:
    for name, field in model.model_fields.items():
        if field.alias == key:
            return name
    return key


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]
