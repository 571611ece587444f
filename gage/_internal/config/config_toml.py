"""Config in TOML files: read and patch values by dotted key.

A config key is the dotted path to a value in nested tables
(`model.lr` for `[model] lr = 0.1`, `model.lr = 0.1` or
`model = { lr = 0.1 }`). Arrays and scalars are values; tables are
walked into. Dates and times are not config values.

Patching uses tomlkit, a well-kept style-preserving TOML library (it is
what Poetry edits pyproject.toml with): a value is replaced in place,
keeping its key, spacing, trailing comment and every other line. The
quoting of a replaced string is kept where the new value allows it
(a literal `'...'` string stays literal).
"""

from __future__ import annotations

from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit import items

from ..types import ConfigError
from .config_util import is_config_value, key_name

__all__ = ["patch", "read"]

_I64 = 2**63


def read(text: str) -> dict[str, Any]:
    """Config keys and values of a TOML document."""
    found: dict[str, Any] = {}
    _walk(_parse(text).unwrap(), (), found, {})
    return found


def patch(text: str, values: dict[str, Any]) -> str:
    """`text` with the values of `values` (names read by `read`) written."""
    doc = _parse(text)
    paths: dict[str, tuple[str, ...]] = {}
    _walk(doc.unwrap(), (), {}, paths)
    for name, val in values.items():
        try:
            path = paths[name]
        except KeyError:
            raise ConfigError(f"no config key '{name}'") from None
        _check_value(val, name)
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = _item(val, parent[path[-1]], name)
    return doc.as_string()


def _parse(text: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        raise ConfigError(f"invalid TOML (line {e.line}): {_reason(e)}") from None


def _reason(e: tomlkit.exceptions.ParseError) -> str:
    msg = str(e)
    return msg.split(" at line ", 1)[0]


def _walk(
    data: dict[str, Any],
    path: tuple[str, ...],
    found: dict[str, Any],
    paths: dict[str, tuple[str, ...]],
) -> None:
    for key, val in data.items():
        key_path = path + (key,)
        if isinstance(val, dict):
            _walk(val, key_path, found, paths)
        elif is_config_value(val):
            name = key_name(key_path)
            found[name] = val
            paths[name] = key_path


def _check_value(val: Any, name: str) -> None:
    if not _is_toml_value(val):
        raise ConfigError(
            f"cannot write {val!r} to '{name}': TOML has no null and "
            "integers must fit in 64 bits"
        )


def _is_toml_value(val: Any) -> bool:
    if val is None:
        return False
    if isinstance(val, int) and not isinstance(val, bool):
        return -_I64 <= val < _I64
    if isinstance(val, (list, tuple)):
        return all(_is_toml_value(x) for x in val)
    if isinstance(val, dict):
        return all(_is_toml_value(x) for x in val.values())
    return is_config_value(val)


def _item(val: Any, old: Any, name: str) -> items.Item:
    if isinstance(old, items.AoT):
        # An array of tables ([[name]]) stays one: anything else written
        # in its place could land in the table before it.
        if not _is_table_list(val):
            raise ConfigError(
                f"cannot write {val!r} to '{name}': an array of tables "
                f"([[{name}]]) takes a list of tables"
            )
        return _keep_trailing_ws(tomlkit.item(list(val)), old)
    if isinstance(val, str) and isinstance(old, items.String):
        if old.type in (items.StringType.SLL, items.StringType.MLL) and _literal_ok(
            val
        ):
            return tomlkit.string(val, literal=True)
    return _inline(val)


def _keep_trailing_ws(new: items.AoT, old: items.AoT) -> items.AoT:
    """Keep the blank lines that ended the old array of tables."""
    trail: list[str] = []
    for key, item in reversed(old.body[-1].value.body):
        if key is not None or not isinstance(item, items.Whitespace):
            break
        trail.insert(0, item.s)
    for ws in trail:
        new.body[-1].add(tomlkit.ws(ws))
    return new


def _is_table_list(val: Any) -> bool:
    return (
        isinstance(val, (list, tuple))
        and bool(val)
        and all(isinstance(x, dict) for x in val)
    )


def _inline(val: Any) -> items.Item:
    """`val` as an item that stays on its line (inline tables, arrays)."""
    if isinstance(val, dict):
        table = tomlkit.inline_table()
        for k, v in val.items():
            table.append(k, _inline(v))
        return table
    if isinstance(val, (list, tuple)):
        array = tomlkit.array()
        for x in val:
            array.append(_inline(x))
        return array
    return tomlkit.item(val)


def _literal_ok(s: str) -> bool:
    """True if `s` can be a single-line literal string ('...')."""
    return not any(c == "'" or (c < " " and c != "\t") or c == "\x7f" for c in s)
