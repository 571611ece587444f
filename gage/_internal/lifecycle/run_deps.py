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

Globs are shell-like (`*`, `?`, `[...]`, `**` for any number of dirs;
wildcards do not match names that start with `.`). A pattern or target
path that is absolute or uses `..`, and a symlink that resolves outside
its root, is refused.

Staging resolves every dependency (and checks every pin) before it
places any file, then records `deps.json` in meta: per dependency its
spec, its source (the project dir, or the upstream run id, name, op and
the sha256 of its manifest) and every file placed with its sha256 and
how it was placed (`placed`: reflink, hardlink, copy or symlink; the
`log/files` line reads `a d:hardlink ...`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
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
from ..util import console, file_util, patterns
from . import dep_pins, run_lineage

__all__ = [
    "DepFile",
    "check_config_deps",
    "check_config_files",
    "ResolvedDep",
    "preview_dependencies",
    "resolve_deps",
]


@dataclass(frozen=True)
class DepFile:
    """A dependency file: `source` relative to its root, `path` in the run dir."""

    source: str
    path: str


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
    absent: tuple[dep_pins.Absent, ...] = ()  # pinned, not in the project


# ---------------------------------------------------------------------------
# Preview


def preview_dependencies(
    runs_home: str,
    project_dir: str,
    opdef: OpDef,
    upstream: Mapping[str, Run] | None = None,
) -> list[ResolvedDep]:
    """Which source (project or upstream run) and files each dependency uses.

    `upstream` maps an op name in a `run-select` to the exact run to use
    (pins: `--upstream OP=RUN`, or the runs `gage repro` just made);
    the other ops' runs follow the lineage of the chosen ones, else are
    the latest completed (`run_lineage.choose`; `why` says which).
    Nothing is copied or hashed; raises DependencyError as staging would
    (an invalid spec, no upstream run, runs that disagree, missing file,
    escaping path).
    """
    check_dependencies(opdef)
    chosen = run_lineage.choose(runs_home, opdef, upstream)
    return [
        _resolve(runs_home, project_dir, opdef, i, spec, chosen)
        for i, spec in enumerate(opdef.get_dependencies())
    ]


def _resolve(
    runs_home: str,
    project_dir: str,
    opdef: OpDef,
    i: int,
    spec: dict[str, Any],
    chosen: Mapping[str, run_lineage.Choice],
) -> ResolvedDep:
    where = dependency_where(opdef.name, i, spec)
    why = ""
    target = _target_path(spec)
    absent: tuple[dep_pins.Absent, ...] = ()
    if spec["type"] == "project-files":
        root = os.path.abspath(project_dir)
        source = {"type": "project", "dir": root}
        pinned = dep_pins.pinned_paths(spec)
        relpaths = _match(root, _patterns(spec), where, "project", pinned)
        absent = tuple(
            dep_pins.Absent(where, rel, pinned[rel], root)
            for rel in relpaths
            if rel in pinned and not os.path.lexists(os.path.join(root, rel))
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
            relpaths = _match(root, _patterns(spec), where, f"run {up.id}")
        else:
            relpaths = _generated_files(up)
    files = [DepFile(rel, _join(target, rel)) for rel in relpaths]
    link = bool(spec.get("link"))
    return ResolvedDep(dict(spec), source, root, link, files, why, absent)


def _patterns(spec: dict[str, Any]) -> list[str]:
    val = spec["files"]
    return [val] if isinstance(val, str) else list(val)


def _target_path(spec: dict[str, Any]) -> str:
    val = spec.get("target-path", "")
    return "" if val in ("", ".") else os.path.normpath(val)


def _join(target: str, rel: str) -> str:
    return os.path.join(target, rel) if target else rel


# ---------------------------------------------------------------------------
# Matching files under a root


def _match(
    root: str,
    globs: list[str],
    where: str,
    root_desc: str,
    pinned: Mapping[str, str] | None = None,
) -> list[str]:
    """Files that `globs` match under `root`; a plain path in `pinned`
    may be missing (it comes from the object cache)."""
    real_root = os.path.realpath(root)
    found: dict[str, None] = {}
    for pat in globs:
        if patterns.has_magic(pat):
            matches = patterns.matches(root, pat)
            if not matches:
                raise DependencyError(
                    f"{where}: no files match '{pat}' in {root_desc} ({root})"
                )
        else:
            matches = [os.path.normpath(pat)]
        for rel in matches:
            rel = os.path.normpath(rel)
            full = os.path.join(root, rel)
            _check_inside(real_root, full, rel, where, root_desc)
            if pinned and rel in pinned and not os.path.lexists(full):
                found[rel] = None
                continue
            if not os.path.exists(full):
                raise DependencyError(
                    f"{where}: file '{rel}' not found in {root_desc} ({root})"
                )
            if os.path.isdir(full):
                for sub in _walk(real_root, root, rel, where, root_desc):
                    found[sub] = None
            else:
                found[rel] = None
    return sorted(found)


def _check_inside(
    real_root: str, full: str, rel: str, where: str, root_desc: str
) -> None:
    real = os.path.realpath(full)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise DependencyError(
            f"{where}: '{rel}' resolves to {real}, outside {root_desc}: "
            f"a dependency must stay inside its root"
        )


def _walk(
    real_root: str, root: str, reldir: str, where: str, root_desc: str
) -> list[str]:
    """Files under a dir (links followed when they stay inside the root)."""
    files = []
    for sub, entry in file_util.walk_files(root, reldir, follow_links=True):
        if entry.is_symlink():
            _check_inside(real_root, entry.path, sub, where, root_desc)
            if not os.path.exists(entry.path):
                raise DependencyError(
                    f"{where}: '{sub}' is a broken link in {root_desc}"
                )
            if entry.is_dir():
                continue
        files.append(sub)
    return sorted(files)


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
    the object cache (read once when new, not at all when known)."""
    result = []
    absent = {a.source: a for a in dep.absent}
    for a in dep_pins.unfetched(runs_home, list(dep.absent), cache):
        raise dep_pins.absent_error(a)
    for f in dep.files:
        if f.source in absent:
            result.append(absent[f.source].digest)
            pins.pin(runs_home, absent[f.source].digest)
            continue
        full = os.path.join(dep.root, f.source)
        st = os.stat(full)
        if not stat.S_ISREG(st.st_mode):
            # Reading a FIFO or a device would hang staging.
            raise DependencyError(
                f"{where}: '{f.source}' is a {file_util.file_kind(st)}, not a "
                "regular file: a dependency must be files or directories of files"
            )
        if dep.link:
            result.append(hash_cache.file_sha256(full, cache))
            continue
        try:
            digest = objects.add_file(runs_home, full, st, cache, progress)
            pins.pin(runs_home, digest)  # until placed: prune leaves it
            result.append(digest)
        except objects.SourceChanged:
            raise DependencyError(
                f"{where}: '{f.source}' changed while the run was staged: stage again"
            ) from None
    sources = [f.source for f in dep.files]
    dep_pins.check_pins(dep.spec, sources, result, where)
    return result


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
    events = []
    files = []
    counts: dict[str, int] = {}
    for f, digest in zip(dep.files, digests):
        src_path = os.path.join(dep.root, f.source)
        dest = os.path.join(run.run_dir, f.path)
        if not file_util.is_inside(run.run_dir, dest):
            raise DependencyError(
                f"{where}: '{f.path}' would be placed outside the run dir "
                "(a link in the run dir leads out of it): dependencies are "
                "placed in the run dir only"
            )
        if f.path in placed:
            raise DependencyError(
                f"{where}: '{f.path}' is also placed by {placed[f.path]}: "
                f"set target-path to place one of them elsewhere"
            )
        placed[f.path] = where
        if os.path.lexists(dest):
            events.append(_replace_staged(run, dest, f.path, where))
        file_util.make_dirs(os.path.dirname(dest))
        if dep.link:
            os.symlink(os.path.abspath(src_path), dest)
            how = "symlink"
        else:
            how = _place_object(run, digest, dest, cache, src_path, where)
        counts[how] = counts.get(how, 0) + 1
        events.append(FileEvent("a", "d", os.lstat(dest).st_mtime_ns, f.path, how))
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


def _place_object(
    run: Run,
    digest: str,
    dest: str,
    cache: hash_cache.HashCache,
    src: str,
    where: str,
) -> str:
    """Place the object for `digest`; one that went since it was added (a
    `gage cache prune`) or is not a file is added again from `src`."""
    try:
        return objects.place_object(run.runs_home, digest, dest, cache)
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)  # a copy cut short
    try:
        again = objects.add_file(run.runs_home, src, os.stat(src), cache)
    except (OSError, objects.SourceChanged):
        again = None
    if again != digest:
        raise DependencyError(
            f"{where}: '{os.path.basename(src)}' changed or went while the "
            "run was staged: stage again"
        )
    return objects.place_object(run.runs_home, digest, dest, cache)


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
