"""Helpers shared by the config file formats (`config_*.py`)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["is_config_value", "key_name"]


def is_config_value(val: Any) -> bool:
    """True if `val` is a value run config can hold.

    Config is stored as JSON, so a value is None, bool, int, finite
    float, str, or a list, tuple or dict (with str keys) of such values.
    """
    if val is None or isinstance(val, (bool, int, str)):
        return True
    if isinstance(val, float):
        return math.isfinite(val)
    if isinstance(val, (list, tuple)):
        return all(is_config_value(x) for x in val)
    if isinstance(val, dict):
        return all(isinstance(k, str) and is_config_value(v) for k, v in val.items())
    return False


def key_name(path: tuple[Any, ...]) -> str:
    """The dotted config key name of a nested key path (`model.lr`)."""
    return ".".join(str(part) for part in path)
