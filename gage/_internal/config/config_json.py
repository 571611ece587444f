"""Config in JSON files: read and patch values by dotted key.

A config key is the dotted path to a value in nested objects
(`model.lr` for `{"model": {"lr": 0.1}}`). Arrays and scalars are
values; objects are walked into.

No JSON library keeps a file's formatting when it writes, so patching
is a span replacement: a small scanner records where each value starts
and ends, and only those characters are replaced. Indentation, key
order, spacing and everything else stay byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

from ..types import ConfigError
from .config_util import is_config_value, key_name

__all__ = ["patch", "read"]

_WS = " \t\n\r"

_decoder = json.JSONDecoder()


def read(text: str) -> dict[str, Any]:
    """Config keys and values of a JSON document."""
    return {name: val for name, (val, _span) in _values(text).items()}


def patch(text: str, values: dict[str, Any]) -> str:
    """`text` with the values of `values` (names read by `read`) written."""
    found = _values(text)
    edits = []
    for name, val in values.items():
        try:
            _old, (start, end) = found[name]
        except KeyError:
            raise ConfigError(f"no config key '{name}'") from None
        edits.append((start, end, _encode(val, name)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _values(text: str) -> dict[str, tuple[Any, tuple[int, int]]]:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(_error_msg(text, e)) from None
    found: dict[str, tuple[Any, tuple[int, int]]] = {}
    pos = _skip_ws(text, 0)
    if text.startswith("{", pos):
        _scan_object(text, pos, (), found)
    return found


def _error_msg(text: str, e: json.JSONDecodeError) -> str:
    """Gage's own message for a JSON syntax error: the parser's text and
    position change between Python versions (3.13 names a trailing comma
    where 3.11 expects a key after it), so only the kind of error is
    taken from it."""
    pos = e.pos
    what = next((v for k, v in _JSON_ERRORS.items() if e.msg.startswith(k)), None)
    comma = _trailing_comma(text, pos)
    if e.msg.startswith("Illegal trailing comma") or comma is not None:
        pos = pos if comma is None else comma
        what = "a comma with nothing after it (remove it)"
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"invalid JSON (line {line}, column {col}): {what or 'not valid here'}"


def _trailing_comma(text: str, pos: int) -> int | None:
    """Where the comma is when `pos` is at a `}` or `]` that follows one."""
    if text[pos : pos + 1] not in ("}", "]"):
        return None
    before = len(text[:pos].rstrip(_WS)) - 1
    return before if before >= 0 and text[before] == "," else None


_JSON_ERRORS = {
    "Expecting value": "expected a value",
    "Expecting ',' delimiter": "expected ',' between items",
    "Expecting ':' delimiter": "expected ':' after a key",
    "Expecting property name enclosed in double quotes": (
        "expected a key in double quotes"
    ),
    "Extra data": "text after the end of the JSON document",
    "Unterminated string starting at": "a string is not closed",
    "Invalid control character at": "a control character in a string (escape it)",
    "Invalid \\escape": "an invalid escape in a string (write \\\\ for \\)",
}


def _scan_object(
    text: str,
    pos: int,
    path: tuple[str, ...],
    found: dict[str, tuple[Any, tuple[int, int]]],
) -> int:
    """Record the values of the object at `pos`; return the end offset."""
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "}":
        return pos + 1
    while True:
        key, pos = _decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos)  # at ':'
        pos = _skip_ws(text, pos + 1)
        if text[pos] == "{":
            end = _scan_object(text, pos, path + (key,), found)
            val, _ = _decoder.raw_decode(text, pos)
            if not val:
                found.pop(key_name(path + (key,)), None)
        else:
            val, end = _decoder.raw_decode(text, pos)
            name = key_name(path + (key,))
            if is_config_value(val):
                found[name] = (val, (pos, end))
            else:
                found.pop(name, None)
        pos = _skip_ws(text, end)
        if text[pos] == "}":
            return pos + 1
        pos = _skip_ws(text, pos + 1)  # past ','


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _encode(val: Any, name: str) -> str:
    if not is_config_value(val):
        raise ConfigError(f"cannot write {val!r} to '{name}': not a JSON value")
    s = json.dumps(val, ensure_ascii=False)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = json.dumps(val)
    return s
