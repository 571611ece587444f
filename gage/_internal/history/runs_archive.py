"""Archives: runs moved out of the runs home's listing, kept intact, and
brought back.

An archive `NAME` is a dir inside the runs home,
`<runs home>/.archive/NAME` (`run_meta.archive_dir`): gage never writes
outside its runs home, and the listing of a runs home never looks into
a dot dir. An archive is laid out as a runs home of its own (`<id>` and
`<id>.meta` dirs, its own runs index), so `gage runs --archive NAME`
lists it and every RUN selection works in it.

Archiving and restoring move dirs with `rename` (the archive is on the
same file system): nothing is copied, so sealed meta still verifies,
hardlinks stay hardlinks (to the object cache, which stays in the runs
home and keeps every object a run links while it is linked), and file
modes are kept. A run's meta dir moves first, then its run dir; a mover
killed in between leaves a meta dir without its run dir at the
destination and the run dir without a meta dir at the source (never
listed), which the next archive or restore moves on (`_finish`).

What a live run needs is never archived (`run_delete.plan_delete`'s
rules: not a running run, nor one being staged, nor an upstream run a
staged or running run depends on, unless it is archived too). A run is
not restored over a run dir of the same name in the runs home.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Callable, Sequence

from ..faults import fault_point
from ..home import runs
from ..store import run_meta
from ..store.run_meta import META_SUFFIX
from ..types import GageError, Run
from . import run_delete

__all__ = [
    "DEFAULT_ARCHIVE",
    "archive_home",
    "archive_names",
    "archive_runs",
    "plan_archive",
    "plan_restore",
    "restore_runs",
]

DEFAULT_ARCHIVE = "default"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def archive_home(home: str, name: str, must_exist: bool = True) -> str:
    """The dir of archive `name` in runs home `home`. Raises GageError
    for a name that is not a plain word, or (`must_exist`) for an
    archive that does not exist."""
    if not _NAME.fullmatch(name) or len(name) > 100:
        raise GageError(
            f"archive name '{name}' is not a plain name: use letters, digits, "
            "'.', '_' and '-', starting with a letter or digit",
            key=name,
        )
    path = run_meta.archive_dir(home, name)
    if must_exist and not os.path.isdir(path):
        names = archive_names(home)
        known = f"archives: {', '.join(names)}" if names else "no archives yet"
        raise GageError(f"no archive '{name}' in {home} ({known})", path=path)
    return path


def archive_names(home: str) -> list[str]:
    """The archives of a runs home, by name."""
    try:
        names = os.listdir(os.path.join(home, run_meta.ARCHIVE_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return []
    top = os.path.join(home, run_meta.ARCHIVE_DIR)
    return sorted(n for n in names if os.path.isdir(os.path.join(top, n)))


def plan_archive(home: str, selected: Sequence[Run]) -> run_delete.Plan:
    """Which of `selected` (runs of `home`) can be archived, and why the
    others cannot (`run_delete.plan_delete`'s rules, without force)."""
    outside = [r for r in selected if os.path.dirname(r.run_dir) != home]
    plan = run_delete.plan_delete(
        home,
        [r for r in selected if r not in outside],
        force_hint="archive it too, or let that run end first",
    )
    refused = plan.refused + tuple(
        run_delete.Refused(r, f"it is not in the runs home {home}") for r in outside
    )
    return run_delete.Plan(plan.delete, refused)


def plan_restore(home: str, archive: str, selected: Sequence[Run]) -> run_delete.Plan:
    """Which of `selected` (runs of the archive dir `archive`) can go
    back to `home`: not a running one or one being staged, nor one whose
    run dir name is taken there."""
    # Upstream runs may come back without the runs that depend on them.
    plan = run_delete.plan_delete(archive, selected, force=True)
    keep, refused = [], list(plan.refused)
    for run, status in plan.delete:
        name = os.path.basename(run.run_dir)
        if os.path.lexists(os.path.join(home, name)) or os.path.lexists(
            os.path.join(home, name + META_SUFFIX)
        ):
            refused.append(
                run_delete.Refused(run, f"{os.path.join(home, name)} exists")
            )
        else:
            keep.append((run, status))
    return run_delete.Plan(tuple(keep), tuple(refused))


def archive_runs(
    home: str,
    plan: run_delete.Plan | Sequence[Run],
    name: str = DEFAULT_ARCHIVE,
    moved: Callable[[Run], None] | None = None,
) -> int:
    """Move the runs of `plan` (`plan_archive`; or runs, planned here,
    raising GageError when one must stay) into archive `name`;
    `moved(run)` after each. A run that started since the plan was made
    stays. Returns how many moved."""
    dest = archive_home(home, name, must_exist=False)
    if not isinstance(plan, run_delete.Plan):
        plan = _all_or_none(plan_archive(home, plan), "archive")
    os.makedirs(dest, exist_ok=True)
    return _move_all(home, dest, plan, moved)


def restore_runs(
    home: str,
    plan: run_delete.Plan | Sequence[Run],
    name: str = DEFAULT_ARCHIVE,
    moved: Callable[[Run], None] | None = None,
) -> int:
    """Move the runs of `plan` (`plan_restore`; or runs of the archive,
    planned here, raising GageError when one must stay) from archive
    `name` back into the runs home; `moved(run)` after each. Returns
    how many moved."""
    src = archive_home(home, name)
    if not isinstance(plan, run_delete.Plan):
        plan = _all_or_none(plan_restore(home, src, plan), "restore")
    return _move_all(src, home, plan, moved)


def _all_or_none(plan: run_delete.Plan, verb: str) -> run_delete.Plan:
    if plan.refused:
        r = plan.refused[0]
        raise GageError(f"cannot {verb} run {r.run.name}: {r.reason}", run=r.run.id)
    return plan


def _move_all(
    src: str, dest: str, plan: run_delete.Plan, moved: Callable[[Run], None] | None
) -> int:
    _finish(src, dest)
    _finish(dest, src)
    n = 0
    for run, _status in plan.delete:
        if runs.run_status(run) == "running" or run_delete.being_staged(run):
            continue  # started or being staged since the plan was made
        _move(run, dest)
        n += 1
        if moved:
            moved(run)
    return n


def _move(run: Run, dest_home: str) -> None:
    name = os.path.basename(run.run_dir)
    dest = os.path.join(dest_home, name)
    if os.path.lexists(dest) or os.path.lexists(dest + META_SUFFIX):
        raise GageError(f"cannot move run {run.name}: {dest} exists", path=dest)
    _rename(run.meta_dir, dest + META_SUFFIX)
    fault_point("archive")
    _rename(run.run_dir, dest)


def _finish(src: str, dest: str) -> None:
    """Move on the run dirs a killed mover left behind: a meta dir in
    `dest` without its run dir, whose run dir is still in `src` without
    a meta dir."""
    try:
        names = os.listdir(dest)
    except FileNotFoundError:
        return
    for meta in names:
        if not meta.endswith(META_SUFFIX):
            continue
        name = meta[: -len(META_SUFFIX)]
        left = os.path.join(src, name)
        if (
            name
            and not os.path.lexists(os.path.join(dest, name))
            and os.path.isdir(left)
            and not os.path.lexists(left + META_SUFFIX)
        ):
            _rename(left, os.path.join(dest, name))


def _rename(path: str, dest: str) -> None:
    """Rename a dir; one without write access (moving it to another
    parent updates its `..`) gets it for the rename, then its mode
    back."""
    try:
        try:
            os.rename(path, dest)
        except PermissionError:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            os.chmod(path, mode | stat.S_IRWXU)
            os.rename(path, dest)
            os.chmod(dest, mode)
    except OSError as e:
        raise GageError(
            f"cannot move {path} to {dest}: {e.strerror}", path=path
        ) from None
