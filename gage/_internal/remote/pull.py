"""Pull runs from a remote into a runs home: what would move
(`plan_pull`), then move it (`pull`); and the remote side of
`--needed` (`pull_matching`).

Objects come into the runs home's object cache (`.objects`), each
downloaded to a temp name, hashed, and renamed in place only when its
sha256 is its name: a changed object is refused, a missing one named.
An interrupted pull keeps the objects that arrived whole, so the next
pull downloads only the rest. A run is put together in `.gage-pull/`
(its meta dir unpacked from its tar, its files placed from the object
cache: hardlink, reflink or copy, never a link to the remote; files
that were read-only or generated and not executable arrive read-only,
linked to their object, others as copies with their mode), then
verified as `gage check` would (`run_verify.verify_files`: sealed meta
against the seal, files against the manifest). A run that does not
verify is refused with one line naming what differs; one that does gets
`remote.json` (where it came from) and is renamed into the runs home,
run dir first, meta dir last: a run is listed only when whole.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

from ..engines import run_archive
from ..faults import fault_point
from ..lifecycle import run_verify
from ..store import hash_cache, objects, run_meta, run_records
from ..types import META_SUFFIX, RemoteError, Run, RunSelectError
from ..util import file_util
from ..util.console import Progress
from . import layout
from .backend import Backend, run_all
from .push import Item, Plan

__all__ = [
    "PULL_DIR",
    "ObjectMismatch",
    "download",
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
    """Download the objects of `plan`, then put its runs together in
    `home`; the runs pulled."""
    os.makedirs(home, exist_ok=True)
    _clean_pull_dir(home)
    _download(home, b, plan, progress)
    pulled, refused = [], []
    with hash_cache.open_cache(run_meta.hash_cache_path(home)) as cache:
        for run_id in sorted(plan.entries):
            try:
                run = _assemble(home, b, plan.entries[run_id], cache)
            except RemoteError as e:
                refused.append(e)  # the other runs still come
                continue
            if run is not None:
                pulled.append(run)
    if refused:
        more = f" ({len(refused) - 1} more runs refused)" if len(refused) > 1 else ""
        raise RemoteError(f"{refused[0]}{more}", run=refused[0].run)
    return pulled


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
        raise _object_error(b, e["meta"], e, err) from None
    actual = file_util.sha256_bytes(data)
    if actual != e["meta"]:
        mismatch = ObjectMismatch(f"its content has sha256 {actual[:12]}")
        raise _object_error(b, e["meta"], e, mismatch)
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
# Objects


def _download(home: str, b: Backend, plan: Plan, progress: Progress | None) -> None:
    owner = {d: e for e in plan.entries.values() for d in _digests(e)}

    def name(digest: str, e: RemoteError) -> RemoteError:
        return _object_error(b, digest, owner.get(digest), e)

    download(home, b, plan.objects, progress, name)


def download(
    home: str,
    b: Backend,
    sizes: Mapping[str, int | None],
    progress: Progress | None = None,
    name: Any = None,
) -> None:
    """Download the objects `sizes` names (digest -> size, None when not
    known) into the object cache of `home`, each verified against its
    sha256 on arrival: a small one hashed from the bytes read (read
    once, nothing written when they differ), a big one as it is written
    or from the file. `name(digest, error)`: the RemoteError to raise
    for an object that is missing or does not match (else the error as
    it is)."""
    tmp_dir = run_meta.objects_tmp_dir(home)
    os.makedirs(tmp_dir, exist_ok=True)
    prefix = f"pull-{os.getpid()}-{time.time_ns()}-"
    count = itertools.count()

    def fetch(digest: str, data: bytes | None = None) -> os.stat_result:
        tmp = f"{tmp_dir}/{prefix}{next(count)}"
        path = layout.object_path(b, digest)
        try:
            if data is None:
                data = b.read_small(path, sizes[digest])
            if data is not None:
                st = _adopt_bytes(home, tmp, digest, data)
            else:
                st = _adopt(home, tmp, digest, b.get_file(path, tmp))
            fault_point("remote-pull")
            return st
        except RemoteError as e:
            _discard(tmp)
            raise (name(digest, e) if name else e) from None
        except OSError as e:
            _discard(tmp)
            raise _local_error(home, e) from None
        except BaseException:
            _discard(tmp)
            raise

    with hash_cache.open_cache(run_meta.hash_cache_path(home)) as cache:

        def done(digest: str, st: os.stat_result) -> None:
            hash_cache.store(cache, st, digest, extracted=True)
            if progress:
                progress.add(st.st_size, 1)

        rest = sorted(sizes)
        if b.pipelined:
            rest = _cat_small(b, sizes, fetch, done, name)
        run_all(b.jobs, fetch, rest, done)
    if progress:
        progress.done()


def _cat_small(
    b: Backend, sizes: Mapping[str, int | None], fetch: Any, done: Any, name: Any
) -> list[str]:
    """Read the objects known to be small in one call (`sftp.cat_all`),
    each landed by `fetch(digest, data)` as it arrives; the others."""
    from .backend import SMALL
    from .sftp import cat_all

    small = {
        layout.object_path(b, d): d
        for d in sorted(sizes)
        if 0 < (sizes[d] or 0) <= SMALL
    }

    def got(path: str, data: bytes) -> None:
        done(small[path], fetch(small[path], data))

    def named(path: str, e: BaseException) -> BaseException:
        if name and isinstance(e, RemoteError) and path in small:
            return name(small[path], e)
        return e

    cat_all(b, {p: sizes[d] or 0 for p, d in small.items()}, got, named)
    return sorted(set(sizes) - set(small.values()))


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


_REPAIR = "'gage push --force {}' from a runs home that has it repairs it"


class ObjectMismatch(RemoteError):
    """An object whose bytes are not its sha256 (refused on arrival)."""


def _adopt(
    home: str, tmp: str, digest: str, actual: str | None = None
) -> os.stat_result:
    """Make the downloaded `tmp` the object for `digest` when it is;
    the object's stat. `actual`: the sha256 of `tmp`'s bytes when the
    download computed it as it wrote them (else `tmp` is read)."""
    actual = actual or file_util.sha256_file(tmp)
    if actual != digest:
        raise ObjectMismatch(f"its content has sha256 {actual[:12]}")
    os.chmod(tmp, 0o444)
    then = time.time() - 60  # earlier than now: see hash_cache.store
    os.utime(tmp, (then, then))
    return _rename_object(home, tmp, digest)


def _adopt_bytes(home: str, tmp: str, digest: str, data: bytes) -> os.stat_result:
    """The object for `digest` written from `data` when it is (checked
    before anything is written): a new read-only file `tmp` (open,
    write, utime, close), renamed in place; the object's stat."""
    actual = file_util.sha256_bytes(data)
    if actual != digest:
        raise ObjectMismatch(f"its content has sha256 {actual[:12]}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o444)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        then = time.time_ns() - 60 * 10**9  # earlier than now: hash_cache.store
        os.utime(fd, ns=(then, then))
    finally:
        os.close(fd)
    return _rename_object(home, tmp, digest)


def _rename_object(home: str, tmp: str, digest: str) -> os.stat_result:
    dest = run_meta.object_path(home, digest)
    parent = os.path.dirname(dest)
    if parent not in _made:
        os.makedirs(parent, exist_ok=True)
        _made.add(parent)
    os.replace(tmp, dest)
    return os.stat(dest)


_made: set[str] = set()  # object cache dirs made by this process


def _digests(entry: dict) -> list[str]:
    return [entry["meta"]] + [f[1] for f in entry["files"]]


def _object_error(
    b: Backend, digest: str, entry: dict | None, e: RemoteError
) -> RemoteError:
    what = "meta" if entry and digest == entry["meta"] else None
    if entry and not what:
        what = next((f[0] for f in entry["files"] if f[1] == digest), None)
    run = f"run {entry['name']} ({entry['id']})" if entry else "a run"
    of = f"object {digest[:12]} ({what}) of {run}"
    if isinstance(e, ObjectMismatch):
        return RemoteError(
            f"{b.label}: {of} does not match its sha256 ({e}): refused; "
            f"{_REPAIR.format(entry['name'] if entry else 'RUN')}",
            run=entry["id"] if entry else None,
        )
    if "not found" in str(e):
        return RemoteError(
            f"{b.label}: {of} is missing: "
            f"{_REPAIR.format(entry['name'] if entry else 'RUN')}",
            run=entry["id"] if entry else None,
        )
    return e


def _local_error(home: str, e: OSError) -> RemoteError:
    import errno

    if e.errno == errno.ENOSPC:
        return RemoteError(
            f"no space left in runs home {home}: free space and pull again"
        )
    return RemoteError(f"cannot write in runs home {home}: {e.strerror}: {e.filename}")


# ---------------------------------------------------------------------------
# Runs


def _assemble(
    home: str, b: Backend, e: dict, cache: hash_cache.HashCache
) -> Run | None:
    run_id = e["id"]
    work = os.path.join(home, PULL_DIR, f"{os.getpid()}-{time.time_ns()}")
    os.makedirs(work)
    try:
        with open(run_meta.object_path(home, e["meta"]), "rb") as f:
            run_archive.unpack_meta(f.read(), work, run_id)
        run = Run(run_id, os.path.join(work, run_id), e["name"])
        os.mkdir(run.run_dir)
        _place_files(home, run, e, cache)
        cache.flush()
        stats = file_util.snapshot_stats(run.run_dir)
        files = {p: (st.st_size, st.st_mtime_ns) for p, st in stats.items()}
        diffs = run_verify.verify_files(run, files, cache, stats=stats)
        if diffs:
            more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
            raise RemoteError(
                f"run {e['name']} ({run_id}) on {b.label} does not verify: "
                f"{diffs[0]}{more}: refused, nothing of it was pulled",
                run=run_id,
            )
        run_records.write_remote(run, _origin(b, e))
        return _move_in(home, run)
    except run_archive.ArchiveError as err:
        raise RemoteError(f"{b.label}: {err}", run=run_id) from None
    except OSError as err:
        raise _local_error(home, err) from None
    finally:
        _remove_tree(work)


def _place_files(home: str, run: Run, e: dict, cache: hash_cache.HashCache) -> None:
    """Place the run's files from the object cache. A file staged
    read-only, and a generated file that is not executable, is linked
    to its object (read-only, no bytes copied: generated files' modes
    are not sealed); any other file is a copy with its own mode."""
    generated = {m.path for m in run_meta.read_manifest(run) if m.type == "g"}
    parents: set[str] = set()
    linked = []
    for path, digest, _size, mode in e["files"]:
        dest = _dest(run, path, parents)
        if mode == 0o444 or (path in generated and not mode & 0o111):
            linked.append((digest, dest))
            continue
        objects.place_object(home, digest, dest, cache, hardlink=False)
        os.chmod(dest, mode & 0o7777)
        hash_cache.store(cache, os.stat(dest), digest)
    objects.place_objects(home, linked, cache)
    for path, target in e["links"]:
        os.symlink(target, _dest(run, path, parents))


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
