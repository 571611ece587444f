"""Bring a Dask run's result home (the dask engine's last step).

`place_result` puts the files the run generated or modified in the run
dir, removes those it deleted, checks the generated ones against the
returned manifest, and swaps the returned meta dir (with `worker.json`
and notes in its runner log) for the staged one in one rename, so a
run's record at home is either the staged one or the complete one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from ..store import run_meta, run_records
from ..types import Run, RunError
from ..util import file_util
from . import run_archive

__all__ = ["place_result"]


def place_result(
    run: Run,
    archive: bytes,
    deleted: list[str],
    worker: dict[str, Any],
    notes: list[str] | None = None,
) -> None:
    """Bring a run's result home: generated and modified files into its
    run dir, deleted ones out, then the returned meta dir (with
    `worker.json`, and `notes` in its runner log: what happened here
    before) in place of the staged one, swapped in one rename."""
    incoming = tempfile.mkdtemp(prefix=f".incoming-{run.id[:12]}-", dir=run.runs_home)
    try:
        back = run_archive.unpack_run(archive, incoming, run.id)
        _check_generated(back)
        run_records.write_worker(back, worker)
        for note in notes or ():
            run_meta.runner_log(back).info(note)
        run_meta.runner_log(back).info(
            f"Ran on Dask worker {worker.get('worker')} (host {worker.get('host')}, "
            f"scheduler {worker.get('scheduler')}); record brought home"
        )
        _move_files(back.run_dir, run.run_dir)
        for path in deleted:
            full = os.path.join(run.run_dir, path)
            if os.path.lexists(full) and not os.path.isdir(full):
                os.unlink(full)
        _exchange(back.meta_dir, run.meta_dir)
    finally:
        file_util.remove_tree(incoming, ignore_errors=True)


def _check_generated(run: Run) -> None:
    from ..lifecycle.run_verify import file_digest

    for e in run_meta.read_manifest(run):
        full = os.path.join(run.run_dir, e.path)
        if e.type == "g" and os.path.lexists(full) and file_digest(full) != e.sha256:
            raise RunError(
                f"result of run {run.name} is damaged: {e.path} does not match "
                "its manifest digest; the run keeps its staged record",
                run=run.id,
                path=e.path,
            )


def _move_files(src_root: str, dest_root: str) -> None:
    for dirpath, dirnames, filenames in os.walk(src_root):
        rel = os.path.relpath(dirpath, src_root)
        dest_dir = os.path.normpath(os.path.join(dest_root, rel))
        os.makedirs(dest_dir, exist_ok=True)
        names = filenames + [
            d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
        ]
        for name in names:
            os.replace(os.path.join(dirpath, name), os.path.join(dest_dir, name))


def _exchange(new: str, old: str) -> None:
    """Swap two dirs: `old`'s path gets `new`'s content in one rename
    (renameat2 RENAME_EXCHANGE on Linux), `new`'s path the old one."""
    if _rename_exchange(new, old):
        return
    tmp = new + ".old"
    os.rename(old, tmp)
    os.rename(new, old)
    os.rename(tmp, new)


def _rename_exchange(a: str, b: str) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return (
        renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
        == 0
    )
