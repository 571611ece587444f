"""Where a key is in gage.toml: the line of an op's table, of a key in
it (plain, quoted, dotted or a sub-table), or of a top-level key, for
errors that name `gage.toml:LINE`. Best effort: None when not found."""

from __future__ import annotations

import re

__all__ = ["find", "key_line", "table_header"]

_TABLE_RE = re.compile(r"\s*\[")


def key_line(lines: list[str], op: str | None, key: str | None) -> int | None:
    """Line (from 1) of `key` in `[op]` (or of the op or top-level key)."""
    op_line = None
    if op is not None:
        op_line = find(lines, table_header(op), 0)
        if op_line is None:
            # Op defined with dotted keys or inline table at top level.
            op_line = find(lines, _key_line(op), 0, stop_at_table=True)
    if key is None:
        return op_line + 1 if op_line is not None else None
    start = op_line + 1 if op_line is not None else 0
    key_name = key.split(".", 1)[0]
    found = find(lines, _key_line(key_name), start, stop_at_table=True)
    if found is None and op is not None:
        found = find(lines, _dotted_table(op, key_name), 0)
        if found is not None and "." in key:
            sub = key.split(".", 1)[1]
            found = find(lines, _key_line(sub), found + 1, True) or found
    if found is not None:
        return found + 1
    return op_line + 1 if op_line is not None else None


def find(
    lines: list[str], pattern: re.Pattern[str], start: int, stop_at_table: bool = False
) -> int | None:
    """Index of the first line from `start` that `pattern` matches."""
    for i in range(start, len(lines)):
        line = lines[i]
        if stop_at_table and _TABLE_RE.match(line):
            return None
        if pattern.match(line):
            return i
    return None


def _key_pat(name: str) -> str:
    return rf"(?:{re.escape(name)}|\"{re.escape(name)}\"|'{re.escape(name)}')"


def table_header(op: str) -> re.Pattern[str]:
    """`[op]`, the name plain or quoted."""
    return re.compile(rf"\s*\[\s*{_key_pat(op)}\s*\]")


def _key_line(name: str) -> re.Pattern[str]:
    return re.compile(rf"\s*{_key_pat(name)}\s*[=.]")


def _dotted_table(op: str, key: str) -> re.Pattern[str]:
    return re.compile(rf"\s*\[\[?\s*{_key_pat(op)}\s*\.\s*{_key_pat(key)}\s*[\].]")
