"""Values and sizes as gage prints them for people. Imports nothing at
start: `gage --help` loads it."""

from __future__ import annotations

__all__ = ["fmt_val", "format_size"]


def fmt_val(val: object) -> str:
    """A config or summary value as gage prints it: a string bare, any
    other value as JSON (`0.1`, `true`, `null`, `[1, 2]`)."""
    if isinstance(val, str):
        return val
    import json

    return json.dumps(val)


def format_size(n: float) -> str:
    """A size for people: `512 B`, `1.5 MiB`."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError
