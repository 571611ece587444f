"""run_all: transfers a few at a time, results handed back in the
caller's thread, the first error stops what has not started."""

from __future__ import annotations

import threading

import pytest

from gage._internal.remote.backend import run_all


@pytest.mark.parametrize("jobs", [1, 4])
def test_all_done_in_caller_thread(jobs):
    me = threading.get_ident()
    seen = {}

    def done(item, result):
        assert threading.get_ident() == me
        seen[item] = result

    run_all(jobs, lambda i: i * 2, list(range(500)), done)
    assert seen == {i: i * 2 for i in range(500)}


def test_first_error_stops_the_rest():
    started = []
    lock = threading.Lock()

    def fn(i):
        with lock:
            started.append(i)
        if i == 10:
            raise ValueError("boom")
        return i

    with pytest.raises(ValueError, match="boom"):
        run_all(4, fn, list(range(10_000)))
    assert len(started) < 200  # stopped soon after, not all 10,000
    assert threading.active_count() < 10  # its threads are gone
