"""Jinja2 templates in rules, rendered in a sandbox.

Strings in ``data``, ``log`` and ``payload`` may contain ``{{ ... }}``. They
are parsed once at load time (a syntax error is a config error) and
rendered per event with ``StrictUndefined``: a misspelt variable is an
error, never a silent empty string. A string that is one whole expression
(``"{{ event.value }}"``) keeps the value's type, so a temperature arrives
in the webhook as a number, not as text; anything else renders as text, where
on/off values read ``on`` and ``off`` (as in the API), never ``True``/``False``.
The type comes from the template, never from the data: Jinja2's own native
mode re-parses rendered text with ``literal_eval``, so a text value
``"True"`` or ``"1e999,2"`` would come out as a bool or a list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from itertools import chain, islice
from typing import Any

import jinja2
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.sandbox import SandboxedEnvironment


def as_text(value: Any) -> str:
    """A value as text reads: on/off (the words of the API) for a bool, never True/False."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _concat(values: Iterable[Any]) -> Any:
    """One rendered value keeps its type; several are joined as text. No re-parsing."""
    head = list(islice(values, 2))
    if not head:
        return None
    if len(head) == 1:
        return head[0]
    return "".join(as_text(v) for v in chain(head, values))


class _NativeSandbox(SandboxedEnvironment):
    code_generator_class = NativeCodeGenerator
    concat = staticmethod(_concat)


_ENV = _NativeSandbox(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


class TemplateError(ValueError):
    """A template could not be parsed or rendered."""


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


@lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None


def check_template_tree(value: Any) -> None:
    """Parse every template string inside ``value``; :class:`TemplateError` on a bad one."""
    if isinstance(value, str):
        if is_template(value):
            _compile(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            check_template_tree(item)
    elif isinstance(value, list | tuple):
        for item in value:
            check_template_tree(item)


_LOOKUP = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")
Plan = tuple[str | tuple[str, ...], ...]


@lru_cache(maxsize=4096)
def _plan(source: str) -> Plan | None:
    """A template made only of text and ``{{ a.b.c }}`` lookups, as its parts (a str
    is text, a tuple a lookup path); None for anything else (filters, tests, tags)."""
    parts: list[str | tuple[str, ...]] = []
    end = 0
    for match in _LOOKUP.finditer(source):
        parts.append(source[end : match.start()])
        parts.append(tuple(match.group(1).split(".")))
        end = match.end()
    parts.append(source[end:])
    texts = [p for p in parts if isinstance(p, str)]
    if any("{{" in t or "{%" in t or "{#" in t or "}}" in t for t in texts):
        return None
    return tuple(p for p in parts if p != "")


_MISSING = object()
_DICT_ATTRS = frozenset(dir(dict))


def _is_mapping(value: object) -> bool:
    """``isinstance(value, Mapping)``, a dict first: the ABC's check is a Python call."""
    return type(value) is dict or isinstance(value, Mapping)


def _fast(plan: Plan, context: Mapping[str, Any]) -> Any:
    """Render a plan of lookups through mappings only (what Jinja would give), or
    _MISSING when a step is not a mapping key: Jinja then says what is wrong."""
    values: list[Any] = []
    for part in plan:
        if isinstance(part, str):
            values.append(part)
            continue
        value: Any = context
        for key in part:
            if not _is_mapping(value) or key not in value or key in _DICT_ATTRS:
                return _MISSING  # (Jinja would find dict.items before a key "items")
            value = value[key]
        values.append(value)
    if len(values) == 1:
        return values[0]  # one whole expression keeps its type
    return "".join(as_text(v) for v in values)


def render(source: str, context: Mapping[str, Any]) -> Any:
    """Render one template string; plain strings come back unchanged.

    Text with ``{{ a.b }}`` lookups only (most of what rules hold) is rendered
    here, five times faster than through Jinja's context machinery, with the
    same result; anything else, and any lookup that misses, goes to Jinja."""
    if not is_template(source):
        return source
    plan = _plan(source)
    if plan is not None and (fast := _fast(plan, context)) is not _MISSING:
        return fast
    try:
        result = _compile(source).render(context)
        if isinstance(result, jinja2.Undefined):
            str(result)  # a lone undefined value is returned, not rendered: make it raise
        return result
    except TemplateError:
        raise
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"undefined in template {source!r}: {exc.message}") from None
    except Exception as exc:  # a sandbox violation, a type error in user code, ...
        raise TemplateError(f"template {source!r} failed: {exc}") from None


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """Render a template whose result is text (a log line, a topic, a serial line)."""
    return as_text(render(source, context))


def render_tree(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string inside nested dicts and lists."""
    if isinstance(value, str):
        return render(value, context)
    if _is_mapping(value):
        return {key: render_tree(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_tree(item, context) for item in value]
    return value
