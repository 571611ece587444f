"""A count of items done, on stderr when it is a terminal and the work
takes more than a second (building the runs index of many runs)."""

from __future__ import annotations

import sys
import time
from typing import Iterator, Sequence, TypeVar

__all__ = ["counted"]

T = TypeVar("T")


def counted(what: str, items: Sequence[T], min_items: int = 2000) -> Iterator[T]:
    """Yield `items`; `WHAT: I of N` redrawn on stderr (a terminal, at
    least `min_items` items, after a second), ended with a newline."""
    tty = len(items) >= min_items and _isatty()
    start = shown = time.monotonic()
    for i, item in enumerate(items):
        yield item
        if tty and i % 200 == 0:
            now = time.monotonic()
            if now - start > 1.0 and now - shown > 0.2:
                shown = now
                _write(f"\r{what}: {i + 1:,} of {len(items):,}  ")
    if tty and shown > start:
        _write(f"\r{what}: {len(items):,} of {len(items):,}  \n")


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _write(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
