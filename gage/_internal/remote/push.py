"""Push runs to a remote: what would move (`plan_push`), then move it
(`push`).

A run is pushed when it has ended (completed, error, terminated) and it
verifies: its files are those of its manifest and its sealed meta is as
staged (`run_verify.verify_run`, which reads only files whose stat the
digest cache does not know). Its meta dir goes as one object (a tar,
`run_archive.pack_meta`, without `remote.json`), each run dir file as
an object named by the sha256 its manifest gives. Objects the remote has
are not sent; a run whose entry there has the same meta is up to date
(a second push sends nothing). Entries are written after every object
(see `layout`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

from ..engines import run_archive
from ..faults import fault_point
from ..home import runs as runs_mod
from ..lifecycle import run_verify
from ..store import run_meta, run_records
from ..types import RemoteError, Run, RunError
from ..util import file_util
from ..util.console import Progress
from . import layout
from .backend import Backend, run_all, stale_temp

__all__ = ["Item", "Plan", "plan_push", "push"]

PUSHABLE = ("completed", "error", "terminated")


@dataclass(frozen=True)
class Item:
    """A run in a push or pull: what happens to it (`push`, `pull`, `up
    to date`, or why it is skipped)."""

    id: str
    name: str
    op: str
    status: str
    action: str

    def data(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class Plan:
    """What a push or pull moves: runs, and objects (digest -> size)."""

    remote: str
    url: str
    items: list[Item] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)
    # push: digest -> local path or bytes; run id -> entry to write
    sources: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    # push: temp files a killed push of this host left (removed after)
    stale: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(self.objects.values())

    def moving(self) -> list[Item]:
        return [i for i in self.items if i.action in ("push", "pull")]

    def data(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "url": self.url,
            "runs": [i.data() for i in self.items],
            "objects": len(self.objects),
            "bytes": self.size,
        }


def plan_push(b: Backend, runs: list[Run], force: bool = False) -> Plan:
    """What pushing `runs` to `b` would send. RemoteError when a run to
    send does not verify (nothing is sent). `force`: send every run and
    every object again, whatever the remote has (to repair a remote
    whose objects were changed or removed). Runs are read before the
    remote is asked anything."""
    local: list[tuple[Run, str, str, bytes | None]] = []
    for run in runs:
        status = runs_mod.run_status(run)
        op = runs_mod.op_name(run) or "?"
        meta = None
        if status in PUSHABLE:
            meta = run_archive.pack_meta(run, skip=[run_records.REMOTE_META])
        local.append((run, op, status, meta))
    plan = Plan(b.spec.name, b.spec.url)
    same = set() if force else _up_to_date(b, local)
    sizes: dict[str, int] = {}
    for run, op, status, meta in local:
        if meta is None:
            plan.items.append(Item(run.id, run.name, op, status, f"skipped ({status})"))
            continue
        if run.id in same:
            plan.items.append(Item(run.id, run.name, op, status, "up to date"))
            continue
        stats, kept = _verify(run, b)
        entry, files = _entry(
            run, hashlib.sha256(meta).hexdigest(), status, stats, kept
        )
        entry["meta_size"] = len(meta)
        plan.items.append(Item(run.id, run.name, op, status, "push"))
        plan.entries[run.id] = entry
        plan.sources[entry["meta"]] = meta
        plan.sources.update(files)
        sizes[entry["meta"]] = len(meta)
        sizes.update((digest, size) for _path, digest, size, _mode in entry["files"])
    _drop_present(b, plan, sizes, force)
    return plan


def _up_to_date(b: Backend, local: list[tuple]) -> set[str]:
    """Ids of the runs whose entry on the remote has their meta (the
    entries read at once)."""
    on_remote = layout.remote_ids(b)
    digests = {
        run.id: hashlib.sha256(meta).hexdigest()
        for run, _op, _status, meta in local
        if meta is not None and run.id in on_remote
    }
    same: set[str] = set()

    def check(run_id: str) -> bool:
        return _same_meta(b, run_id, digests[run_id])

    def done(run_id: str, ok: bool) -> None:
        if ok:
            same.add(run_id)

    run_all(b.jobs, check, sorted(digests), done)
    return same


def _same_meta(b: Backend, run_id: str, digest: str) -> bool:
    try:
        return layout.read_entry(b, run_id)["meta"] == digest
    except RemoteError:
        return False  # an entry that is not valid is replaced


def _verify(run: Run, b: Backend) -> tuple[dict[str, os.stat_result], dict[str, bytes]]:
    """The run dir's lstats and the bytes of its small files, read once
    to verify them and kept to be sent (`run_verify.verify_files`);
    RemoteError when the run does not verify."""
    stats = file_util.snapshot_stats(run.run_dir)
    kept: dict[str, bytes] = {}
    try:
        diffs = run_verify.verify_run(run, stats=stats, keep=kept)
    except RunError as e:
        raise RemoteError(f"cannot push run {run.name} ({run.id}): {e}") from None
    if diffs:
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise RemoteError(
            f"run {run.name} ({run.id}) does not verify: {diffs[0]}{more}: "
            f"see 'gage check {run.name}'; nothing was pushed to {b.label}",
            run=run.id,
        )
    return stats, kept


def _entry(
    run: Run,
    meta_digest: str,
    status: str,
    stats: dict[str, os.stat_result],
    kept: dict[str, bytes],
) -> tuple[dict, dict[str, str | bytes]]:
    """The entry of `run` and its files' objects (digest -> the bytes
    verified, else the path)."""
    digests = {e.path: e.sha256 for e in run_meta.read_manifest(run)}
    files, links = [], []
    sources: dict[str, str | bytes] = {}
    for path, st in sorted(stats.items()):
        full = os.path.join(run.run_dir, path)
        if stat.S_ISLNK(st.st_mode):
            links.append([path, os.readlink(full)])
        elif stat.S_ISREG(st.st_mode) and path in digests:
            digest = digests[path]
            files.append([path, digest, st.st_size, stat.S_IMODE(st.st_mode)])
            sources[digest] = kept.get(path, full)
    record = runs_mod.run_record(run, status)
    record.pop("run_dir", None)
    entry = {
        "schema": layout.ENTRY_SCHEMA,
        "id": run.id,
        "name": run.name,
        "run": record,
        "input_key": run_meta.read_input_key(run),
        "meta": meta_digest,
        "files": files,
        "links": links,
        "pushed": run_meta.format_timestamp(run_meta.timestamp()),
        "pushed_from": socket.gethostname(),
    }
    return entry, sources


def _drop_present(
    b: Backend, plan: Plan, sizes: dict[str, int], force: bool = False
) -> None:
    """Keep in `plan.sources` only the objects the remote lacks (all
    with `force`), with their sizes in `plan.objects`."""
    needed = set(plan.sources)
    if not needed:
        return
    for digest in set() if force else _present(b, needed, plan.stale):
        del plan.sources[digest]
    for digest in plan.sources:
        plan.objects[digest] = sizes[digest]


def _present(b: Backend, needed: set[str], stale: list[str]) -> set[str]:
    """Which of `needed` the remote has: a look per object when they are
    few, else one listing per fan-out dir (`objects/sha256/ab`) that
    holds any of them and exists (an empty remote: one listing). Temp
    files there that a killed push of this host left go in `stale`."""
    present: set[str] = set()
    if len(needed) <= 16:

        def check(d: str) -> None:
            if b.exists(layout.object_path(b, d)):
                present.add(d)

        run_all(b.jobs, check, sorted(needed))
        return present

    def listing(fan: str) -> list[str]:
        return b.names(b.path("objects", "sha256", fan))

    def got(fan: str, names: list[str]) -> None:
        present.update(fan + name for name in names)
        stale.extend(
            b.path("objects", "sha256", fan, name) for name in names if stale_temp(name)
        )

    fans = set(b.names(b.path("objects", "sha256")))
    run_all(b.jobs, listing, sorted({d[:2] for d in needed} & fans), got)
    return present & needed


def push(b: Backend, plan: Plan, progress: Progress | None = None) -> Plan:
    """Send what `plan` says: objects first, then entries."""
    if b.pipelined:
        return _push_pipelined(b, plan, progress)

    def send(digest: str) -> None:
        src = plan.sources[digest]
        dest = layout.object_path(b, digest)
        if isinstance(src, bytes):
            b.put_bytes(src, dest)
        else:
            b.put_file(src, dest)
        fault_point("remote-push")

    def sent(digest: str, _result: None) -> None:
        if progress:
            progress.add(plan.objects[digest], 1)

    run_all(b.jobs, send, sorted(plan.sources), sent)
    import json

    def write(run_id: str) -> None:
        data = json.dumps(plan.entries[run_id], sort_keys=True).encode()
        b.put_bytes(data, layout.entry_path(b, run_id))

    run_all(b.jobs, write, sorted(plan.entries))
    run_all(b.jobs, b.remove_quietly, plan.stale)
    if progress:
        progress.done()
    return plan


def _push_pipelined(b: Backend, plan: Plan, progress: Progress | None) -> Plan:
    """`push` in one call per phase (see `sftp`): objects, then entries."""
    import json

    from . import sftp

    digests = {layout.object_path(b, d): d for d in plan.sources}

    def sent(path: str) -> None:
        if progress:
            progress.add(plan.objects[digests[path]], 1)
        fault_point("remote-push")

    sftp.put_all(b, [(p, plan.sources[d]) for p, d in sorted(digests.items())], sent)
    entries = [
        (
            layout.entry_path(b, run_id),
            json.dumps(plan.entries[run_id], sort_keys=True).encode(),
        )
        for run_id in sorted(plan.entries)
    ]
    sftp.put_all(b, entries)
    run_all(b.jobs, b.remove_quietly, plan.stale)
    if progress:
        progress.done()
    return plan
