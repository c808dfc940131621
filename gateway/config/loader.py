"""YAML loading that remembers where every value came from.

PyYAML forgets positions once it builds Python objects, and silently keeps
the last of two duplicate keys. This loader builds :class:`MarkedDict` and
:class:`MarkedList` containers that keep the ``file:line:col`` of each key
and item, reports duplicate keys, and understands three tags:

- ``!include FILE``: another YAML file, relative to the including one and
  inside the config directory;
- ``!secret NAME``: a value from ``secrets.yaml`` beside the root file;
- ``!env NAME [default]``: an environment variable.

Secret and environment values arrive as :class:`SecretText`, so error
messages know not to print them. Problems are collected, not raised one at a
time, so ``gateway check`` can list every mistake in one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gateway.errors import ConfigProblem

if TYPE_CHECKING:
    from yaml import SafeLoader as _BaseLoader
else:  # libyaml parses several times faster and keeps marks too
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SECRETS_FILE = "secrets.yaml"


@dataclass(frozen=True)
class Position:
    """Where a value stands in a config file (1-based line and column)."""

    file: str
    line: int
    column: int

    def problem(self, message: str) -> ConfigProblem:
        return ConfigProblem(self.file, self.line, self.column, message)


class MarkedDict(dict[Any, Any]):
    """A mapping that remembers the position of itself, its keys and values."""

    position: Position
    key_positions: dict[Any, Position]
    value_positions: dict[Any, Position]


class MarkedList(list[Any]):
    """A sequence that remembers the position of itself and of each item."""

    position: Position
    item_positions: list[Position]


class SecretText(str):
    """A string that came from ``!secret`` or ``!env``: never shown in output."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<secret>'"


class Missing:
    """Stands in for a ``!secret``/``!env``/``!include`` value that could not be had.

    The problem is already recorded; validation errors at this place are not
    reported a second time.
    """

    def __repr__(self) -> str:
        return "<missing>"


def shown(value: object) -> str:
    """``repr`` of a config value for an error message, hiding secrets."""
    if isinstance(value, SecretText):
        return "<secret>"
    return repr(value)


@dataclass
class _LoadContext:
    root_dir: Path
    display_dir: str
    problems: list[ConfigProblem] = field(default_factory=list)
    secrets: dict[str, Any] | None = None
    including: list[Path] = field(default_factory=list)


def _position(ctx_file: str, mark: yaml.Mark) -> Position:
    return Position(ctx_file, mark.line + 1, mark.column + 1)


class _MarkingLoader(_BaseLoader):
    display_name: str
    path: Path
    context: _LoadContext

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> MarkedDict:
        self.flatten_mapping(node)  # keeps `<<:` merge keys working
        mapping = MarkedDict()
        mapping.position = _position(self.display_name, node.start_mark)
        mapping.key_positions = {}
        mapping.value_positions = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            key_pos = _position(self.display_name, key_node.start_mark)
            try:
                hash(key)
            except TypeError:
                self.context.problems.append(key_pos.problem("a mapping key must be a plain value"))
                continue
            if key in mapping:
                first = mapping.key_positions[key]
                message = f"duplicate key {shown(key)} (first defined at line {first.line})"
                self.context.problems.append(key_pos.problem(message))
                continue
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.key_positions[key] = key_pos
            mapping.value_positions[key] = _position(self.display_name, value_node.start_mark)
        return mapping

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> MarkedList:
        items = MarkedList(self.construct_object(child, deep=True) for child in node.value)
        items.position = _position(self.display_name, node.start_mark)
        items.item_positions = [_position(self.display_name, c.start_mark) for c in node.value]
        return items

    def _problem(self, node: yaml.Node, message: str) -> Missing:
        self.context.problems.append(_position(self.display_name, node.start_mark).problem(message))
        return Missing()


def _construct_include(loader: _MarkingLoader, node: yaml.Node) -> Any:
    name = loader.construct_scalar(node)  # type: ignore[arg-type]
    if not isinstance(name, str) or not name.strip():
        return loader._problem(node, "!include needs a file name, e.g. !include rules.yaml")
    target = (loader.path.parent / name.strip()).resolve()
    ctx = loader.context
    if not target.is_relative_to(ctx.root_dir):
        return loader._problem(node, f"!include {name!r} points outside the config directory")
    if target in ctx.including:
        return loader._problem(node, f"!include {name!r} includes itself (a loop)")
    if not target.is_file():
        return loader._problem(node, f"!include {name!r}: no such file")
    display = os.path.join(ctx.display_dir, os.path.relpath(target, ctx.root_dir))
    return _load_file(target, display, ctx, at=node)


def _construct_secret(loader: _MarkingLoader, node: yaml.Node) -> Any:
    name = loader.construct_scalar(node)  # type: ignore[arg-type]
    ctx = loader.context
    if ctx.secrets is None:
        ctx.secrets = _load_secrets(ctx)
    if not isinstance(name, str) or not name.strip():
        return loader._problem(node, "!secret needs a name, e.g. !secret hub_token")
    value = ctx.secrets.get(name.strip())
    if value is None:
        return loader._problem(
            node, f"secret {name.strip()!r} is not defined in {SECRETS_FILE} beside the config"
        )
    return SecretText(value)


def _construct_env(loader: _MarkingLoader, node: yaml.Node) -> Any:
    spec = loader.construct_scalar(node)  # type: ignore[arg-type]
    parts = str(spec).split(maxsplit=1)
    if not parts:
        return loader._problem(node, "!env needs a variable name, e.g. !env HUB_TOKEN")
    value = os.environ.get(parts[0])
    if value is None:
        if len(parts) == 2:
            return parts[1]  # the default is written in the file: not a secret
        return loader._problem(
            node, f"environment variable {parts[0]!r} is not set (and no default is given)"
        )
    return SecretText(value)


def _construct_map(loader: _MarkingLoader, node: yaml.MappingNode) -> MarkedDict:
    # PyYAML's own constructor copies into a plain dict, losing the positions
    return loader.construct_mapping(node)


def _construct_seq(loader: _MarkingLoader, node: yaml.SequenceNode) -> MarkedList:
    return loader.construct_sequence(node)


_MarkingLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_MarkingLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_MarkingLoader.add_constructor("!include", _construct_include)
_MarkingLoader.add_constructor("!secret", _construct_secret)
_MarkingLoader.add_constructor("!env", _construct_env)


def _load_secrets(ctx: _LoadContext) -> dict[str, Any]:
    path = ctx.root_dir / SECRETS_FILE
    if not path.is_file():
        return {}
    display = os.path.join(ctx.display_dir, SECRETS_FILE)
    data = _load_file(path, display, ctx, at=None)
    if isinstance(data, dict):
        return {str(k): str(v) for k, v in data.items() if v is not None}
    if data is not None and not isinstance(data, Missing):
        ctx.problems.append(
            ConfigProblem(display, 1, 1, "secrets.yaml must be a mapping of names to values")
        )
    return {}


def _load_file(path: Path, display: str, ctx: _LoadContext, at: yaml.Node | None) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.problems.append(ConfigProblem(display, 1, 1, f"cannot read file: {exc}"))
        return Missing()
    loader = _MarkingLoader(text)
    loader.display_name = display
    loader.path = path
    loader.context = ctx
    ctx.including.append(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "invalid YAML"
        ctx.problems.append(ConfigProblem(display, line, col, f"YAML syntax error: {what}"))
        return Missing()
    except yaml.YAMLError as exc:
        ctx.problems.append(ConfigProblem(display, 1, 1, f"YAML error: {exc}"))
        return Missing()
    finally:
        ctx.including.pop()
        loader.dispose()


@dataclass
class LoadedYaml:
    """The raw document with positions, and the problems met while loading it."""

    data: Any
    problems: list[ConfigProblem]
    file: str


def load_yaml(path: str | os.PathLike[str]) -> LoadedYaml:
    """Load a root config file with its includes and secrets."""
    display = os.fspath(path)
    resolved = Path(path).resolve()
    ctx = _LoadContext(root_dir=resolved.parent, display_dir=os.path.dirname(display))
    if not resolved.is_file():
        problem = ConfigProblem(display, 1, 1, "config file not found")
        return LoadedYaml(None, [problem], display)
    data = _load_file(resolved, display, ctx, at=None)
    return LoadedYaml(data, ctx.problems, display)


@dataclass(frozen=True)
class Located:
    """The node a location reaches, where its value starts, and where its key stands."""

    node: Any
    position: Position
    key_position: Position
    path: tuple[int | str, ...]  # the parts of the location that are in the document

    @property
    def dotted(self) -> str:
        return ".".join(str(p) for p in self.path)


def locate(root: Any, loc: tuple[int | str, ...], file: str) -> Located:
    """Follow a pydantic error location ``loc`` into the marked document ``root``.

    Parts of ``loc`` that are not in the document are skipped: union tags
    (``actuate`` in ``rules.0.then.0.actuate.for``, which is also a key whose
    value is a plain name, followed by a sibling key), validator names, a
    missing key. The result is
    the deepest node that exists.
    """
    node = root
    position = getattr(root, "position", Position(file, 1, 1))
    key_position = position
    path: list[int | str] = []
    last = len(loc) - 1
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            value = node[part]
            if i < last and not isinstance(value, dict | list) and loc[i + 1] in node:
                continue  # a union tag that is also a key: the error is further in
            if isinstance(node, MarkedDict):
                position = node.value_positions[part]
                key_position = node.key_positions[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            value = node[part]
            if isinstance(node, MarkedList):
                position = key_position = node.item_positions[part]
        else:
            continue
        node = value
        path.append(part)
    return Located(node, position, key_position, tuple(path))
