"""Verify a run dir against its manifest."""

from __future__ import annotations

import os

import attrs

from . import file_util, run_meta
from .types import Run, RunError

__all__ = ["Difference", "file_digest", "verify_files", "verify_run"]


@attrs.frozen
class Difference:
    """A run dir file that differs from the manifest."""

    change: str  # changed | missing | added | dangling
    path: str
    detail: str | None = None  # for a dangling link: where it points

    def __str__(self) -> str:
        if self.detail:
            return f"{self.change} {self.path} -> {self.detail}"
        return f"{self.change} {self.path}"


def verify_run(run: Run) -> list[Difference]:
    """Re-hash run dir files against the manifest: every difference, by path.

    An empty list means the run dir holds exactly the files of its
    manifest with the same content.
    """
    if run_meta.read_timestamp(run, "staged") is None:
        raise RunError(
            f"Run {run.name} ({run.id}) is not staged: it has no manifest to verify"
        )
    return verify_files(run, file_util.snapshot_dir(run.run_dir))


def verify_files(run: Run, files: dict[str, tuple[int, int]]) -> list[Difference]:
    """Differences between `files` (a snapshot of the run dir) and the
    manifest, re-hashing each listed file."""
    manifest = run_meta.read_manifest(run)
    diffs = []
    for e in manifest:
        path = os.path.join(run.run_dir, e.path)
        if e.path not in files:
            diffs.append(Difference("missing", e.path))
        elif os.path.islink(path) and not os.path.exists(path):
            diffs.append(Difference("dangling", e.path, os.readlink(path)))
        elif file_digest(path) != e.sha256:
            diffs.append(Difference("changed", e.path))
    listed = {e.path for e in manifest}
    diffs.extend(Difference("added", path) for path in files if path not in listed)
    return sorted(diffs, key=lambda d: d.path)


def file_digest(path: str) -> str:
    """sha256 of a file's content; of its target text for a link to none
    (or to a special file); of its kind (`FIFO`, ...) for a special file,
    which is never opened."""
    try:
        return file_util.sha256_file(path)
    except OSError:
        try:
            return file_util.sha256_bytes(os.fsencode(os.readlink(path)))
        except OSError:
            pass
        try:
            kind = file_util.file_kind(os.lstat(path))
        except OSError:
            kind = ""
        return file_util.sha256_bytes(f"special {kind}".encode() if kind else b"")
