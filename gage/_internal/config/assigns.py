"""Command-line assignments: `NAME=VALUE` words parsed into values.

A value is read as YAML flow (`0.1`, `true`, `[1, 2]`, `null`); a value
that is not valid YAML, or is quoted, is text. `parse_assigns` is the
one parser of assignments, for the CLI and the API alike;
`run_config.resolve_config` then checks them against an op's defaults.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..types import ConfigError
from .config_util import is_config_value

__all__ = ["Assigns", "parse_assigns", "parse_value", "short_text"]


class Assigns(dict):
    """`NAME=VALUE` words as typed values (see `parse_assigns`).

    It is a dict of name -> value that also remembers the text each
    value was typed from (`texts`), so that `resolve_config` gives a key
    whose default is a string the text as typed: `ver=1.10` is `'1.10'`,
    not the float `1.1`. A value replaced after parsing is taken as given.
    """

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, tuple[str, Any]] = {}

    def text(self, name: str) -> str | None:
        """The text `name` was typed from, while its value is unchanged."""
        text, val = self.texts.get(name, (None, None))
        return text if text is not None and self.get(name) is val else None


def parse_assigns(args: list[str]) -> Assigns:
    """Parse `NAME=VALUE` args into a dict of typed values.

    Values are typed like YAML scalars: `1` is an int, `1.0` and `1e-3`
    floats, `true`/`no` bools, `null` None, `'1'` (quoted) a string,
    `[1, 2]` a list, `{a: 1}` a dict; anything else is a string. The
    result also keeps each value's text, which `resolve_config` uses for
    a key whose default is a string: this is the one way NAME=VALUE words
    become config, for the CLI and for API callers alike.
    """
    assigns = Assigns()
    for arg in args:
        name, sep, text = arg.partition("=")
        if not sep or not name or name != name.strip() or " " in name:
            raise ConfigError(
                f"Invalid assignment '{arg}': expected NAME=VALUE (e.g. lr=0.01)",
                key=name or None,
            )
        try:
            val = parse_value(text)
        except ConfigError as e:
            raise ConfigError(
                f"Invalid value in '{name}={short_text(text)}': {e}", key=name
            ) from None
        assigns[name] = val
        assigns.texts[name] = (text, val)
    return assigns


def parse_value(text: str) -> Any:
    """A value typed like a YAML scalar or flow collection (see above).

    A collection nested more than `MAX_DEPTH` levels, and a YAML alias
    (`*name`, which can expand a short value into a huge one), are
    refused.
    """
    if text[:1] not in ("[", "{", "'", '"'):
        return _scalar(text)
    if _depth(text) > MAX_DEPTH:
        raise ConfigError(f"the value is nested more than {MAX_DEPTH} levels deep")
    import yaml

    try:
        val = yaml.load(text, Loader=_value_loader())
    except yaml.MarkedYAMLError as e:
        raise ConfigError(f"{e.problem} (quote the value to use it as text)") from None
    except yaml.YAMLError as e:
        raise ConfigError(str(e)) from None
    if not is_config_value(val):
        raise ConfigError(f"{short_text(repr(val))} is not a config value")
    return val


MAX_DEPTH = 100
"""How deeply `[...]` and `{...}` may nest in a NAME=VALUE value."""


def _depth(text: str) -> int:
    """Deepest nesting of brackets outside quotes (an upper bound is fine)."""
    depth = deepest = 0
    quote = None
    for c in text:
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def short_text(text: str, size: int = 60) -> str:
    """`text` cut to `size` characters for a message."""
    return text if len(text) <= size else text[: size - 3] + "..."


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(
    r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?"
)
_NULL = ("null", "Null", "NULL", "~")
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


def _scalar(text: str) -> Any:
    tag = _scalar_tag(text)
    if tag == "null":
        return None
    if tag == "bool":
        return text.lower() in _TRUE
    if tag == "int":
        try:
            return int(text)
        except ValueError:  # over sys.get_int_max_str_digits() digits
            raise ConfigError(
                f"the integer has {len(text)} digits (at most 4300 are read); "
                "quote it to use it as text"
            ) from None
    if tag == "float":
        val = float(text)
        if val in (float("inf"), float("-inf")):
            raise ConfigError(f"{text} is too large for a float")
        return val
    return text


def _scalar_tag(text: str) -> str:
    if text in _NULL:
        return "null"
    if text in (text.lower(), text.capitalize(), text.upper()) and text.lower() in (
        _TRUE + _FALSE
    ):
        return "bool"
    if _INT.fullmatch(text):
        return "int"
    if _FLOAT.fullmatch(text):
        return "float"
    return "str"


@functools.cache
def _value_loader():
    """A YAML loader that types plain scalars as `_scalar` does.

    Made on first use: yaml is imported only when a value needs it.
    """
    import yaml

    class ValueLoader(yaml.SafeLoader):
        def resolve(self, kind, value, implicit):
            if kind is yaml.ScalarNode and implicit[0]:
                return "tag:yaml.org,2002:" + _scalar_tag(value)
            return super().resolve(kind, value, implicit)

        def construct_scalar_value(self, node):
            return _scalar(self.construct_scalar(node))

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise ConfigError(
                    "YAML aliases (*name) are not allowed in a value: "
                    "write the value out"
                )
            return super().compose_node(parent, index)

    for tag in ("null", "bool", "int", "float"):
        ValueLoader.add_constructor(
            "tag:yaml.org,2002:" + tag, ValueLoader.construct_scalar_value
        )
    return ValueLoader
