"""A run as bytes: pack a run dir and its meta dir into a tar, unpack one.

A staged run is self-contained (see run_start), so it can travel to a
machine that shares no filesystem with this one: `pack_run` makes a tar
of `<id>/` (the run dir) and `<id>.meta/` (its meta dir), and
`unpack_run` makes them again under another directory. The way back
packs only what a run changed (`pack_paths`: the meta dir and the files
the run generated or modified).

What a tar keeps:

- regular files with their bytes, modes (a staged file stays read-only)
  and mtimes;
- symbolic links as links (a `link = true` dependency that points to a
  shared mount stays a link, and resolves where that mount exists);
- a file with several hard links is stored whole at each path (a
  hard link would not survive being unpacked alone);
- nothing else: sockets, fifos and devices are left out.

`unpack_run` trusts nothing in the bytes: every member must be a file,
dir or symlink under `<id>/` or `<id>.meta/`, with no `..`, no absolute
name and no path through a symlink; anything else is an ArchiveError and
nothing is extracted. The digest of the bytes travels beside them
(`archive_digest`), so a changed archive is refused before anything in
it is extracted.

Each archive that `pack_run` and `pack_paths` make says which format it
is in, and which gage made it (`gage.archive` and `gage.version` in a
pax global header, which any tar reader reads without knowing the rest
of the format): a gage that reads another format says so, naming both
(`check_format`), instead of failing on what it misreads (its digest,
say, which is then "changed on its way"). Format 1 is an archive with
no such header (a gage from before formats).

The archive digest is the sha256 of the archive with each regular
file's content replaced by its offset, size and own sha256: every byte
counts, once. Checking it (`check_digest`) therefore yields each file's
digest from the same pass, and `unpack_run` records those of the files
it writes in the digest cache of the runs home it unpacks into, so that
start verification finds them by stat instead of reading and hashing
the run's files a second time. A file changed before packing still
differs from its manifest: its digest is that of the bytes that came.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from typing import Iterable

from ..types import META_SUFFIX, GageError, Run

__all__ = [
    "FORMAT",
    "ArchiveError",
    "FormatError",
    "archive_format",
    "archive_digest",
    "check_digest",
    "check_format",
    "pack_meta",
    "pack_paths",
    "pack_run",
    "unpack_meta",
    "unpack_run",
]


class ArchiveError(GageError):
    """An archive of a run is not valid or does not match its digest."""


class FormatError(ArchiveError):
    """An archive in a format this gage does not read."""


FORMAT = 2
"""The run archive format this gage writes and reads (see the module doc)."""

_FORMAT_KEY = "gage.archive"
_VERSION_KEY = "gage.version"


def archive_format(data: bytes) -> tuple[int | None, str | None]:
    """The format of an archive and the version of gage that made it
    (1 and None for an archive with no header; None for no tar)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            headers = tar.pax_headers
    except tarfile.TarError:
        return None, None
    text = headers.get(_FORMAT_KEY)
    if text is None:
        return 1, None
    return (int(text) if text.isdigit() else -1), headers.get(_VERSION_KEY)


def check_format(data: bytes, reader: str = "this gage") -> None:
    """Raise FormatError naming both formats when `data` is an archive of
    another format than FORMAT (a tar that is no archive is left to the
    digest and member checks)."""
    fmt, version = archive_format(data)
    if fmt is None or fmt == FORMAT:
        return
    made = f"gage {version}" if version else "an older gage"
    raise FormatError(
        f"archive format {fmt} ({made}), {reader} reads format {FORMAT} "
        f"(gage {_version()}): install the same gage on the client and the "
        "workers; nothing was extracted or started"
    )


def _version() -> str:
    from gage import __version__

    return __version__


def _tar(buf: io.BytesIO) -> tarfile.TarFile:
    headers = {_FORMAT_KEY: str(FORMAT), _VERSION_KEY: _version()}
    return tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers=headers
    )


_DIGEST_TAG = b"gage run archive 1\n"


def archive_digest(data: bytes) -> str:
    """The digest of an archive (see the module doc)."""
    return _digests(data)[0]


def check_digest(data: bytes, digest: str, what: str) -> dict[str, str]:
    """Raise ArchiveError when `data` does not have `digest`; else the
    sha256 of each regular file in it, by member name."""
    try:
        actual, files = _digests(data)
    except ArchiveError as e:
        actual, files = f"unreadable ({e})", {}
    if actual != digest:
        raise ArchiveError(
            f"archive of {what} does not match its digest ({actual[:12]}, "
            f"expected {digest[:12]}): it was changed on its way; "
            "nothing was extracted or started"
        )
    return files


def _digests(data: bytes) -> tuple[str, dict[str, str]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
    except tarfile.TarError as e:
        raise ArchiveError(f"not a tar: {e}") from None
    view = memoryview(data)
    outer = hashlib.sha256(_DIGEST_TAG)
    files: dict[str, str] = {}
    pos = 0
    for m in members:
        if not m.isreg() or m.size == 0:
            continue
        start, end = m.offset_data, m.offset_data + m.size
        if start < pos or end > len(data):
            raise ArchiveError(f"member '{m.name}' is outside the archive")
        outer.update(view[pos:start])
        digest = hashlib.sha256(view[start:end]).hexdigest()
        outer.update(f"\0{start} {m.size} {digest}\n".encode())
        files[m.name] = digest
        pos = end
    outer.update(view[pos:])
    return outer.hexdigest(), files


def pack_run(run: Run) -> bytes:
    """The run dir and meta dir of `run` as tar bytes (`<id>/`, `<id>.meta/`)."""
    buf = io.BytesIO()
    with _tar(buf) as tar:
        for root, top in ((run.run_dir, run.id), (run.meta_dir, run.id + META_SUFFIX)):
            _add_tree(tar, root, top)
    return buf.getvalue()


def pack_paths(run: Run, paths: Iterable[str]) -> bytes:
    """The meta dir of `run` and `paths` (relative to its run dir) as tar
    bytes: what a run sends back after it ran."""
    buf = io.BytesIO()
    with _tar(buf) as tar:
        _add_tree(tar, run.meta_dir, run.id + META_SUFFIX)
        _add_dir(tar, run.run_dir, run.id)
        for path in sorted(set(paths)):
            full = os.path.join(run.run_dir, path)
            if os.path.lexists(full):
                _add(tar, full, f"{run.id}/{path}")
    return buf.getvalue()


def pack_meta(run: Run, skip: Iterable[str] = ()) -> bytes:
    """The meta dir of `run` as tar bytes (`<id>.meta/`), without the
    meta files named in `skip` (paths relative to the meta dir): what a
    remote keeps of a run besides its files. The same meta packs to the
    same bytes: a dir's mtime is not kept."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, run.meta_dir, run.id + META_SUFFIX, set(skip), dir_mtime=False)
    return buf.getvalue()


def unpack_meta(data: bytes, dest: str, run_id: str) -> str:
    """Extract an archive of the meta dir of run `run_id` (`pack_meta`)
    into `dest`; the meta dir there. Members are checked as in
    `unpack_run`, and must all be under `<id>.meta/`."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            _check_members(members, run_id)
            for m in members:
                if m.name.split("/")[0] != run_id + META_SUFFIX:
                    raise ArchiveError(
                        f"meta archive of run {run_id} holds '{m.name}': refused",
                        run=run_id,
                        path=m.name,
                    )
            if hasattr(tarfile, "fully_trusted_filter"):
                tar.extractall(dest, members, filter="fully_trusted")
            else:  # Python < 3.10.12: members were checked above
                tar.extractall(dest, members)
    except tarfile.TarError as e:
        raise ArchiveError(f"meta archive of run {run_id} is not a tar: {e}") from None
    return os.path.join(dest, run_id + META_SUFFIX)


def _add_tree(
    tar: tarfile.TarFile,
    root: str,
    top: str,
    skip: set[str] | None = None,
    dir_mtime: bool = True,
) -> None:
    _add_dir(tar, root, top, dir_mtime)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        base = top if rel == "." else f"{top}/{rel}"
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                _add(tar, full, f"{base}/{name}")
            else:
                _add_dir(tar, full, f"{base}/{name}", dir_mtime)
        for name in sorted(filenames):
            if skip and (name if rel == "." else f"{rel}/{name}") in skip:
                continue
            _add(tar, os.path.join(dirpath, name), f"{base}/{name}")


def _add_dir(tar: tarfile.TarFile, path: str, name: str, mtime: bool = True) -> None:
    st = os.lstat(path)
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime) if mtime else 0
    tar.addfile(info)


def _add(tar: tarfile.TarFile, path: str, name: str) -> None:
    st = os.lstat(path)
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        # A hard-linked file is stored whole (materialised) at each path.
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        with open(path, "rb") as f:
            tar.addfile(info, f)


def unpack_run(
    data: bytes, dest: str, run_id: str, digests: dict[str, str] | None = None
) -> Run:
    """Extract an archive of run `run_id` into `dest`; the run there.

    Every member is checked before anything is written (see the module
    doc); the run's identity must match `run_id`. `digests` (from
    `check_digest`) are recorded for the run's files in the digest cache
    of `dest` as their runs home.
    """
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        try:
            members = tar.getmembers()
        except tarfile.TarError as e:
            raise ArchiveError(f"archive of run {run_id} is not a tar: {e}") from None
        _check_members(members, run_id)
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(dest, members, filter="fully_trusted")
        else:  # Python < 3.10.12: members were checked above
            tar.extractall(dest, members)
    if digests:
        _record_digests(dest, run_id, members, digests)
    from ..home.runs import load_run

    run = load_run(os.path.join(dest, run_id))
    if run.id != run_id:
        raise ArchiveError(
            f"archive of run {run_id} holds run {run.id}: nothing was started",
            run=run_id,
        )
    return run


def _record_digests(
    dest: str, run_id: str, members: list[tarfile.TarInfo], digests: dict[str, str]
) -> None:
    from ..store import hash_cache, run_meta

    prefix = run_id + "/"
    with hash_cache.open_cache(run_meta.hash_cache_path(dest)) as cache:
        for m in members:
            digest = digests.get(m.name)
            if digest and m.name.startswith(prefix) and m.size >= hash_cache.MIN_SIZE:
                st = os.lstat(os.path.join(dest, m.name))
                hash_cache.store(cache, st, digest, extracted=True)


def _check_members(members: list[tarfile.TarInfo], run_id: str) -> None:
    tops = (run_id, run_id + META_SUFFIX)
    links = {m.name for m in members if m.issym()}
    for m in members:
        parts = m.name.split("/")
        bad = (
            m.name.startswith("/")
            or parts[0] not in tops
            or any(p in ("", ".", "..") for p in parts)
            or not (m.isreg() or m.isdir() or m.issym())
        )
        if not bad:
            bad = any("/".join(parts[:i]) in links for i in range(1, len(parts)))
        if bad:
            raise ArchiveError(
                f"archive of run {run_id} has a member that may not be "
                f"extracted: '{m.name}' (only files, dirs and links under "
                f"{run_id}/ and {run_id}{META_SUFFIX}/); nothing was extracted",
                run=run_id,
                path=m.name,
            )
