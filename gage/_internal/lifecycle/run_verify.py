"""Verify a run against what was staged: its run dir and its sealed meta.

The manifest lists the digest of every staged file. The seal (`seal` in
meta, written by `seal_run` at the end of staging) lists the digest of
each meta file that decides what the run is and what it runs
(`run_meta.SEALED_META`: `proc/cmd`, `proc/env`, `opdef.json`,
`config.json`, `deps.json`, the manifest itself, ...) and the mode of
each staged file. `verify_run` (for `gage check`) and `start_run` report
a difference in either, by path; meta differences read `changed meta
proc/cmd`.

The seal makes a change evident; it is not a signature. Whoever can
rewrite the seal too can forge it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Mapping

from ..store import hash_cache, run_meta
from ..store.run_meta import RUN_RECORD_META, SEALED_META, Seal
from ..types import Run, RunError
from ..util import file_util
from ..util.console import Progress

__all__ = [
    "Difference",
    "file_digest",
    "file_mode",
    "seal_run",
    "verify_files",
    "verify_meta",
    "verify_run",
]

_READONLY = "0444"
_LINK = "link"
_BUF = 1024 * 1024


@dataclass(frozen=True)
class Difference:
    """A run dir file (or, with `meta`, a sealed meta file) that differs
    from what was staged."""

    change: str  # changed | missing | added | dangling
    path: str
    detail: str | None = None  # dangling: where it points; else what changed
    meta: bool = False

    def __str__(self) -> str:
        meta = " meta" if self.meta else ""
        what = f"{self.change}{meta} {self.path}"
        if not self.detail:
            return what
        if self.change == "dangling":
            return f"{what} -> {self.detail}"
        return f"{what} ({self.detail})"


def verify_run(
    run: Run,
    full: bool = False,
    progress: Progress | None = None,
    stats: Mapping[str, os.stat_result] | None = None,
    keep: dict[str, bytes] | None = None,
) -> list[Difference]:
    """Re-hash run dir files against the manifest and sealed meta against
    the seal: every difference, meta first, then by path.

    An empty list means the run dir holds exactly the files of its
    manifest with the same content and modes, and the meta that decides
    what runs is as it was staged. A large file whose full stat (device,
    inode, size, mtime, ctime) is what the runs home's digest cache
    recorded (at staging) is not read again; `full` reads every file.
    `progress` counts the files and bytes checked. `stats`: the run dir's
    `file_util.snapshot_stats`, when the caller took it; `keep`: see
    `verify_files`.
    """
    if not run_meta.has_timestamp(run, "staged"):
        raise RunError(
            f"Run {run.name} ({run.id}) is not staged: it has no manifest to verify"
        )
    if stats is None:
        stats = file_util.snapshot_stats(run.run_dir)
    files = {path: (st.st_size, st.st_mtime_ns) for path, st in stats.items()}
    if full:
        return verify_files(run, files, progress=progress, stats=stats)
    with digest_cache(run) as cache:
        return verify_files(run, files, cache, progress, stats, keep)


def digest_cache(run: Run) -> hash_cache.HashCache:
    """The digest cache of the run's runs home, for lookups only: a run
    moved to a dir without one gets none (and every file is read)."""
    path = run_meta.hash_cache_path(run.runs_home)
    if os.path.exists(path):
        return hash_cache.open_cache(path)
    return hash_cache.HashCache("", failed=True)


def verify_files(
    run: Run,
    files: dict[str, tuple[int, int]],
    cache: hash_cache.HashCache | None = None,
    progress: Progress | None = None,
    stats: Mapping[str, os.stat_result] | None = None,
    keep: dict[str, bytes] | None = None,
) -> list[Difference]:
    """Differences of sealed meta (`verify_meta`), then between `files` (a
    snapshot of the run dir) and the manifest, re-hashing each listed
    file and checking the mode of each staged one. With `cache`, a file
    whose stat the digest cache knows is not read. `stats`: the lstat of
    each file in the snapshot, when the caller took them. `keep`: gets
    path -> bytes of the small files read (below the digest cache's
    `MIN_SIZE`, up to `KEEP_MAX` bytes in all), hashed from those bytes:
    a caller that copies them next (a push) reads each once."""
    meta_diffs = verify_meta(run)
    if any(d.path in ("seal", "manifest") for d in meta_diffs):
        # The manifest cannot be trusted to list the files.
        return meta_diffs
    seal = _read_seal(run)
    modes = seal.modes if seal else None
    manifest = run_meta.read_manifest(run)
    staged = _staged_count(run, seal)
    diffs = []
    room = [KEEP_MAX if keep is not None else 0]
    for i, e in enumerate(manifest):
        path = f"{run.run_dir}/{e.path}"
        if e.path not in files:
            diffs.append(Difference("missing", e.path))
            continue
        st = stats.get(e.path) if stats is not None else None
        if st is None:
            try:
                st = os.lstat(path)
            except OSError:
                pass
        if st and stat.S_ISLNK(st.st_mode) and not os.path.exists(path):
            if _link_digest(path) != e.sha256:  # recorded as this link: same
                diffs.append(Difference("dangling", e.path, os.readlink(path)))
        elif (
            _kept_digest(path, e.path, st, keep, room)
            or _digest(path, cache, progress, files[e.path][0], st)
        ) != e.sha256:
            diffs.append(Difference("changed", e.path))
        elif modes is not None and i < staged:
            mode = file_mode(path, st)
            sealed = modes.get(e.path, _READONLY)
            if mode != sealed:
                detail = f"mode {mode}, staged {sealed}"
                diffs.append(Difference("changed", e.path, detail))
    listed = {e.path for e in manifest}
    diffs.extend(Difference("added", path) for path in files if path not in listed)
    return meta_diffs + sorted(diffs, key=lambda d: d.path)


KEEP_MAX = 64 * 1024 * 1024


def _kept_digest(
    path: str,
    rel: str,
    st: os.stat_result | None,
    keep: dict[str, bytes] | None,
    room: list[int],
) -> str | None:
    """The sha256 of a small regular file read whole, its bytes kept in
    `keep[rel]` while `room[0]` (bytes left) allows; None when it is not
    one (or cannot be read: `_digest` says what it is)."""
    if keep is None or st is None or not stat.S_ISREG(st.st_mode):
        return None
    if st.st_size >= min(room[0], hash_cache.MIN_SIZE):
        return None
    try:
        data = file_util.read_regular(path)
    except OSError:
        return None
    keep[rel] = data
    room[0] -= len(data)
    return file_util.sha256_bytes(data)


def _link_digest(path: str) -> str | None:
    """The digest `file_digest` records for a link that leads nowhere
    (dangling, a loop): its target text's."""
    try:
        return file_util.sha256_bytes(os.fsencode(os.readlink(path)))
    except OSError:
        return None


def _digest(
    path: str,
    cache: hash_cache.HashCache | None,
    progress: Progress | None,
    size: int,
    st: os.stat_result | None = None,
) -> str:
    digest = file_digest(path, cache, st)
    if progress:
        progress.add(size, 1)
    return digest


def _staged_count(run: Run, seal: Seal | None) -> int:
    """How many manifest entries were staged (the rest were generated)."""
    if not seal or not seal.meta.get("manifest"):
        return 0
    size = seal.meta["manifest"][1]  # type: ignore[index]
    return run_meta.read_manifest_bytes(run)[:size].count(b"\n")


def file_mode(path: str, st: os.stat_result | None = None) -> str:
    """A staged file's mode as the seal records it: `0444`, or `link`.
    `st`: the file's lstat, when the caller has it."""
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return _LINK
    return f"{stat.S_IMODE(st.st_mode):04o}"


def file_digest(
    path: str,
    cache: hash_cache.HashCache | None = None,
    lst: os.stat_result | None = None,
) -> str:
    """sha256 of a run file's content (`hash_cache.file_sha256`: known by
    its stat, not read); of its target text for a link to none (or to a
    special file); of its kind (`FIFO`, ...) for a special file, which is
    never opened. Without `cache`, read whatever is known (`--full`).
    `lst`: the file's lstat, when the caller has it."""
    try:
        if cache is None:
            return file_util.sha256_file(path)
        st = lst if lst is not None and not stat.S_ISLNK(lst.st_mode) else None
        return hash_cache.file_sha256(path, cache, st)
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


# ---------------------------------------------------------------------------
# Seal


def seal_run(run: Run, modes: dict[str, str]) -> None:
    """Record the digests of sealed meta and the modes of staged files.

    `modes`: run dir path -> mode of each staged file as `file_mode` gives it;
    only those that are not `0444` are written. Called by
    `finalize_staged_run` after the manifest is written and before the
    run is marked staged.
    """
    meta = {
        name: _meta_digest(run_meta.meta_file_path(run, name)) for name in SEALED_META
    }
    unusual = {path: mode for path, mode in modes.items() if mode != _READONLY}
    run_meta.write_seal(run, Seal(meta, unusual))


def _meta_digest(path: str, size: int | None = None) -> tuple[str, int] | None:
    """(sha256, size) of a meta file's first `size` bytes (all by default),
    None when absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path}")
        h = hashlib.sha256()
        total = 0
        while size is None or total < size:
            want = _BUF if size is None else min(_BUF, size - total)
            chunk = os.read(fd, want)
            if not chunk:
                break
            h.update(chunk)
            total += len(chunk)
        return h.hexdigest(), total
    finally:
        os.close(fd)


def verify_meta(run: Run) -> list[Difference]:
    """Sealed meta files that differ from the seal, by name.

    A staged run without a seal, or with one that cannot be read, reads
    `missing meta seal` / `changed meta seal`. A sealed file that is now
    a link, not a regular file, or writable is `changed` too (with what
    changed). The manifest is compared as staged: entries after its
    sealed bytes must all be generated files (type g). A run not started
    has none of the files its start writes (`RUN_RECORD_META`): one there
    is `added`.
    """
    try:
        seal = _read_seal(run)
    except ValueError:
        return [Difference("changed", "seal", "not a seal", meta=True)]
    if seal is None:
        return [Difference("missing", "seal", meta=True)]
    changed = _changed_type(run_meta.seal_path(run))
    if changed:
        return [Difference("changed", "seal", changed, meta=True)]
    diffs = []
    for name in sorted(set(SEALED_META) | set(seal.meta)):
        diff = _verify_meta_file(run, name, seal.meta.get(name))
        if diff:
            diffs.append(diff)
    if run_meta.read_timestamp(run, "started") is None:
        for name in RUN_RECORD_META:
            if os.path.lexists(run_meta.meta_file_path(run, name)):
                diffs.append(Difference("added", name, meta=True))
    return diffs


def _read_seal(run: Run) -> Seal | None:
    try:
        return run_meta.read_seal(run)
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(str(e)) from None


def _verify_meta_file(
    run: Run, name: str, sealed: tuple[str, int] | None
) -> Difference | None:
    path = run_meta.meta_file_path(run, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Difference("missing", name, meta=True) if sealed else None
    if sealed is None:
        return Difference("added", name, meta=True)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        return Difference("changed", name, _changed_type(path, st), meta=True)
    digest, size = sealed
    try:
        actual = _meta_digest(path, size)
    except OSError:
        return Difference("changed", name, meta=True)
    if actual != (digest, size):
        return Difference("changed", name, meta=True)
    if name == "manifest" and st.st_size > size and not _only_generated(run, size):
        return Difference("changed", name, meta=True)
    if name != "manifest" and st.st_size != size:
        return Difference("changed", name, meta=True)
    changed = _changed_type(path, st)
    if changed:
        return Difference("changed", name, changed, meta=True)
    return None


def _changed_type(path: str, st: os.stat_result | None = None) -> str | None:
    """What makes a sealed meta file not a read-only regular file, if any."""
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "a link"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_mode & 0o222:
        return f"mode {stat.S_IMODE(st.st_mode):04o}, writable"
    return None


def _only_generated(run: Run, size: int) -> bool:
    """True when the manifest lines after its staged bytes are all type g."""
    rest = run_meta.read_manifest_bytes(run)[size:]
    return all(line.startswith(b"g ") for line in rest.splitlines())
