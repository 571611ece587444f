"""An op's inputs, known before staging, and the completed run that has them.

The inputs of a run are what decides its result:

- `op`: the op name, and `opdef`: the sha256 of the op definition
  (command, env, rules, dependency specs; its `description` and
  `slurm` settings aside),
- `config`: the resolved run config,
- `sources`: each source code file's path and sha256, as staged, i.e.
  after config is applied (a patched file's digest is computed in
  memory from the patched text),
- `deps`: per dependency, where its files come from (`project`, or the
  exact upstream run id) and each file's path in the run dir and sha256.
  Project files are hashed through the digest cache (`hash_cache`);
  upstream run files take their digests from the upstream run's
  manifest, never read again,
- `extra`: files that staging hooks made (only known after staging).

Their `key` is the sha256 of all that, canonical JSON. Staging writes
the inputs of a staged run to its meta (`run_meta.write_inputs`), from
what was staged (manifest, deps.json, config), so comparing with many
runs reads one small key file per run.

`op_inputs` computes the inputs of an op before staging; `find_run` is
the one place that finds a completed run with the same key (`gage run
--needed`, `gage repro`, batch `--needed`). An op with staging hooks
(`stage-sourcecode`, `stage-runtime`, `stage-dependencies`) makes files
that cannot be known before staging: `op_inputs` returns None for it,
and callers stage first and compare the staged run's inputs.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..store import hash_cache, run_meta
from ..types import OpDef, Run
from ..util import file_util
from ..util.fmt import fmt_val

__all__ = [
    "Inputs",
    "closest_run",
    "describe_changes",
    "find_matching_run",
    "find_run",
    "op_config",
    "run_key",
    "op_inputs",
    "read_inputs",
    "staged_inputs",
    "write_staged_inputs",
]

_HOOKS = ("stage-sourcecode", "stage-runtime", "stage-dependencies")


@dataclass(frozen=True)
class Inputs:
    """What decides a run's result (see the module doc)."""

    op: str
    opdef: str
    config: dict[str, Any]
    sources: dict[str, str]
    deps: list[dict[str, Any]]
    extra: dict[str, str] = field(default_factory=dict)
    patched: list[str] = field(default_factory=list)
    """Source files that config patched: not part of the key (config
    and digests are), kept to explain a difference."""

    @functools.cached_property
    def key(self) -> str:
        """sha256 of the inputs but `patched` (taken once: a folder of
        many files makes it long)."""
        data = self.data()
        del data["patched"]
        return _digest(data)

    def data(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "opdef": self.opdef,
            "config": self.config,
            "sources": self.sources,
            "deps": self.deps,
            "extra": self.extra,
            "patched": self.patched,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Inputs:
        return cls(
            data["op"],
            data["opdef"],
            data["config"],
            data["sources"],
            data["deps"],
            data.get("extra") or {},
            data.get("patched") or [],
        )


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return file_util.sha256_bytes(text.encode("utf-8"))


def opdef_digest(opdef: OpDef) -> str:
    """sha256 of what an op definition makes a run do (not its
    description, nor what it records of where it ran, `provenance`, nor
    where it runs, `slurm`)."""
    return _digest({k: v for k, v in opdef.data.items() if k not in _NOT_INPUTS})


_NOT_INPUTS = ("description", "provenance", "slurm")


# ---------------------------------------------------------------------------
# Before staging


def op_config(project_dir: str, opdef: OpDef, assigns: list[str]) -> dict[str, Any]:
    """The run config of `opdef` for NAME=VALUE words (see run_config);
    run_config and its parsers are imported only for an op with config."""
    if not assigns and not opdef.get_config():
        return {}
    from ..config import run_config

    parsed = run_config.parse_assigns(assigns)
    return run_config.resolve_config(project_dir, opdef, parsed)


def op_inputs(
    runs_home: str,
    project_dir: str,
    opdef: OpDef,
    config: dict[str, Any],
    upstream: Mapping[str, Run] | None = None,
    resolved: list[Any] | None = None,
) -> Inputs | None:
    """The inputs a run of `opdef` with `config` would have if staged now.

    `upstream` maps an op name in a `run-files` `run-select` to the exact
    run to use (else the latest completed run, as staging selects it).
    `resolved`: its dependencies as `run_deps.preview_dependencies` just
    gave them. None for an op with staging hooks. Raises DependencyError
    when a dependency cannot be resolved, as staging would.
    """
    exec_ = opdef.get_exec()
    if any(exec_.get(h) is not None for h in _HOOKS):
        return None
    if resolved is None:
        from . import run_deps

        resolved = run_deps.preview_dependencies(
            runs_home, project_dir, opdef, upstream=upstream
        )
    with hash_cache.open_cache(run_meta.hash_cache_path(runs_home)) as cache:
        deps = [_dep_inputs(dep, cache) for dep in resolved]
        placed = _Placed([d["files"] for d in deps])
        skip = _replaced_dirs(project_dir, resolved)
        found = _source_inputs(
            runs_home, project_dir, opdef, config, placed, cache, skip
        )
    if found is None:
        return None
    sources, patched = found
    return Inputs(
        opdef.name, opdef_digest(opdef), config, sources, deps, patched=patched
    )


def _dep_inputs(dep: Any, cache: hash_cache.HashCache) -> dict[str, Any]:
    if dep.source.get("type") == "run":
        upstream = Run(dep.source["id"], dep.root, dep.source.get("name") or "")
        known = {e.path: e.sha256 for e in run_meta.read_manifest(upstream)}
        files = {
            f.path: known.get(f.source)
            or hash_cache.file_sha256(os.path.join(dep.root, f.source), cache)
            for f in dep.files
        }
        return _run_dep(dep.source, files)
    return {"source": "project", "files": _project_files(dep, cache)}


def _project_files(dep: Any, cache: hash_cache.HashCache) -> dict[str, str]:
    """Path -> sha256 of a project dependency's files. A folder whose
    files all kept their stat is decided by one lookup of its record in
    the digest cache (`hash_cache.folder_digests`); else the cache's rows
    are read in a few queries and only files it does not know are read,
    and the folder's record is stored for next time."""
    root = dep.root
    if dep.absent:  # pinned files not in the project: their pins
        gone = {a.source for a in dep.absent}
        present = [f for f in dep.files if f.source not in gone]
        found = hash_cache.file_digests(
            [(os.path.join(root, f.source), f.st) for f in present], cache
        )
        sources = [f.source for f in dep.files]
        from . import dep_pins  # (and the object cache) for pinned files only

        merged = dep_pins.merge_digests(sources, found, dep.absent)
        return dict(zip((f.path for f in dep.files), merged))
    sources = [f.source for f in dep.files]
    prefix = os.path.join(root, "")  # a join per file costs more than its stat
    stats = [f.st or os.stat(prefix + f.source) for f in dep.files]
    from .run_deps import folder_scope

    scope = folder_scope(dep)
    listing = hash_cache.listing_digest(sources, stats)
    known = hash_cache.folder_digests(cache, scope, listing)
    if known is not None and len(known) == len(stats):
        return dict(zip((f.path for f in dep.files), known))
    digests = hash_cache.file_digests(
        [(os.path.join(root, src), st) for src, st in zip(sources, stats)], cache
    )
    hash_cache.store_folder(cache, scope, listing, stats, digests)
    return dict(zip((f.path for f in dep.files), digests))


@dataclass(frozen=True)
class _Placed:
    """The paths dependencies place (their files dicts: no set of a
    folder's many paths is built to look up a few source files)."""

    files: list[dict[str, str]]

    def __contains__(self, path: object) -> bool:
        return any(path in f for f in self.files)


def _replaced_dirs(project_dir: str, resolved: list[Any]) -> list[str]:
    """Project folders a dependency places whole at the same path, with
    no link in them: every source file under them is replaced by the
    dependency's, so the source walk need not descend them (the key is
    the same)."""
    root = os.path.abspath(project_dir)
    dirs: list[str] = []
    for dep in resolved:
        if dep.source.get("type") != "project" or dep.root != root:
            continue
        if dep.spec.get("target-path", "") not in ("", "."):
            continue  # placed elsewhere
        dirs.extend(d.replace(os.sep, "/") for d in dep.folders if d != ".")
    return dirs


def _run_dep(source: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    return {
        "source": f"run:{source.get('id')}",
        "op": source.get("op"),
        "name": source.get("name"),
        "files": files,
    }


def _source_inputs(
    runs_home: str,
    project_dir: str,
    opdef: OpDef,
    config: dict[str, Any],
    placed: _Placed,
    cache: hash_cache.HashCache,
    skip: list[str] | None = None,
) -> tuple[dict[str, str], list[str]] | None:
    """Source path -> sha256 as staging would copy and patch them, and
    the paths config patches; None when that cannot be known. A file the
    digest cache knows by its stat is not read."""
    from ..project import sourcecode

    sel = sourcecode.select_sourcecode(
        project_dir,
        opdef,
        runs_home,
        lambda st: hash_cache.lookup_text(cache, st),
        lambda keys: hash_cache.prefetch(cache, keys),
        skip,
    )
    sources: dict[str, str] = {}
    for path in sel.files:
        if path in placed:
            continue  # a dependency replaces the staged file
        data = sel.data.get(path)
        st = sel.stats.get(path)
        known = hash_cache.lookup(cache, st) if st else None
        try:
            sources[path] = (
                known
                or (file_util.sha256_bytes(data) if data is not None else None)
                or hash_cache.file_sha256(os.path.join(project_dir, path))
            )
        except OSError:
            continue  # staging skips it too, with a warning
    patched: dict[str, str] = {}
    if config:
        found = _patched_digests(project_dir, opdef, config, sources)
        if found is None:
            return None
        patched = found
        sources.update(patched)
    return sources, sorted(patched)


def _patched_digests(
    project_dir: str, opdef: OpDef, config: dict[str, Any], sources: dict[str, str]
) -> dict[str, str] | None:
    """sha256 of each file config changes, as staging would patch it (in
    memory); None when config changes a file that is not source code
    (staging then says why)."""
    from ..config import apply

    texts = apply.patched_texts(project_dir, opdef, config)
    if any(path not in sources for path in texts):
        return None
    return {
        path: file_util.sha256_bytes(text.encode("utf-8"))
        for path, text in texts.items()
    }


# ---------------------------------------------------------------------------
# At staging


def staged_inputs(
    run: Run,
    manifest: list[run_meta.ManifestEntry] | None = None,
    files_log: list[run_meta.FileEvent] | None = None,
) -> Inputs:
    """The inputs of a staged run, from its meta (manifest, deps.json,
    log/files: `manifest` and `files_log` when the caller has read them)."""
    from ..home.runs import op_name

    manifest = run_meta.read_manifest(run) if manifest is None else manifest
    opdef = run_meta.read_opdef(run)
    deps = []
    placed: set[str] = set()
    for rec in run_meta.read_deps(run):
        src = rec.get("source") or {}
        files = {f["path"]: f["sha256"] for f in rec.get("files") or []}
        placed.update(files)
        if src.get("type") == "run":
            deps.append(_run_dep(src, files))
        else:
            deps.append({"source": "project", "files": files})
    sources = {e.path: e.sha256 for e in manifest if e.type == "s"}
    extra = {
        e.path: f"{e.type}:{e.sha256}"
        for e in manifest
        if e.type in ("d", "r") and e.path not in placed
    }
    patched = sorted(
        {e.path for e in files_log or run_meta.read_files_log(run) if e.event == "m"}
        & set(sources)
    )
    return Inputs(
        op_name(run) or opdef.name,
        opdef_digest(opdef),
        run_meta.read_config(run),
        sources,
        deps,
        extra,
        patched,
    )


def write_staged_inputs(
    run: Run,
    manifest: list[run_meta.ManifestEntry] | None = None,
    files_log: list[run_meta.FileEvent] | None = None,
) -> Inputs:
    """Write a staged run's inputs and their key to its meta."""
    inputs = staged_inputs(run, manifest, files_log)
    run_meta.write_inputs(run, inputs.data(), inputs.key)
    return inputs


def read_inputs(run: Run) -> Inputs | None:
    """A run's inputs as staging recorded them, or None (staged before
    inputs were recorded, or not staged)."""
    data = run_meta.read_inputs(run)
    return Inputs.from_data(data) if data is not None else None


# ---------------------------------------------------------------------------
# Lookup


def find_run(
    runs_home: str,
    inputs: Inputs,
    exclude: Run | None = None,
    accept: Callable[[Run], bool] | None = None,
) -> Run | None:
    """The newest completed run in `runs_home` with the same inputs key
    (and, given `accept`, for which it is true: `--strict-env`).

    The one lookup behind `--needed` and `repro`. The runs index gives
    the candidates: completed runs with this key, and completed runs of
    the op staged before keys were recorded (their key is derived from
    meta); each is then checked against its meta.
    """
    from ..home import runs_index

    candidates = runs_index.entries(
        runs_home,
        "state = 'completed' AND (input_key = ? OR (input_key IS NULL AND op = ?))",
        (inputs.key, inputs.op),
    )
    oldest_first = [e.run(runs_home) for e in reversed(candidates)]
    return _newest_completed(oldest_first, inputs.key, exclude, accept)


def find_matching_run(
    run: Run, runs: list[Run], accept: Callable[[Run], bool] | None = None
) -> Run | None:
    """The newest completed run in `runs` (other than staged `run`) with
    the same inputs as `run`."""
    return _newest_completed(runs, run_key(run), run, accept)


def run_key(run: Run) -> str | None:
    """A staged run's inputs key: as recorded at staging, else derived
    from its meta (a run staged before keys were recorded); None for a
    run that is not staged."""
    key = run_meta.read_input_key(run)
    if key is None and run_meta.read_timestamp(run, "staged") is not None:
        try:
            key = staged_inputs(run).key
        except (OSError, ValueError, KeyError):
            return None
    return key


def _newest_completed(
    runs: list[Run],
    key: str | None,
    exclude: Run | None,
    accept: Callable[[Run], bool] | None = None,
) -> Run | None:
    from ..home.runs import run_status

    if key is None:
        return None
    for run in reversed(runs):  # list_runs order: oldest first
        if exclude is not None and run.id == exclude.id:
            continue
        if run_key(run) == key and run_status(run) == "completed":
            if accept is None or accept(run):
                return run
    return None


def closest_run(
    runs_home: str, inputs: Inputs, limit: int = 50
) -> tuple[Run, Inputs] | None:
    """The completed run of the same op whose inputs differ least (the
    newest on a tie), among the newest `limit` completed runs of the op."""
    from ..home import runs_index

    best: tuple[int, Run, Inputs] | None = None
    newest = runs_index.entries(
        runs_home, "op = ? AND state = 'completed'", (inputs.op,), limit=limit
    )
    for entry in newest:
        run = entry.run(runs_home)
        other = read_inputs(run)
        if other is None:
            continue
        n = len(describe_changes(other, inputs))
        if best is None or n < best[0]:
            best = (n, run, other)
    return (best[1], best[2]) if best else None


def describe_changes(old: Inputs, new: Inputs) -> list[str]:
    """What differs from `old` to `new`, one line per difference."""
    lines = []
    if old.opdef != new.opdef:
        lines.append("op definition changed in gage.toml")
    for key in sorted(set(old.config) | set(new.config)):
        a, b = old.config.get(key, _MISSING), new.config.get(key, _MISSING)
        if a != b or type(a) is not type(b):
            lines.append(f"config {key}: {_fmt(a)} -> {_fmt(b)}")
    patched = set(old.patched) | set(new.patched)
    for line in _file_changes("source", old.sources, new.sources):
        path = line[len("source ") :].rsplit(": ", 1)[0]
        lines.append(line + (" (config applied)" if path in patched else ""))
    for i in range(max(len(old.deps), len(new.deps))):
        a = old.deps[i] if i < len(old.deps) else {"source": None, "files": {}}
        b = new.deps[i] if i < len(new.deps) else {"source": None, "files": {}}
        if a["source"] != b["source"] and b["source"] != "project":
            what = f"upstream {b.get('op') or a.get('op') or '?'}"
            lines.append(f"{what}: run {_run_name(a)} -> {_run_name(b)}")
            continue
        kind = "dependency" if b["source"] == "project" else "upstream file"
        lines.extend(_file_changes(kind, a["files"], b["files"]))
    lines.extend(_file_changes("staged by a hook", old.extra, new.extra))
    return lines


_MISSING = object()


def _fmt(val: Any) -> str:
    return "(none)" if val is _MISSING else fmt_val(val)


def _run_name(dep: dict[str, Any]) -> str:
    source = dep.get("source") or ""
    if not source.startswith("run:"):
        return "(none)"
    return dep.get("name") or source[4:]


def _file_changes(kind: str, old: dict[str, str], new: dict[str, str]) -> list[str]:
    lines = []
    for path in sorted(set(old) | set(new)):
        if path not in old:
            lines.append(f"{kind} {path}: added")
        elif path not in new:
            lines.append(f"{kind} {path}: removed")
        elif old[path] != new[path]:
            lines.append(f"{kind} {path}: changed")
    return lines
