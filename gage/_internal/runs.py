"""Find and select runs in a runs home.

A run in a runs home is a `<id>` dir with a sibling `<id>.meta` dir. Runs
are found by listing the meta dirs, so a run dir without meta (being
made) is never seen.
"""

from __future__ import annotations

import glob
import os

from .run_meta import read_exit_code, read_id, read_name, read_opref
from .types import Run

__all__ = [
    "is_completed",
    "list_runs",
    "run_for_meta_dir",
    "select_runs",
]


def list_runs(runs_home: str) -> list[Run]:
    """Runs in `runs_home`, oldest first (run ids sort by creation time)."""
    runs = []
    for meta_dir in sorted(glob.glob(os.path.join(glob.escape(runs_home), "*.meta"))):
        run = run_for_meta_dir(meta_dir)
        if run is not None:
            runs.append(run)
    return runs


def run_for_meta_dir(meta_dir: str) -> Run | None:
    """The run of a meta dir, or None when its identity is not written yet."""
    try:
        return Run(read_id(meta_dir), meta_dir[: -len(".meta")], read_name(meta_dir))
    except (FileNotFoundError, NotADirectoryError):
        return None


def is_completed(run: Run) -> bool:
    """True when the run ended with exit code 0."""
    return read_exit_code(run) == 0


def select_runs(runs: list[Run], select: str) -> list[Run]:
    """Runs matching `select`: an op name, else a run id or name prefix.

    When any run's op name equals `select`, the runs of that op are
    returned; otherwise the runs whose id or name starts with `select`.
    Order is kept.
    """
    by_op = [run for run in runs if _op_name(run) == select]
    if by_op:
        return by_op
    return [run for run in runs if run.id.startswith(select) or run.name.startswith(select)]


def _op_name(run: Run) -> str | None:
    try:
        return read_opref(run).op_name
    except (FileNotFoundError, TypeError):
        return None
