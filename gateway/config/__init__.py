"""Loading and checking the config: YAML with positions -> typed models.

``load_config`` either returns a valid :class:`GatewayConfig` or raises a
:class:`ConfigError` listing every problem as ``file:line:col: message``.
"""

from __future__ import annotations

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
        seen: set[tuple[int, int]] = set()
        for error in exc.errors(include_input=False):
            problem = _problem_from(error, data, loaded.file)
            # a union reports one error per member at the same place: keep the first
            if problem is not None and (problem.line, problem.column) not in seen:
                seen.add((problem.line, problem.column))
                problems.append(problem)
        raise ConfigError(_hide_secrets(problems, data)) from None
    for loc, message in check_references(config):
        located = locate(data, loc, loaded.file)
        problems.append(located.position.problem(message))
    if problems:
        raise ConfigError(_hide_secrets(problems, data))
    return LoadedConfig(config, os.fspath(path))


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
