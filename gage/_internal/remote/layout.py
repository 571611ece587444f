"""What a remote holds, and where: objects by sha256, one entry per run.

    <remote>/objects/sha256/ab/cdef...   a file's bytes, named by their sha256
    <remote>/runs/<id>.json              a run's entry: written last
    <remote>/.../.tmp-HOST-PID-...       a file on its way (then renamed)

A run on a remote is its entry: the run's record (as `gage runs --json`
gives it), the sha256 of its meta dir packed as a tar
(`run_archive.pack_meta`, itself an object), and each file of its run
dir with its sha256, size and mode (or, for a link, its target). Every
object a run needs is there before its entry is written, so a run that
is listed is whole; an object is sent once, whatever the number of runs
that have it, and a second push of the same run sends nothing.

An entry comes from elsewhere: `check_entry` refuses one whose fields
are not what gage writes (a path that would leave the run dir, a digest
that is not sha256 hex) before anything of it is used.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..types import RemoteError
from ..util import file_util
from .backend import Backend, run_all

__all__ = [
    "ENTRY_SCHEMA",
    "check_entry",
    "entry_path",
    "list_entries",
    "object_path",
    "read_entry",
    "remote_ids",
]

ENTRY_SCHEMA = 1

_SHA256 = re.compile("[0-9a-f]{64}")
_RUN_ID = re.compile("[0-9a-f]{32}")


def object_path(b: Backend, digest: str) -> str:
    return b.path("objects", "sha256", digest[:2], digest[2:])


def objects_root(b: Backend) -> str:
    return b.path("objects", "sha256")


def entry_path(b: Backend, run_id: str) -> str:
    return b.path("runs", run_id + ".json")


def remote_ids(b: Backend) -> set[str]:
    """Ids of the runs the remote lists (entries written)."""
    ids = set()
    for name in b.names(b.path("runs")):
        if name.endswith(".json") and _RUN_ID.fullmatch(name[:-5]):
            ids.add(name[:-5])
    return ids


def read_entry(b: Backend, run_id: str) -> dict[str, Any]:
    data = b.cat(entry_path(b, run_id))
    try:
        entry = json.loads(data)
    except ValueError:
        entry = None
    return check_entry(b, entry, run_id)


def list_entries(b: Backend, ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Entries of the remote's runs (or of `ids`), oldest first."""
    ids = remote_ids(b) if ids is None else ids
    entries: list[dict[str, Any]] = []
    run_all(
        b.jobs, lambda i: read_entry(b, i), sorted(ids), lambda _i, e: entries.append(e)
    )
    return sorted(entries, key=lambda e: (e["run"].get("initialized") or "", e["id"]))


def check_entry(b: Backend, entry: Any, run_id: str) -> dict[str, Any]:
    """`entry` when it is an entry gage writes for run `run_id`; else a
    RemoteError naming it."""
    problem = _entry_problem(entry, run_id)
    if problem:
        raise RemoteError(
            f"{b.label}: entry of run {run_id} ({entry_path(b, run_id)}) is not "
            f"valid: {problem}: 'gage push --force' of the run from a runs home "
            "that has it repairs it",
            run=run_id,
        )
    return entry


def _entry_problem(entry: Any, run_id: str) -> str | None:
    if not isinstance(entry, dict) or entry.get("schema") != ENTRY_SCHEMA:
        return "not a gage run entry (schema 1)"
    if entry.get("id") != run_id or not isinstance(entry.get("name"), str):
        return "its id is not the run's"
    if not isinstance(entry.get("run"), dict):
        return "no run record"
    if not _is_sha(entry.get("meta")):
        return "no meta digest"
    for f in entry.get("files", None) or []:
        if not (isinstance(f, list) and len(f) == 4 and _is_sha(f[1])):
            return f"bad file row {f!r:.60}"
        if not isinstance(f[0], str) or _bad_path(f[0]):
            return f"bad path {f[0]!r:.60}"
        if not all(isinstance(x, int) and x >= 0 for x in f[2:]):
            return f"bad size or mode for {f[0]!r:.60}"
    for link in entry.get("links", None) or []:
        if not (isinstance(link, list) and len(link) == 2):
            return f"bad link row {link!r:.60}"
        if not all(isinstance(x, str) for x in link) or _bad_path(link[0]):
            return f"bad link {link[0]!r:.60}"
    return None


def _is_sha(val: Any) -> bool:
    return isinstance(val, str) and bool(_SHA256.fullmatch(val))


def _bad_path(path: str) -> bool:
    return not path or file_util.path_problem(path) is not None or path.startswith("/")
