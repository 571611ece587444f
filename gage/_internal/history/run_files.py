"""A run's files for a user to look at: `gage cat` and `gage open`.

`run_path` turns a path a user gives into a path inside the run dir
(or, with `meta`, inside the run's meta dir: `output/40_run`), and
refuses what leads out of it: an absolute path, `..`, or a link whose
target is outside. `open_run_file` opens a regular file only
(`file_util.open_regular`: never blocks on a FIFO). `open_run` shows a
run dir or file with the system's program (or a command given).
"""

from __future__ import annotations

import os
import sys
from typing import IO

from ..types import GageError, Run
from ..util import file_util

__all__ = ["open_run", "open_run_file", "run_path", "system_opener"]


def run_path(run: Run, path: str | None = None, meta: bool = False) -> str:
    """The path of `path` in the run dir (`meta`: the meta dir); the
    dir itself for no path. Raises GageError for a path that leads out
    of it (absolute, `..`, a link to outside) or that does not exist."""
    root = run.meta_dir if meta else run.run_dir
    where = f"the meta dir of run {run.name}" if meta else f"run {run.name}"
    if path is None or path.strip(os.sep) in ("", "."):
        return root
    parts = path.split(os.sep)
    if os.path.isabs(path) or ".." in parts:
        raise GageError(
            f"{path} is outside {where}: give a path relative to {root}, without '..'",
            path=path,
        )
    full = os.path.join(root, os.path.normpath(path))
    if not file_util.is_inside(root, os.path.realpath(full)):
        raise GageError(
            f"{path} in {where} leads to {os.path.realpath(full)} (a link), "
            "outside the run: gage shows only the run's own files",
            path=full,
        )
    if not os.path.lexists(full):
        raise GageError(f"no file {path} in {where} ({root})", path=full)
    return full


def open_run_file(run: Run, path: str, meta: bool = False) -> IO[bytes]:
    """A run file (see `run_path`) open for reading. Raises GageError
    for a path that is not a regular file."""
    full = run_path(run, path, meta)
    try:
        return file_util.open_regular(full)
    except file_util.NotRegularFile as e:
        raise GageError(f"{path}: {e.strerror}: name a file", path=full) from None


def system_opener() -> list[str]:
    """The system's program that opens a file or dir with its default
    application: `open` on macOS, else `xdg-open`."""
    return ["open"] if sys.platform == "darwin" else ["xdg-open"]


def open_run(
    run: Run, path: str | None = None, cmd: list[str] | None = None, meta: bool = False
) -> int:
    """Open the run dir, or a file or dir in it (`run_path`), with
    `cmd` (argv; the path is added last) or the system's program, and
    wait for it. Returns its exit code; raises GageError when it cannot
    be started."""
    import subprocess

    target = run_path(run, path, meta)
    argv = list(cmd or system_opener()) + [target]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
    except OSError as e:
        hint = "use --cmd CMD" if cmd is None else "check --cmd"
        raise GageError(f"cannot run {argv[0]}: {e.strerror} ({hint})") from None
