"""Python's cycle collector paused while gage handles many files.

Staging a folder of 100,000 files makes a few objects per file (its
stat, its entry, its record) that live until staging ends. The cycle
collector, run every few hundred allocations, then traverses the whole
heap again each time it has grown by a quarter: a fifth of staging's
CPU at 100,000 files, and more than linear in their number. Reference
counting frees what these paths make (they make no cycles), so the
collector is paused around them and left to its thresholds after.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

__all__ = ["paused"]


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The cycle collector off for the block (as it was, after it; a
    nested block leaves it to the outer one)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
