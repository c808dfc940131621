"""JSON in and out at every edge: strict on the way in, always valid on the way out.

Python's ``json`` module accepts what is not JSON and emits what is not JSON:
``1e999`` parses to infinity, ``NaN`` is a literal, ``"\\ud800"`` becomes a
lone surrogate that no UTF-8 encoder accepts, and nesting a few thousand
levels deep raises ``RecursionError`` (not ``ValueError``). Every input path
(HTTP bodies, hook payloads, MQTT payloads, serial lines) parses with
:func:`loads`, which turns all of these into one :class:`JsonError`; every
body the gateway stores or sends is made by :func:`dumps`, which cannot fail.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway.errors import GatewayError

MAX_DEPTH = 64
"""Deeper documents are refused: no sensor, hook or device needs more."""

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonError(GatewayError, ValueError):
    """The text is not strict JSON (or is nested deeper than :data:`MAX_DEPTH`)."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonError(f"{text} is out of range for a number")
    return value


def _no_constant(name: str) -> Any:
    raise JsonError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)  # made once


def loads(raw: bytes | str) -> Any:
    """The document in ``raw``; :class:`JsonError` for anything that is not strict JSON.

    Refused: invalid UTF-8, ``NaN``/``Infinity``, numbers that overflow to
    infinity, lone UTF-16 surrogates (``"\\ud800"``), nesting deeper than
    :data:`MAX_DEPTH`. Never raises anything else, whatever the bytes.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        text = data.decode("utf-8")  # strict: json.loads(bytes) would let surrogates pass
        doc = _DECODER.decode(text)
    except JsonError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise JsonError(f"not JSON: {str(exc)[:120]}") from None
    if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(doc):
        raise JsonError("a string holds a lone UTF-16 surrogate (not valid Unicode)")
    return doc


def _depth(data: bytes) -> int:
    """How deep brackets nest, outside strings (a cheap scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _has_lone_surrogate(doc: Any) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


COMPACT = (",", ":")
SPACED = (", ", ": ")  # as json.dumps spaces it
_ENCODERS = {  # made once: json.dumps with options builds an encoder a call
    separators: json.JSONEncoder(
        separators=separators, ensure_ascii=False, allow_nan=False, default=str
    )
    for separators in (COMPACT, SPACED)
}


def dumps(doc: Any, separators: tuple[str, str] = COMPACT) -> bytes:
    """Compact UTF-8 JSON of ``doc`` (or spaced: ``SPACED``), always valid JSON and
    never an exception.

    Non-finite numbers become ``null`` and lone surrogates are written as
    ``\\uXXXX`` escapes; anything else that is not JSON is written as its text.
    """
    encoder = _ENCODERS.get(separators) or json.JSONEncoder(
        separators=separators, ensure_ascii=False, allow_nan=False, default=str
    )
    try:
        return encoder.encode(doc).encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError, TypeError):
        pass
    try:
        return json.dumps(
            _cleaned(doc, 0), separators=separators, ensure_ascii=True, allow_nan=False
        ).encode("ascii")
    except (ValueError, RecursionError, TypeError):
        return b"null"


def _cleaned(doc: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return None
    if isinstance(doc, float) and not math.isfinite(doc):
        return None
    if isinstance(doc, bool | int | float | str) or doc is None:
        return doc
    if isinstance(doc, dict):
        return {str(k): _cleaned(v, depth + 1) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_cleaned(v, depth + 1) for v in doc]
    return str(doc)


def finite(value: Any) -> bool:
    """False for a float that is NaN or infinite (which JSON cannot carry)."""
    return not (isinstance(value, float) and not math.isfinite(value))
