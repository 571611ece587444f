"""The step-scalar keys of an op in gage.toml: `output-scalars` (regexes
with named groups, or false) and `scalars-file` (a path in the run dir).
Each check gives the problem in words (after the key's name), or None."""

from __future__ import annotations

import os
import re
from typing import Any

from ..types import describe

__all__ = ["output_scalars_problem", "scalars_file_problem"]


def output_scalars_problem(val: Any) -> str | None:
    if val is False:
        return None
    items = [val] if isinstance(val, str) else val
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        return (
            "must be a regular expression, a list of them, or false, "
            f"got {describe(val)}"
        )
    for pattern in items:
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            return f"{pattern!r} is not a valid regex: {e}"
        if not compiled.groupindex:
            return (
                f"{pattern!r} has no named group: name each value it captures, "
                "as in 'loss=(?P<loss>\\S+)'"
            )
    return None


def scalars_file_problem(val: Any) -> str | None:
    if not isinstance(val, str) or not val.strip():
        return f"must be a file name, got {describe(val)}"
    norm = os.path.normpath(val)
    if os.path.isabs(val) or norm == ".." or norm.startswith(".." + os.sep):
        return f"{val!r} must be a path inside the run dir (relative, no '..')"
    return None
