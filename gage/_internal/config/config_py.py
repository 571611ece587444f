"""Config in Python modules: read and patch module-level literals.

A config key is a name assigned once per statement at module level
(`lr = 0.1`, `epochs: int = 5`) to a literal: int, float, str, bool,
None, or a list, tuple or dict (with str keys) of literals. Values are
read with `ast.literal_eval` and written as literal source text: a
module is never imported, evaluated or executed.

Patching replaces only the source span of the value, so everything
else in the file (comments, formatting, other statements) is kept byte
for byte. When a name is assigned more than once, the last assignment
is the one Python uses, so it is the one read and patched.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from ..types import ConfigError
from .config_util import is_config_value

__all__ = ["patch", "read"]


def read(text: str) -> dict[str, Any]:
    """Config keys and values of a Python module's source."""
    return {name: val for name, (val, _node) in _assigns(text).items()}


def patch(text: str, values: dict[str, Any]) -> str:
    """`text` with the values of `values` (names read by `read`) written."""
    assigns = _assigns(text)
    offsets = _line_offsets(text)
    edits = []
    for name, val in values.items():
        try:
            _old, node = assigns[name]
        except KeyError:
            raise ConfigError(f"no config key '{name}'") from None
        start = _char_offset(text, offsets, node.lineno, node.col_offset)
        assert node.end_lineno is not None and node.end_col_offset is not None
        end = _char_offset(text, offsets, node.end_lineno, node.end_col_offset)
        edits.append((start, end, _literal(val, text[start:end], name)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _assigns(text: str) -> dict[str, tuple[Any, ast.expr]]:
    try:
        module = ast.parse(text)
    except SyntaxError as e:
        raise ConfigError(f"invalid Python (line {e.lineno}): {e.msg}") from None
    assigns: dict[str, tuple[Any, ast.expr]] = {}
    for stmt in module.body:
        target, value = _simple_assign(stmt)
        if target is None or value is None or _is_dunder(target):
            continue
        try:
            val = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if is_config_value(val):
            assigns[target] = (val, value)
    return assigns


def _simple_assign(stmt: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
    ):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id, stmt.value
    return None, None


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _line_offsets(text: str) -> list[int]:
    """Char offset of the start of each line (index 0 is line 1)."""
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


def _char_offset(text: str, offsets: list[int], lineno: int, col: int) -> int:
    """Char offset for an ast position (`col` counts UTF-8 bytes)."""
    start = offsets[lineno - 1]
    line = text[start : start + col]
    # col is a byte offset: take as many chars as encode to `col` bytes.
    n = 0
    nbytes = 0
    while nbytes < col:
        nbytes += len(line[n].encode("utf-8", "surrogatepass"))
        n += 1
    return start + n


def _literal(val: Any, old_src: str, name: str) -> str:
    """Python literal source for `val`, in the quote style of `old_src`."""
    _check_value(val, name)
    if isinstance(val, str):
        return _str_literal(val, _quote_of(old_src))
    return repr(val)


def _check_value(val: Any, name: str) -> None:
    if not is_config_value(val):
        raise ConfigError(
            f"cannot write {val!r} to '{name}': not a Python literal "
            "(int, float, str, bool, None, list, tuple or dict)"
        )


def _quote_of(src: str) -> str:
    m = re.match(r"[rRuU]?(['\"])", src)
    return m.group(1) if m else "'"


def _str_literal(s: str, quote: str) -> str:
    if quote == "'":
        return repr(s)
    return '"' + "".join(_dq_char(c) for c in s) + '"'


def _dq_char(c: str) -> str:
    if c == '"':
        return '\\"'
    if c == "'":
        return "'"
    return repr(c)[1:-1]
