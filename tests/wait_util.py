"""Waiting in tests without trusting the clock.

A test that waits for something another process does polls for it, and
when the wait runs out it fails with what it waited for: never goes on
as if the thing had happened. A wait's timeout is a bound on a broken
test, never the thing a test proves.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

TIMEOUT = 60.0


def wait_for(
    cond: Callable[[], T], what: str, timeout: float = TIMEOUT, interval: float = 0.02
) -> T:
    """Call `cond` until it returns a true value, and return that value.

    Raises `TimeoutError` naming `what` when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        val = cond()
        if val:
            return val
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(interval)
