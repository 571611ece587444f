"""Pause points for crash tests.

`fault_point(name)` does nothing unless `GAGE_TEST_PAUSE` names the point.
Then it creates the file `GAGE_TEST_PAUSE_FILE` (when set) and sleeps, so
a test can kill the process (`kill -9`) at exactly that point of a phase,
not by timing luck. `tests/test_crash_points.py` uses them.

Points: `staging` (staging began, stager recorded), `deps` (before
dependencies are resolved), `placing` (dependency files added to the
object cache, not yet placed), `sealing` (manifest written, not yet sealed
or staged), `starting` (a staged run about to start), `started` (`started`
written, the command not yet run), `finalize` (the run's command ended,
record not complete), `delete` (a run's meta dir is in the trash, its run
dir not yet), `archive` (a run's meta dir is moved to or from an archive,
its run dir not yet), `remote-push` and `remote-pull` (an object has been
sent or received, others not yet), `remote-pull-move` (a pulled run's run
dir is in the runs home, its meta dir not yet).
"""

from __future__ import annotations

import os
import time

__all__ = ["fault_point"]

_ENV = "GAGE_TEST_PAUSE"


def fault_point(name: str) -> None:
    if os.environ.get(_ENV) != name:
        return
    marker = os.environ.get(_ENV + "_FILE")
    if marker:
        with open(marker, "w") as f:
            f.write(f"{os.getpid()}\n")
    time.sleep(float(os.environ.get(_ENV + "_SECONDS", "60")))
