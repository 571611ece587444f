"""Pull runs from a remote into a runs home: what would move
(`plan_pull`), then move it (`pull`); and the remote side of
`--needed` (`pull_matching`).

Objects come into the runs home's object cache (`.objects`), each
checked against its sha256 before it becomes the object there (see
`download`): a changed object is refused, a missing one named. An
interrupted pull keeps the objects that arrived whole, so the next
pull downloads only the rest. A run is put together in `.gage-pull/`:
its meta dir unpacked from its tar (the meta objects come first), then
its files, never a link to the remote. Files that were read-only or
generated and not executable arrive read-only, linked to their object:
written there by the download (one file made per object, linked into
the cache) or, for an object the cache had, linked from it; others are
copies with their mode. The run is then verified as `gage check` would
(`run_verify.verify_files`: sealed meta against the seal, files against
the manifest). A run that does not verify is refused with one line
naming what differs; one that does gets `remote.json` (where it came
from) and is renamed into the runs home, run dir first, meta dir last:
a run is listed only when whole.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..engines import run_archive
from ..faults import fault_point
from ..lifecycle import run_verify
from ..store import hash_cache, objects, run_meta, run_records
from ..types import META_SUFFIX, RemoteError, Run, RunSelectError
from ..util import file_util
from ..util.console import Progress
from . import layout
from .backend import Backend
from .download import ObjectMismatch, download, local_error, object_error
from .push import Item, Plan

__all__ = [
    "PULL_DIR",
    "matching_entry",
    "plan_pull",
    "preview_run",
    "previews",
    "pull",
    "pull_matching",
    "select_entries",
]

PULL_DIR = ".gage-pull"


def select_entries(b: Backend, specs: list[str]) -> list[dict[str, Any]]:
    """Entries of the runs `specs` name (each an id or name, or a prefix
    of one, matching one run; or an op name, for its newest run), or
    all the remote has."""
    ids = layout.remote_ids(b)
    if specs and all(s in ids for s in specs):
        return layout.list_entries(b, set(specs))
    entries = layout.list_entries(b, ids)
    if not specs:
        return entries
    chosen: dict[str, dict] = {}
    for spec in specs:
        found = [
            e for e in entries if e["id"].startswith(spec) or e["name"].startswith(spec)
        ]
        if not found:  # an op name: its newest run
            found = [e for e in entries if e["run"].get("op") == spec][-1:]
        if len(found) != 1:
            what = "no run" if not found else f"{len(found)} runs"
            raise RunSelectError(
                f"{what} on {b.label} match '{spec}': give more of a run id or "
                f"name (see 'gage runs --remote {b.spec.name}')",
                spec=spec,
            )
        chosen[found[0]["id"]] = found[0]
    return list(chosen.values())


def _int(val: Any) -> int:
    return val if isinstance(val, int) and val >= 0 else 0


def plan_pull(home: str, b: Backend, entries: list[dict[str, Any]]) -> Plan:
    """What pulling the runs of `entries` into `home` would download."""
    plan = Plan(b.spec.name, b.spec.url)
    needed: dict[str, int] = {}
    for e in entries:
        r = e["run"]
        here = os.path.isdir(os.path.join(home, e["id"] + META_SUFFIX))
        action = "up to date" if here else "pull"
        plan.items.append(
            Item(e["id"], e["name"], r.get("op") or "?", r.get("status") or "?", action)
        )
        if here:
            continue
        plan.entries[e["id"]] = e
        needed[e["meta"]] = _int(e.get("meta_size"))
        for _path, digest, size, _mode in e["files"]:
            needed[digest] = size
    if needed:
        _drop_here(home, needed)
        plan.objects.update(needed)
    return plan


def _drop_here(home: str, needed: dict[str, int]) -> None:
    """Drop from `needed` the objects `home`'s object cache has, intact:
    only those in a fan-out dir it has are looked at (an empty cache:
    one listing)."""
    try:
        fans = set(os.listdir(os.path.join(run_meta.objects_dir(home), "sha256")))
    except (FileNotFoundError, NotADirectoryError):
        return
    maybe = [d for d in needed if d[:2] in fans]
    if not maybe:
        return
    with hash_cache.open_cache(run_meta.hash_cache_path(home)) as cache:
        for digest in maybe:
            if objects.has_object(home, digest, cache):
                del needed[digest]


def pull(
    home: str, b: Backend, plan: Plan, progress: Progress | None = None
) -> list[Run]:
    """Download the objects of `plan` and put its runs together in
    `home`: meta objects first (each run is laid out from its meta),
    then files, each written in the run that links it; the runs
    pulled."""
    os.makedirs(home, exist_ok=True)
    _clean_pull_dir(home)
    name = _names(b, plan)
    metas = {e["meta"] for e in plan.entries.values()}
    download(home, b, _only(plan.objects, metas), progress, name)
    files = _only(plan.objects, set(plan.objects) - metas)
    staged: list[_Staged] = []
    refused: list[RemoteError] = []
    try:
        dests: dict[str, str] = {}
        for run_id in sorted(plan.entries):
            try:
                staged.append(_stage(home, b, plan.entries[run_id], files, dests))
            except RemoteError as e:
                refused.append(e)  # the other runs still come
        download(home, b, files, progress, name, dests)
        if progress:
            progress.done()
        pulled = _assemble_all(home, b, staged, refused)
    finally:
        for st in staged:
            _remove_tree(st.work)
    if refused:
        refused.sort(key=lambda e: e.run or "")
        more = f" ({len(refused) - 1} more runs refused)" if len(refused) > 1 else ""
        raise RemoteError(f"{refused[0]}{more}", run=refused[0].run)
    return pulled


def _only(sizes: dict[str, int], digests: set[str]) -> dict[str, int]:
    return {d: size for d, size in sizes.items() if d in digests}


def _names(b: Backend, plan: Plan) -> Callable[[str, RemoteError], RemoteError]:
    """The one line for an object of `plan` that is missing or does not
    match: which run and file it is."""
    owner = {d: e for e in plan.entries.values() for d in _digests(e)}

    def name(digest: str, e: RemoteError) -> RemoteError:
        return object_error(b, digest, owner.get(digest), e)

    return name


def _digests(entry: dict) -> list[str]:
    return [entry["meta"]] + [f[1] for f in entry["files"]]


def matching_entry(entries: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The newest completed run of `entries` (oldest first) with inputs
    key `key`: the one rule of --needed --remote, repro --remote and its
    --dry plan."""
    found = [
        e
        for e in entries
        if e.get("input_key") == key and e["run"].get("status") == "completed"
    ]
    return found[-1] if found else None


def pull_matching(home: str, b: Backend, key: str) -> Run | None:
    """Pull the newest completed run on the remote with inputs key `key`
    (see op_inputs.find_run); None when it has none."""
    e = matching_entry(layout.list_entries(b), key)
    if e is None:
        return None
    local = os.path.join(home, e["id"])
    if not os.path.isdir(local + META_SUFFIX):
        pull(home, b, plan_pull(home, b, [e]))
    from ..home.runs import load_run

    return load_run(local)


@contextmanager
def previews(home: str, b: Backend) -> Iterator[Callable[[dict], Run]]:
    """A function that gives a stand-in for the run of an entry, put
    together in the runs home's `.gage-pull` without its files' bytes
    (removed when the block ends): what deciding a downstream op's
    inputs reads before the run is pulled (`repro --dry --remote`)."""
    work = os.path.join(home, PULL_DIR, f"plan-{os.getpid()}-{time.time_ns()}")
    try:
        yield lambda e: preview_run(b, e, work)
    finally:
        _remove_tree(work)


def preview_run(b: Backend, e: dict, work: str) -> Run:
    """The run of entry `e` under `work` as its inputs are read: its meta
    dir (the meta object, checked against its sha256 on arrival) and
    its run dir with an empty file for each of its files (every one is
    in its manifest, with its digest: push sends only runs that verify)
    and its links. RemoteError when the meta cannot be had."""
    try:
        data = b.cat(layout.object_path(b, e["meta"]))
    except RemoteError as err:
        raise object_error(b, e["meta"], e, err) from None
    actual = file_util.sha256_bytes(data)
    if actual != e["meta"]:
        mismatch = ObjectMismatch(f"its content has sha256 {actual[:12]}")
        raise object_error(b, e["meta"], e, mismatch)
    os.makedirs(work, exist_ok=True)
    try:
        run_archive.unpack_meta(data, work, e["id"])
    except run_archive.ArchiveError as err:
        raise RemoteError(f"{b.label}: {err}", run=e["id"]) from None
    run = Run(e["id"], os.path.join(work, e["id"]), e["name"])
    os.mkdir(run.run_dir)
    parents: set[str] = set()
    for path, _digest, _size, _mode in e["files"]:
        os.close(
            os.open(_dest(run, path, parents), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        )
    for path, target in e["links"]:
        os.symlink(target, _dest(run, path, parents))
    return run


# ---------------------------------------------------------------------------
# Runs


@dataclass(frozen=True)
class _Staged:
    """A run being put together in `work`: its entry, the run there, its
    files (dest, digest, mode, linked to its object) and links (dest,
    target), and the files the download writes (`dests`)."""

    e: dict
    work: str
    run: Run
    files: list[tuple[str, str, int, bool]]
    links: list[tuple[str, str]]
    written: set[str]


def _stage(
    home: str, b: Backend, e: dict, todo: dict[str, int], dests: dict
) -> _Staged:
    """Lay out the run of entry `e` in a new dir of `.gage-pull`: its
    meta dir (unpacked from its object, in the cache), its run dir and
    the dirs of its files. A file linked to its object whose object is
    to be downloaded (in `todo`, and not yet for another file) goes in
    `dests`.
    A file staged read-only, and a generated file that is not
    executable, is linked to its object (read-only, no bytes copied:
    generated files' modes are not sealed); any other file is a copy
    with its own mode."""
    work = os.path.join(home, PULL_DIR, f"{os.getpid()}-{time.time_ns()}")
    os.makedirs(work)
    try:
        with open(run_meta.object_path(home, e["meta"]), "rb") as f:
            run_archive.unpack_meta(f.read(), work, e["id"])
        run = Run(e["id"], os.path.join(work, e["id"]), e["name"])
        os.mkdir(run.run_dir)
        generated = {m.path for m in run_meta.read_manifest(run) if m.type == "g"}
        parents: set[str] = set()
        files, written = [], set()
        for path, digest, _size, mode in e["files"]:
            dest = _dest(run, path, parents)
            linked = mode == 0o444 or (path in generated and not mode & 0o111)
            files.append((dest, digest, mode, linked))
            if linked and digest in todo and digest not in dests:
                dests[digest] = dest
                written.add(dest)
        links = [(_dest(run, p, parents), target) for p, target in e["links"]]
        return _Staged(e, work, run, files, links, written)
    except BaseException as err:
        _remove_tree(work)
        if isinstance(err, run_archive.ArchiveError):
            raise RemoteError(f"{b.label}: {err}", run=e["id"]) from None
        if isinstance(err, OSError):
            raise local_error(home, err) from None
        raise


def _assemble_all(
    home: str, b: Backend, staged: list[_Staged], refused: list[RemoteError]
) -> list[Run]:
    """Put the `staged` runs together and move them in; the runs moved
    in (not those another pull brought first); a run refused goes in
    `refused`, and the others still come."""
    pulled = []
    with hash_cache.open_cache(run_meta.hash_cache_path(home)) as cache:
        for st in staged:
            try:
                run = _assemble(home, b, st, cache)
            except RemoteError as e:
                refused.append(e)
                continue
            if run is not None:
                pulled.append(run)
    return pulled


def _assemble(
    home: str, b: Backend, st: _Staged, cache: hash_cache.HashCache
) -> Run | None:
    run, e = st.run, st.e
    try:
        _place_files(home, st, cache)
        cache.flush()
        stats = file_util.snapshot_stats(run.run_dir)
        files = {p: (s.st_size, s.st_mtime_ns) for p, s in stats.items()}
        diffs = run_verify.verify_files(run, files, cache, stats=stats)
        if diffs:
            more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
            raise RemoteError(
                f"run {e['name']} ({run.id}) on {b.label} does not verify: "
                f"{diffs[0]}{more}: refused, nothing of it was pulled",
                run=run.id,
            )
        run_records.write_remote(run, _origin(b, e))
        return _move_in(home, run)
    except OSError as err:
        raise local_error(home, err) from None


def _place_files(home: str, st: _Staged, cache: hash_cache.HashCache) -> None:
    """Place the files the download did not write from the object cache
    (see `_stage`), and the links."""
    linked = []
    for dest, digest, mode, link in st.files:
        if dest in st.written:
            continue
        if link:
            linked.append((digest, dest))
            continue
        objects.place_object(home, digest, dest, cache, hardlink=False)
        os.chmod(dest, mode & 0o7777)
        hash_cache.store(cache, os.stat(dest), digest)
    objects.place_objects(home, linked, cache)
    for dest, target in st.links:
        os.symlink(target, dest)


def _dest(run: Run, path: str, parents: set[str]) -> str:
    """Where `path` goes in the run dir (its parent dirs made), refused
    when it would leave it."""
    dest = os.path.join(run.run_dir, path)
    parent = os.path.dirname(dest)
    if parent not in parents:
        file_util.make_dirs(parent)
        if not file_util.is_inside(run.run_dir, dest):
            raise RemoteError(
                f"run {run.id}: path {path!r} leaves its run dir: refused"
            )
        parents.add(parent)
    return dest


def _origin(b: Backend, e: dict) -> dict[str, Any]:
    return {
        "remote": b.spec.name,
        "url": b.spec.url,
        "pulled": run_meta.format_timestamp(run_meta.timestamp()),
        "pushed": e.get("pushed"),
        "pushed_from": e.get("pushed_from"),
    }


def _move_in(home: str, run: Run) -> Run | None:
    """Rename the run's dirs into `home`: run dir, then meta dir. None
    when the run is there already (another pull was first)."""
    dest = os.path.join(home, run.id)
    if os.path.isdir(dest + META_SUFFIX):
        return None
    if os.path.lexists(dest):
        _remove_tree(dest)  # a run dir without meta: a pull killed between renames
    os.rename(run.run_dir, dest)
    fault_point("remote-pull-move")
    try:
        os.rename(run.meta_dir, dest + META_SUFFIX)
    except OSError:
        os.rename(dest, run.run_dir)
        if os.path.isdir(dest + META_SUFFIX):
            return None
        raise
    return Run(run.id, dest, run.name)


def _clean_pull_dir(home: str, age: float = 3600.0) -> None:
    """Remove what a killed pull left (older than `age` seconds)."""
    top = os.path.join(home, PULL_DIR)
    try:
        entries = list(os.scandir(top))
    except FileNotFoundError:
        return
    now = time.time()
    for entry in entries:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > age:
                _remove_tree(entry.path)
        except OSError:
            pass


def _remove_tree(path: str) -> None:
    def onerror(func: Any, p: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o755)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o755)
            func(p)
        except OSError:
            pass

    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, _files in os.walk(path):
            for d in dirs:
                full = os.path.join(root, d)
                if (
                    not os.path.islink(full)
                    and not os.stat(full).st_mode & stat.S_IWUSR
                ):
                    os.chmod(full, 0o755)
        shutil.rmtree(path, onerror=onerror)
    elif os.path.lexists(path):
        os.unlink(path)
