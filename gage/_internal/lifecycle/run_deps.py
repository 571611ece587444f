"""Resolve an op's dependencies into a run dir, with provenance.

`depends` in an op def is a table or a list of tables:

    depends = [
      { type = "project-files", files = "data/raw.csv", link = true },
      { type = "run-files", run-select = "prepare", files = "prepared/**" },
    ]

Types:

- `project-files`: `files` (a glob or a list of globs, relative to the
  project dir) names project files or directories (a directory brings
  every file under it).
- `run-files`: `run-select` chooses an upstream run: an op name selects
  the latest completed run of that op; otherwise a run id or name prefix
  selects that run, which must be completed. `files` (globs relative to
  the upstream run dir) is optional: without it, every file the upstream
  run produced (files in its run dir that staging did not put there).

Options for both:

- `target-path`: a dir in the run dir to place the files under. A file
  keeps its path relative to its root (project or upstream run dir), so
  `data/raw.csv` with `target-path = "inputs"` is `inputs/data/raw.csv`.
- `link = true`: a symlink to the file instead of a copy (for large
  data). A linked run is tied to this machine; the runner log says so.

Without `link`, files come from the runs home's object cache
(`objects`): a file is read once, when it is new, and placed by
reflink, else hardlink (shared, read-only), else copy. The project's
file itself is never linked or chmodded.
- `sha256`: a pin. A string pins the dependency's only file; a table
  pins files by their path relative to the root
  (`sha256 = { "data/raw.csv" = "..." }`). A mismatch fails staging.
  A pinned project file missing from the project is placed from the
  object cache, where a remote can fetch it (see `dep_pins`).

Patterns are gage's one pattern language (`util.patterns`: gitignore
globs anchored at the root). A pattern or target path that is absolute
or uses `..`, and a symlink that resolves outside its root, is refused.
A folder is walked once and its files' stats kept (`dep_match`): rows
of the digest cache are read, objects added and pinned, and files
placed in batches, so a folder of many files that did not change is
placed without a read.

Staging resolves every dependency (and checks every pin) before it
places any file, then records `deps.json` in meta: per dependency its
spec, its source (the project dir, or the upstream run id, name, op and
the sha256 of its manifest) and every file placed with its sha256 and
how it was placed (`placed`: reflink, hardlink, copy or symlink; the
`log/files` line reads `a d:hardlink ...`).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..faults import fault_point
from ..home.runs import select_run
from ..project.dep_spec import check_dependencies, dependency_where
from ..store import hash_cache, objects, pins
from ..store.run_meta import (
    FileEvent,
    append_files_log,
    hash_cache_path,
    manifest_path,
    read_config,
    read_manifest,
    read_opdef,
    read_opref,
    runner_log,
    write_deps,
)
from ..types import DependencyError, OpDef, Run, RunSelectError
from ..util import console, file_util
from . import dep_pins, run_lineage
from .dep_match import match_files

__all__ = [
    "DepFile",
    "check_config_deps",
    "check_config_files",
    "ResolvedDep",
    "preview_dependencies",
    "folder_scope",
    "resolve_deps",
]


@dataclass(frozen=True)
class DepFile:
    """A dependency file: `source` relative to its root, `path` in the run
    dir; `st` its stat (links followed) when the walk that found it took
    one (staging and `--needed` then take none)."""

    source: str
    path: str
    st: os.stat_result | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ResolvedDep:
    """A dependency resolved to a root and files, nothing copied yet.

    `source` is what deps.json records as the source: for project files
    `{"type": "project", "dir": ...}`, for run files `{"type": "run",
    "id": ..., "name": ..., "op": ..., "manifest_sha256": ...}`.
    """

    spec: dict[str, Any]
    source: dict[str, Any]
    root: str
    link: bool
    files: list[DepFile]
    why: str = ""
    folders: tuple[str, ...] = ()
    """Folders (relative to `root`) walked whole with no link met: every
    regular file under them is in `files`."""
    absent: tuple[dep_pins.Absent, ...] = ()  # pinned, not in the project


# ---------------------------------------------------------------------------
# Preview


def preview_dependencies(
    runs_home: str,
    project_dir: str,
    opdef: OpDef,
    upstream: Mapping[str, Run] | None = None,
    stats: bool = True,
) -> list[ResolvedDep]:
    """Which source (project or upstream run) and files each dependency uses.

    `upstream` maps an op name in a `run-select` to the exact run to use
    (pins: `--upstream OP=RUN`, or the runs `gage repro` just made);
    the other ops' runs follow the lineage of the chosen ones, else are
    the latest completed (`run_lineage.choose`; `why` says which).
    Nothing is copied or hashed; raises DependencyError as staging would
    (an invalid spec, no upstream run, runs that disagree, missing file,
    escaping path). `stats`: take each file's stat (`DepFile.st`);
    without, a folder's files are known from its listing alone.
    """
    check_dependencies(opdef)
    chosen = run_lineage.choose(runs_home, opdef, upstream)
    return [
        _resolve(runs_home, project_dir, opdef, i, spec, chosen, stats)
        for i, spec in enumerate(opdef.get_dependencies())
    ]


def _resolve(
    runs_home: str,
    project_dir: str,
    opdef: OpDef,
    i: int,
    spec: dict[str, Any],
    chosen: Mapping[str, run_lineage.Choice],
    stats: bool = True,
) -> ResolvedDep:
    where = dependency_where(opdef.name, i, spec)
    why = ""
    target = _target_path(spec)
    walked: list[str] = []
    absent: tuple[dep_pins.Absent, ...] = ()
    if spec["type"] == "project-files":
        root = os.path.abspath(project_dir)
        source = {"type": "project", "dir": root}
        globs, absent = dep_pins.split_absent(root, _patterns(spec), spec, where)
        relpaths = (
            match_files(root, globs, where, "project", stats, walked) if globs else {}
        )
        if absent:
            relpaths = dict(
                sorted({**relpaths, **{a.source: None for a in absent}}.items())
            )
    else:
        choice = chosen.get(spec["run-select"])
        if choice is not None:
            up, why = choice.run, choice.describe()
        else:
            up = _select_run(runs_home, spec["run-select"], where)
        root = up.run_dir
        source = _run_source(up)
        if "files" in spec:
            relpaths = match_files(root, _patterns(spec), where, f"run {up.id}", stats)
        else:
            relpaths = dict.fromkeys(_generated_files(up))
    files = [DepFile(rel, _join(target, rel), st) for rel, st in relpaths.items()]
    link = bool(spec.get("link"))
    return ResolvedDep(
        dict(spec), source, root, link, files, why, tuple(walked), absent
    )


def _patterns(spec: dict[str, Any]) -> list[str]:
    val = spec["files"]
    return [val] if isinstance(val, str) else list(val)


def _target_path(spec: dict[str, Any]) -> str:
    val = spec.get("target-path", "")
    return "" if val in ("", ".") else os.path.normpath(val)


def _join(target: str, rel: str) -> str:
    return os.path.join(target, rel) if target else rel


# ---------------------------------------------------------------------------
# Upstream runs


def _select_run(runs_home: str, select: str, where: str) -> Run:
    """The newest completed run that `select` names (see runs.select_run)."""
    try:
        return select_run(runs_home, select, status="completed", what="run-select")
    except RunSelectError as e:
        hint = (
            ": a run-files dependency needs a run that completed successfully"
            if "none completed" in str(e)
            else ""
        )
        raise DependencyError(f"{where}: {e}{hint}", spec=select) from None


def _run_source(run: Run) -> dict[str, Any]:
    try:
        manifest_digest = file_util.sha256_file(manifest_path(run))
    except FileNotFoundError:
        manifest_digest = None
    opref = read_opref(run)
    return {
        "type": "run",
        "id": run.id,
        "name": run.name,
        "op": opref.op_name,
        "manifest_sha256": manifest_digest,
    }


def _generated_files(run: Run) -> list[str]:
    """Files in the run dir that staging did not put there.

    The manifest lists staged files (types s, d, r) and, once the run has
    finished, what it generated (type g).
    """
    staged = {e.path for e in read_manifest(run) if e.type in ("s", "d", "r")}
    snapshot = file_util.snapshot_dir(run.run_dir)
    return sorted(path for path in snapshot if path not in staged)


# ---------------------------------------------------------------------------
# Config files


def check_config_deps(
    runs_home: str,
    project_dir: str,
    opdef: OpDef,
    upstream: Mapping[str, Run] | None = None,
) -> None:
    """Refuse, before anything is staged, a dependency that would be
    placed where one of the op's config files is.

    Config is applied to the staged source code before dependencies are
    placed: a dependency in the same place would replace the patched
    file, and the run would not see the config its record shows.
    Staging checks it again with the staged files.
    """
    if not opdef.get_config() or not opdef.get_dependencies():
        return
    resolved = preview_dependencies(runs_home, project_dir, opdef, upstream)
    check_config_files(resolved, project_dir, opdef)


def check_config_files(
    resolved: list[ResolvedDep], project_dir: str, opdef: OpDef
) -> None:
    """`check_config_deps` with the dependencies already resolved."""
    if opdef.get_config():
        _check_config_files(resolved, _config_files(project_dir, opdef), opdef)


def _config_files(root: str, opdef: OpDef) -> set[str]:
    from ..config import run_config

    return run_config.config_files(root, opdef)


def _check_config_files(
    resolved: list[ResolvedDep], config_files: set[str], opdef: OpDef
) -> None:
    for i, dep in enumerate(resolved):
        for f in dep.files:
            path = os.path.normpath(f.path).replace(os.sep, "/")
            if path in config_files:
                raise DependencyError(
                    f"{dependency_where(opdef.name, i, dep.spec)}: '{path}' is also a config "
                    f"file of op '{opdef.name}': the dependency would replace "
                    "the file config is applied to; remove it from 'config' "
                    "or from 'depends', or place the dependency elsewhere "
                    "with target-path",
                    op=opdef.name,
                    path=path,
                )


# ---------------------------------------------------------------------------
# Resolve into a run dir


def resolve_deps(
    run: Run,
    project_dir: str | None = None,
    opdef: OpDef | None = None,
    upstream: Mapping[str, Run] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Place the op's dependencies in the run dir and write deps.json.

    Every dependency is resolved, its files added to the object cache
    (`objects`) and every pin checked before any file is placed in the
    run dir. `upstream`: see `preview_dependencies`. `progress`: show
    progress on stderr when it is a terminal and reading takes a while.
    Returns the deps.json records.
    """
    opdef = opdef or read_opdef(run)
    if not opdef.get_dependencies():
        return []
    project_dir = os.path.abspath(project_dir or os.getcwd())
    log = runner_log(run)
    log.info("Resolving dependencies (see deps.json for details)")
    shown = console.terminal_progress("Staging dependencies", quiet=not progress)
    try:
        records = _resolve_and_place(run, project_dir, opdef, upstream, shown)
    except DependencyError as e:
        log.info(f"ERROR: {e}")
        raise
    finally:
        shown.done()
        pins.unpin(run.runs_home)
    write_deps(run, records)
    for record in records:  # deps.json now names them: rm reads it
        if record["source"].get("type") == "run":
            pins.unpin_run(run.runs_home, record["source"]["id"], upstream=True)
    return records


def _resolve_and_place(
    run: Run,
    project_dir: str,
    opdef: OpDef,
    upstream: Mapping[str, Run] | None,
    progress: console.Progress,
) -> list[dict[str, Any]]:
    resolved = preview_dependencies(run.runs_home, project_dir, opdef, upstream)
    for dep in resolved:
        if dep.source["type"] == "run":
            pins.pin_run(run.runs_home, dep.source["id"], upstream=True)
    if read_config(run):
        _check_config_files(resolved, _config_files(run.run_dir, opdef), opdef)
    wheres = [dependency_where(opdef.name, i, d.spec) for i, d in enumerate(resolved)]
    with hash_cache.open_cache(hash_cache_path(run.runs_home)) as cache:
        hashed = [
            _hash_files(run.runs_home, dep, cache, where, progress)
            for dep, where in zip(resolved, wheres)
        ]
        fault_point("placing")
        placed: dict[str, str] = {}
        return [
            _place(run, dep, digests, cache, where, placed)
            for dep, digests, where in zip(resolved, hashed, wheres)
        ]


def _hash_files(
    runs_home: str,
    dep: ResolvedDep,
    cache: hash_cache.HashCache,
    where: str,
    progress: console.Progress,
) -> list[str]:
    """The digest of each file; a copied dependency's files are added to
    the object cache (read once when new, not at all when known), their
    rows read in a few queries, and pinned until placed (prune leaves
    them)."""
    for a in dep_pins.unfetched(runs_home, list(dep.absent), cache):
        raise dep_pins.absent_error(a)
    gone = {a.source for a in dep.absent}  # placed from the object cache
    files = [
        (os.path.join(dep.root, f.source), _file_stat(dep, f, where))
        for f in dep.files
        if f.source not in gone
    ]
    if dep.link:
        result = hash_cache.file_digests(files, cache)
    else:
        try:
            result = objects.add_files(runs_home, files, cache, progress)
        except objects.SourceChanged as e:
            source = os.path.relpath(str(e), dep.root)
            raise DependencyError(
                f"{where}: '{source}' changed while the run was staged: stage again"
            ) from None
        pins.pin_all(runs_home, sorted(set(result) | {a.digest for a in dep.absent}))
    result = dep_pins.merge_digests([f.source for f in dep.files], result, dep.absent)
    _check_pins(dep, result, where)
    if dep.source.get("type") == "project" and not dep.absent:  # --needed: one lookup
        stats = [st for _path, st in files]
        listing = hash_cache.listing_digest([f.source for f in dep.files], stats)
        hash_cache.store_folder(cache, folder_scope(dep), listing, stats, result)
    return result


def folder_scope(dep: ResolvedDep) -> str:
    """What a project dependency's record in the digest cache is stored
    under (`hash_cache.store_folder`): its root and its patterns."""
    return f"{dep.root}\0{json.dumps(dep.spec.get('files'))}"


def _file_stat(dep: ResolvedDep, f: DepFile, where: str) -> os.stat_result:
    """A dependency file's stat (links followed), the walk's when it took
    one; a regular file only: reading a FIFO or a device would hang
    staging."""
    st = f.st or os.stat(os.path.join(dep.root, f.source))
    if not stat.S_ISREG(st.st_mode):
        raise DependencyError(
            f"{where}: '{f.source}' is a {file_util.file_kind(st)}, not a "
            "regular file: a dependency must be files or directories of files"
        )
    return st


def _check_pins(dep: ResolvedDep, digests: list[str], where: str) -> None:
    pins = _pins(dep, where)
    by_source = {f.source: d for f, d in zip(dep.files, digests)}
    for source, expected in pins.items():
        actual = by_source.get(source)
        if actual is None:
            raise DependencyError(
                f"{where}: sha256 pin for '{source}' names a file the "
                f"dependency does not have"
            )
        if actual != expected:
            raise DependencyError(
                f"{where}: sha256 mismatch for '{source}': pinned {expected}, "
                f"file has {actual}: restore the file or update the pin"
            )


def _pins(dep: ResolvedDep, where: str) -> dict[str, str]:
    val = dep.spec.get("sha256")
    if val is None:
        return {}
    if isinstance(val, str):
        if len(dep.files) != 1:
            raise DependencyError(
                f"{where}: a sha256 string pins a single file but the "
                f"dependency has {len(dep.files)}: use a table path -> sha256"
            )
        return {dep.files[0].source: val}
    return {os.path.normpath(k): v for k, v in val.items()}


def _place(
    run: Run,
    dep: ResolvedDep,
    digests: list[str],
    cache: hash_cache.HashCache,
    where: str,
    placed: dict[str, str],
) -> dict[str, Any]:
    log = runner_log(run)
    if dep.source["type"] == "run":
        src = dep.source
        why = f" ({dep.why})" if dep.why else ""
        log.info(
            f"Using run {src['id']} ({src['name']}, op {src['op']}) for {where}{why}"
        )
    events = _clear_dests(run, dep, where, placed)
    if dep.link:
        hows = []
        for f in dep.files:
            dest = os.path.join(run.run_dir, f.path)
            os.symlink(os.path.abspath(os.path.join(dep.root, f.source)), dest)
            hows.append(("symlink", os.lstat(dest)))
    else:
        hows = _place_objects(run, dep, digests, cache, where)
    files = []
    counts: dict[str, int] = {}
    for f, digest, (how, st) in zip(dep.files, digests, hows):
        counts[how] = counts.get(how, 0) + 1
        events.append(FileEvent("a", "d", st.st_mtime_ns, f.path, how))
        files.append(
            {"path": f.path, "source": f.source, "sha256": digest, "placed": how}
        )
    append_files_log(run, events)
    if dep.absent:
        names = ", ".join(a.source for a in dep.absent)
        log.info(
            f"Not in the project, placed from the object cache by their sha256 "
            f"pin: {names} ({where})"
        )
    if dep.link:
        log.info(f"Linked {len(files)} file(s) for {where}")
    else:
        how = ", ".join(f"{n} by {how}" for how, n in sorted(counts.items()))
        log.info(f"Placed {len(files)} file(s) for {where} ({how or 'none'})")
    if dep.link:
        log.info(
            f"WARNING: {where} is linked: this run is tied to this machine "
            f"(links to {dep.root})"
        )
    return {"spec": dep.spec, "source": dep.source, "files": files}


def _clear_dests(
    run: Run, dep: ResolvedDep, where: str, placed: dict[str, str]
) -> list[FileEvent]:
    """Make the dirs of the dependency's files in the run dir (each dir
    once, checked to stay inside it) and remove files an earlier phase
    staged where they go (a dir made here holds none)."""
    events = []
    made: dict[str, bool] = {}  # dir -> made here
    for f in dep.files:
        dest = os.path.join(run.run_dir, f.path)
        parent = os.path.dirname(dest)
        if parent not in made:
            if not file_util.is_inside(run.run_dir, dest):
                raise DependencyError(
                    f"{where}: '{f.path}' would be placed outside the run dir "
                    "(a link in the run dir leads out of it): dependencies are "
                    "placed in the run dir only"
                )
            made[parent] = not os.path.isdir(parent)
            if made[parent]:
                file_util.make_dirs(parent)
        if f.path in placed:
            raise DependencyError(
                f"{where}: '{f.path}' is also placed by {placed[f.path]}: "
                f"set target-path to place one of them elsewhere"
            )
        placed[f.path] = where
        if not made[parent] and os.path.lexists(dest):
            events.append(_replace_staged(run, dest, f.path, where))
    return events


def _place_objects(
    run: Run,
    dep: ResolvedDep,
    digests: list[str],
    cache: hash_cache.HashCache,
    where: str,
) -> list[tuple[str, os.stat_result]]:
    """Place the objects for `digests` in one pass; one that went since
    it was added (a `gage cache prune`) or is not a file is added again
    from its source."""
    dests = [os.path.join(run.run_dir, f.path) for f in dep.files]

    def again(i: int) -> None:
        src = os.path.join(dep.root, dep.files[i].source)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dests[i])  # a copy cut short
        try:
            digest = objects.add_file(run.runs_home, src, os.stat(src), cache)
        except (OSError, objects.SourceChanged):
            digest = None
        if digest != digests[i]:
            raise DependencyError(
                f"{where}: '{dep.files[i].source}' changed or went while the "
                "run was staged: stage again"
            )

    items = list(zip(digests, dests))
    return objects.place_objects(run.runs_home, items, cache, again=again)


def _replace_staged(run: Run, dest: str, path: str, where: str) -> FileEvent:
    """Remove a file an earlier phase staged where a dependency goes.

    A dependency wins over source code (a small data file matches the
    default source code rules too); the runner log says so.
    """
    if os.path.isdir(dest) and not os.path.islink(dest):
        raise DependencyError(
            f"{where}: '{path}' is a directory in the run dir: "
            f"set target-path to place the dependency elsewhere"
        )
    st = os.lstat(dest)
    os.unlink(dest)
    runner_log(run).info(f"Dependency file {path} replaces the staged file")
    return FileEvent("d", "d", st.st_mtime_ns, path)
