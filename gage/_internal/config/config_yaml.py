"""Config in YAML files: read and patch values by dotted key.

A config key is the dotted path to a value in nested mappings
(`model.lr`). Sequences and scalars are values; mappings are walked
into. Values that are aliases of an anchored value (`*name`), merge
keys (`<<`) and values config cannot hold (dates, binary) are not
config keys. A value that expands to more than `MAX_NODES` values
through aliases (an alias bomb) is refused, before it is expanded.

Values are read as PyYAML's `safe_load` reads them (YAML 1.1), since
that is what most programs use to read their YAML config.

Round-trip YAML libraries re-emit the whole document and so re-indent,
re-wrap and re-quote parts the user never touched. Patching here is a
span replacement instead: PyYAML's composer gives the start and end of
each value node, and only that text is replaced, so everything else
stays byte for byte. Written values keep the style of the value they
replace where they can (quoting, `yes`/`no` booleans, block sequences)
and are always written so YAML 1.1 and 1.2 readers read them back as
the same type: `1e-06` is written `1.0e-06`, a string that would read
as another type is quoted.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from ..types import ConfigError
from .config_util import is_config_value, key_name

__all__ = ["patch", "read"]


def read(text: str) -> dict[str, Any]:
    """Config keys and values of a YAML document."""
    return {name: val for name, (val, _key, _node) in _values(text).items()}


def patch(text: str, values: dict[str, Any]) -> str:
    """`text` with the values of `values` (names read by `read`) written."""
    found = _values(text)
    edits = []
    for name, val in values.items():
        try:
            _old, key_node, node = found[name]
        except KeyError:
            raise ConfigError(f"no config key '{name}'") from None
        if not is_config_value(val):
            raise ConfigError(f"cannot write {val!r} to '{name}': not a YAML value")
        edits.append(_edit(text, key_node, node, val))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


# ---------------------------------------------------------------------------
# Read


def _values(text: str) -> dict[str, tuple[Any, yaml.Node, yaml.Node]]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        found: dict[str, tuple[Any, yaml.Node, yaml.Node]] = {}
        if isinstance(root, yaml.MappingNode):
            _walk(loader, root, (), found, set())
        return found
    except yaml.MarkedYAMLError as e:
        raise ConfigError(f"invalid YAML{_line(e)}: {_problem(e)}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}") from None
    finally:
        loader.dispose()


def _problem(e: yaml.MarkedYAMLError) -> str:
    if e.problem and e.problem.startswith("but ") and e.context:
        return f"{e.context} {e.problem}"
    return e.problem or e.context or "invalid syntax"


def _line(e: yaml.MarkedYAMLError) -> str:
    mark = e.problem_mark or e.context_mark
    return f" (line {mark.line + 1})" if mark else ""


def _walk(
    loader: yaml.SafeLoader,
    node: yaml.MappingNode,
    path: tuple[Any, ...],
    found: dict[str, tuple[Any, yaml.Node, yaml.Node]],
    seen: set[int],
) -> None:
    for key_node, val_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            continue
        key_path = path + (loader.construct_object(key_node),)
        name = key_name(key_path)
        if id(val_node) in seen:
            found.pop(name, None)  # an alias
            continue
        seen.add(id(val_node))
        if isinstance(val_node, yaml.MappingNode):
            _walk(loader, val_node, key_path, found, seen)
            continue
        if _expanded_size(val_node, {}) > MAX_NODES:
            raise ConfigError(
                f"'{name}' expands to more than {MAX_NODES:,} values through "
                "aliases (*name): refused (an alias bomb?); write the values out"
            )
        try:
            val = loader.construct_object(val_node, deep=True)
        except yaml.YAMLError:
            found.pop(name, None)  # e.g. an unknown tag
            continue
        if is_config_value(val):
            found[name] = (val, key_node, val_node)
        else:
            found.pop(name, None)


MAX_NODES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` holds with its aliases expanded: counted once
    per distinct node (time linear in the document), capped just past
    MAX_NODES."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_NODES + 1  # a cycle counts as too big
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total = min(total + _expanded_size(child, sizes), MAX_NODES + 1)
    sizes[id(node)] = total
    return total


# ---------------------------------------------------------------------------
# Patch


_PROPS = re.compile(r"(?:(?:&|!)[^\s]*\s+)*")


def _edit(
    text: str, key_node: yaml.Node, node: yaml.Node, val: Any
) -> tuple[int, int, str]:
    """The (start, end, new text) that writes `val` over `node`."""
    start = node.start_mark.index
    # Keep an anchor (&name) or tag (!!float) before the value.
    if _has_props(text, start):
        start = _PROPS.match(text, start).end()  # type: ignore[union-attr]
    if isinstance(node, yaml.SequenceNode) and not node.flow_style:
        return _block_seq_edit(text, key_node, node, val, start)
    end = _end(text, node)
    if start >= end:
        # An empty value (`key:`): write after the colon.
        return end, end, " " + _format(val, node, flow=False)
    return start, end, _format(val, node, flow=False)


def _has_props(text: str, pos: int) -> bool:
    return text[pos : pos + 1] in ("&", "!")


def _end(text: str, node: yaml.Node) -> int:
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        # A block scalar ends at the next line; keep the line breaks.
        return len(text[: node.end_mark.index].rstrip())
    if isinstance(node, yaml.SequenceNode) and not node.flow_style:
        return _end(text, node.value[-1])
    if isinstance(node, yaml.MappingNode) and not node.flow_style:
        return _end(text, node.value[-1][1])
    return node.end_mark.index


def _block_seq_edit(
    text: str, key_node: yaml.Node, node: yaml.SequenceNode, val: Any, start: int
) -> tuple[int, int, str]:
    end = _end(text, node)
    if isinstance(val, (list, tuple)) and val:
        sep = "\n" + " " * node.start_mark.column
        items = [
            "- " + _format(x, _item_node(node, i), flow=True) for i, x in enumerate(val)
        ]
        return start, end, sep.join(items)
    # Not a non-empty list: write it after the key's colon, keeping the
    # comments between the colon and the sequence.
    colon = text.index(":", key_node.end_mark.index) + 1
    new = _format(val, node, flow=False)
    props = text[node.start_mark.index : start].rstrip()
    if props:
        return colon, end, f" {props} {new}"
    return colon, end, " " + new + text[colon:start].rstrip()


def _item_node(node: yaml.SequenceNode, i: int) -> yaml.Node | None:
    return node.value[i] if i < len(node.value) else None


def _format(val: Any, node: yaml.Node | None, flow: bool) -> str:
    """YAML text for `val`, in the style of `node` where it can."""
    if val is None:
        return "~" if _old_text(node) == "~" else "null"
    if isinstance(val, bool):
        return _format_bool(val, node)
    if isinstance(val, int):
        return str(val)
    if isinstance(val, float):
        return format_float(val)
    if isinstance(val, str):
        return _format_str(val, node, flow)
    if isinstance(val, (list, tuple)):
        return "[" + ", ".join(_format(x, None, True) for x in val) + "]"
    if isinstance(val, dict):
        items = [
            f"{_format_str(str(k), None, True)}: {_format(v, None, True)}"
            for k, v in val.items()
        ]
        return "{" + ", ".join(items) + "}"
    raise AssertionError(val)


def _old_text(node: yaml.Node | None) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.style is None:
        return node.value
    return None


_BOOL_WORDS = {"true": "false", "yes": "no", "on": "off"}


def _format_bool(val: bool, node: yaml.Node | None) -> str:
    old = _old_text(node) or ""
    lower = old.lower()
    for true, false in _BOOL_WORDS.items():
        if lower in (true, false):
            word = true if val else false
            if old.isupper():
                return word.upper()
            if old[:1].isupper():
                return word.capitalize()
            return word
    return "true" if val else "false"


def format_float(val: float) -> str:
    """A float as YAML 1.1 and 1.2 both read as a float (`1.0e-06`)."""
    if math.isnan(val):
        return ".nan"
    if math.isinf(val):
        return ".inf" if val > 0 else "-.inf"
    s = repr(val)
    mantissa, e, exp = s.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if e and exp[0] not in "+-":
        exp = "+" + exp
    return mantissa + e + exp


_PLAIN = re.compile(r"[A-Za-z_./][A-Za-z0-9_./ -]*")


def _format_str(s: str, node: yaml.Node | None, flow: bool) -> str:
    style = node.style if isinstance(node, yaml.ScalarNode) else None
    if style == '"':
        return _double_quoted(s)
    if style in (None, "|", ">") and _plain_ok(s):
        return s
    if _single_ok(s):
        return "'" + s.replace("'", "''") + "'"
    return _double_quoted(s)


def _plain_ok(s: str) -> bool:
    """True if `s` reads back as itself written plain (`...` is a YAML
    document end marker, not a string: it must be quoted)."""
    if not _PLAIN.fullmatch(s) or s != s.strip():
        return False
    try:
        return bool(yaml.safe_load(s) == s)
    except yaml.YAMLError:
        return False


# Chars YAML allows unescaped in a quoted scalar on one line.
_PRINTABLE = re.compile(
    "[\x09\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufeff\U00010000-\U0010ffff]*"
)


def _single_ok(s: str) -> bool:
    return bool(_PRINTABLE.fullmatch(s)) and "\ufeff" not in s


def _double_quoted(s: str) -> str:
    return '"' + "".join(_escape(c) for c in s) + '"'


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    if _PRINTABLE.fullmatch(c) and c != "\ufeff":
        return c
    n = ord(c)
    if n <= 0xFF:
        return f"\\x{n:02x}"
    if n <= 0xFFFF:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"
