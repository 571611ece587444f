"""Make a run, initialize its meta, stage it.

    make_run -> init_run_meta -> stage_run

`stage_run` calls, in order: `copy_sourcecode`, `apply_config`,
`init_runtime`, `resolve_deps`, `finalize_staged_run`. Each phase logs to
`log/runner` and appends what it changed in the run dir to `log/files`.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import Any, Callable, Mapping

from ..faults import fault_point
from ..home.runs import clean_trash
from ..project import file_select
from ..project.sourcecode import (
    SourcecodePreview,
    preview_sourcecode,
    select_rules,
    select_sourcecode,
    sourcecode_rules,
)
from ..store import hash_cache, objects, pins, run_meta, run_records
from ..store.run_meta import (
    FileEvent,
    ManifestEntry,
    append_files_log,
    read_files_log,
    read_opdef,
    runner_log,
    write_config,
    write_id,
    write_manifest,
    write_name,
    write_opdef,
    write_opref,
    write_proc_cmd,
    write_proc_env,
    write_schema,
    write_timestamp,
    write_user_attrs,
)
from ..types import OpCmd, OpDef, OpRef, Run, StageError
from ..util import file_util, run_exec
from . import provenance, run_deps, run_hooks
from .dep_match import replaced_folders
from .run_verify import file_mode, seal_run

__all__ = [
    "SourcecodePreview",
    "Warn",
    "apply_config",
    "check_run_dirs",
    "copy_sourcecode",
    "finalize_staged_run",
    "init_run_meta",
    "init_runtime",
    "make_run",
    "preview_sourcecode",
    "resolve_deps",
    "select_sourcecode",
    "sourcecode_rules",
    "stage_run",
]

Warn = Callable[[str], None]
"""Called with each warning a user should see while staging."""


# ---------------------------------------------------------------------------
# Make run


def make_run(runs_home: str) -> Run:
    """Create a new run dir under `runs_home` and return the run.

    Run ids are 32 hex chars: 18 random, then 14 for microseconds since
    the epoch. The random part comes first so that a short prefix of an
    id (like the name, made from the same random part) picks one run;
    runs are listed in creation order by their `initialized` timestamp
    (see `runs.list_runs`), not by id. The run dir is created with an
    atomic `mkdir`, so concurrent processes never get the same run. The
    op a run is for is recorded by `init_run_meta`.
    """
    os.makedirs(runs_home, exist_ok=True)
    clean_trash(runs_home)
    while True:
        run_id = _new_run_id()
        run_dir = os.path.join(runs_home, run_id)
        try:
            os.mkdir(run_dir)
        except FileExistsError:
            continue
        return Run(run_id, run_dir, _run_name(run_id))


_last_us = 0
_id_lock = threading.Lock()


def _new_run_id() -> str:
    global _last_us
    with _id_lock:
        us = max(time.time_ns() // 1000, _last_us + 1)
        _last_us = us
    return f"{os.urandom(9).hex()}{us:014x}"


_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def _run_name(run_id: str) -> str:
    """A short, pronounceable name from the random part of the id."""
    n = int(run_id[:18], 16)
    syllables = []
    for _ in range(6):
        n, c = divmod(n, len(_CONSONANTS))
        n, v = divmod(n, len(_VOWELS))
        syllables.append(_CONSONANTS[c] + _VOWELS[v])
    return "".join(syllables[:3]) + "-" + "".join(syllables[3:])


# ---------------------------------------------------------------------------
# Init meta


def init_run_meta(
    run: Run,
    opref: OpRef,
    opdef: OpDef,
    cmd: OpCmd,
    config: dict[str, Any],
    user_attrs: dict[str, Any],
) -> None:
    """Write the meta files that identify the run and what it will do."""
    os.makedirs(run.meta_dir, exist_ok=True)
    write_schema(run)
    write_id(run)
    write_name(run)
    write_opref(run, opref)
    write_opdef(run, opdef)
    write_proc_cmd(run, cmd)
    write_proc_env(run, cmd)
    if config:
        write_config(run, config)
    if user_attrs:
        write_user_attrs(run, user_attrs)
    write_timestamp(run, "initialized")
    runner_log(run).info(f"Initialized run meta for {opref.op_name} ({run.id})")


# ---------------------------------------------------------------------------
# Stage


def stage_run(
    run: Run,
    project_dir: str | None = None,
    warn: Warn | None = None,
    upstream: Mapping[str, Run] | None = None,
    progress: bool = False,
) -> None:
    """Stage `run` from `project_dir` (default: the current directory).

    The op definition is read from meta once and handed to each phase.
    `warn` is called with each warning a user should see (files skipped
    by limits, unreadable files); warnings are also in `log/runner`.
    `upstream` maps op names in `run-files` dependencies to the exact
    runs to use (see `resolve_deps`). `progress`: show the progress of
    reading large dependencies on stderr when it is a terminal.
    """
    check_run_dirs(run)
    pid = os.getpid()
    run_records.write_stager(run, pid, run_exec.proc_start_time(pid))
    pins.pin_run(run.runs_home, run.id)  # rm leaves it until it starts
    try:
        fault_point("staging")
        project_dir = project_dir or os.getcwd()
        opdef = read_opdef(run)
        git = provenance.begin_git(run, project_dir, opdef)  # read while copying
        copy_sourcecode(project_dir, run, opdef, warn)
        run_hooks.run_hook(run, "stage-sourcecode", project_dir, opdef)
        apply_config(run, opdef)
        init_runtime(run, project_dir, opdef)
        resolve_deps(run, project_dir, opdef, upstream, progress)
        run_hooks.run_hook(run, "stage-dependencies", project_dir, opdef)
        git.finish()
        finalize_staged_run(run)
    except BaseException:
        pins.unpin_run(run.runs_home, run.id)  # a failed staging: not started
        raise


def check_run_dirs(run: Run, error: type[Exception] = FileNotFoundError) -> None:
    """Raise `error` unless the run dir and its meta dir exist, the meta
    dir in the runs home (not a link: gage never writes through one)."""
    if not os.path.isdir(run.run_dir):
        raise error(f"Run dir does not exist: {run.run_dir}")
    if os.path.islink(run.meta_dir):
        raise error(
            f"Run meta dir {run.meta_dir} is a link (to "
            f"{os.path.realpath(run.meta_dir)}): gage writes a run's record "
            "in the runs home only; move the meta dir back in place"
        )
    if not os.path.isdir(run.meta_dir):
        raise error(f"Run meta dir does not exist: {run.meta_dir}")


# ---------------------------------------------------------------------------
# Copy source code


def copy_sourcecode(
    src_dir: str, run: Run, opdef: OpDef | None = None, warn: Warn | None = None
) -> None:
    """Copy source code from `src_dir` to the run dir under the op's rules.

    Warnings (files skipped by limits, files that cannot be read, links
    that leave the source dir) go to `log/runner` and, one at a time, to
    `warn` when given. `preview_sourcecode` lists them before staging.
    """
    opdef = opdef or read_opdef(run)
    rules = sourcecode_rules(opdef)
    log = runner_log(run)
    log.info("Copying source code (see log/files for details)")
    log.info("Source code include:\n" + _pformat([r for r in rules if _incl(r)]))
    log.info(
        "Source code exclude:\n" + _pformat([r[1:] for r in rules if not _incl(r)])
    )
    # A file placed from the object cache shares the object's inode: not
    # for an op whose staging hooks could write to its files in place.
    share = not any(opdef.get_exec().get(h) is not None for h in run_hooks.STAGE_HOOKS)
    home = run.runs_home
    with hash_cache.open_cache(run_meta.hash_cache_path(home)) as cache:
        sel = select_rules(
            src_dir,
            rules,
            home,
            (lambda st: hash_cache.lookup_text(cache, st)) if share else None,
            (lambda keys: hash_cache.prefetch(cache, keys)) if share else None,
            replaced_folders(src_dir, opdef.get_dependencies()),
        )
        known = _known_sources(sel, cache) if share else {}
        objs = objects.source_object_stats(home, sorted(set(known.values())), cache)
        warnings = sel.warnings()
        events = []
        made_dirs: set[str] = set()
        for relpath in sel.files:
            # Relative paths from the walk: joined by hand, 5,000 at a time.
            src = f"{src_dir}/{relpath}"
            dest = f"{run.run_dir}/{relpath}"
            parent = os.path.dirname(dest)
            if parent not in made_dirs:
                file_util.make_dirs(parent)
                made_dirs.add(parent)
            try:
                st = sel.stats.get(relpath) or os.stat(src)
                how = _place_source(
                    src, dest, st, sel, relpath, cache, home, known, objs
                )
            except OSError as e:
                warnings.append(f"{relpath} skipped: {e.strerror or e}")
                continue
            events.append(FileEvent("a", "s", st.st_mtime_ns, relpath, how))
    append_files_log(run, events)
    for w in warnings:
        log.info(f"WARNING: {w}")
        if warn:
            warn(w)


def _known_sources(
    sel: file_select.Selection, cache: hash_cache.HashCache
) -> dict[str, str]:
    """Selected files whose digest the cache knows by their stat."""
    known = {}
    for path in sel.files:
        st = sel.stats.get(path)
        digest = hash_cache.lookup(cache, st) if st else None
        if digest:
            known[path] = digest
    return known


def _place_source(
    src: str,
    dest: str,
    st: os.stat_result,
    sel: file_select.Selection,
    relpath: str,
    cache: hash_cache.HashCache,
    home: str,
    known: dict[str, str],
    objs: dict[str, tuple[str, os.stat_result]],
) -> str | None:
    """Put the source file `src` (stat `st`) at `dest`; how, when it was
    placed from the object cache (`hardlink`), else None (a copy).

    A file seen before (`known`: its digest in the digest cache) is
    placed from its object (`objs`: their stats) without being read; on
    its second sight, its copy becomes the object. A new file's digest
    and text verdict are recorded (when it did not change while copied),
    so the next run need not read it. An op whose staging hooks could
    write to its files in place gets copies only (`known` is empty).
    """
    digest = known.get(relpath)
    mode = (stat.S_IMODE(st.st_mode) | stat.S_IRUSR) & ~0o222
    obj = objs.get(digest) if digest else None
    if digest and obj:
        path, obj_st = obj
        if objects.place_source(home, digest, mode, dest, cache, obj_st, path):
            return "hardlink"
    copied = file_util.copy_file(src, dest, st, sel.data.get(relpath))
    if not copied:
        return None
    hash_cache.remember(dest, copied)
    if copied == digest:
        objects.adopt_file(home, dest, copied, cache)
    elif file_util.stat_key(os.stat(src)) == file_util.stat_key(st):
        hash_cache.store(cache, st, copied, text=sel.texts.get(relpath))
    return None


def _incl(rule: str) -> bool:
    return not rule.lstrip().startswith("-")


def _pformat(val: list[str]) -> str:
    """`pprint.pformat(val, width=72)`, without importing pprint for the
    usual rules (each fits on a line)."""
    whole = repr(val)
    if len(whole) <= 72:
        return whole
    items = [repr(v) for v in val]
    if all(len(item) <= 69 for item in items):
        return "[" + ",\n ".join(items) + "]"
    import pprint

    return pprint.pformat(val, width=72)


# ---------------------------------------------------------------------------
# Apply config, init runtime, resolve deps


def apply_config(run: Run, opdef: OpDef | None = None) -> None:
    """Apply run config to the copied source code (see run_config)."""
    # Imported only for runs with config: its parsers (yaml, tomlkit) cost
    # more than a simple `gage run` should.
    if not run_meta.read_config(run):
        return
    from ..config import apply

    apply.apply_run_config(run, opdef)


def init_runtime(
    run: Run, project_dir: str | None = None, opdef: OpDef | None = None
) -> None:
    """Run the op's `stage-runtime` hook, if any."""
    run_hooks.run_hook(run, "stage-runtime", project_dir, opdef)


def resolve_deps(
    run: Run,
    project_dir: str | None = None,
    opdef: OpDef | None = None,
    upstream: Mapping[str, Run] | None = None,
    progress: bool = False,
) -> None:
    """Resolve the op's dependencies into the run dir (see run_deps).

    `upstream` maps an op name in a `run-files` `run-select` to the run
    to use instead of the latest completed run of that op.
    """
    fault_point("deps")
    run_deps.resolve_deps(run, project_dir, opdef, upstream, progress)


# ---------------------------------------------------------------------------
# Finalize staged run


def finalize_staged_run(run: Run) -> None:
    """Make staged files read-only, write the manifest, seal, `staged`.

    The seal (`run_verify.seal_run`) records the digests of the meta files
    that decide what runs, and the modes of the staged files. The stager
    record (`proc/stager`) is removed once the run is staged.
    """
    entries = []
    files_log = read_files_log(run)
    staged = _staged_files(files_log)
    _check_inside(run, staged)
    modes = {}
    with hash_cache.open_cache(run_meta.hash_cache_path(run.runs_home)) as cache:
        for path, type in sorted(staged.items()):
            digest, modes[path] = _staged_digest(run, path, cache)
            entries.append(ManifestEntry(type, digest, path))
    write_manifest(run, entries)
    # What decides the run's result, for `--needed` and `repro`.
    from . import op_inputs

    op_inputs.write_staged_inputs(run, entries, files_log)
    fault_point("sealing")
    seal_run(run, modes)
    write_timestamp(run, "staged")
    run_records.delete_stager(run)
    runner_log(run).info(f"Staged run {run.id} ({len(entries)} files in manifest)")


def _staged_digest(run: Run, path: str, cache: hash_cache.HashCache) -> tuple[str, str]:
    """sha256 of a staged file (cached by stat when large, or placed from
    the object cache), made read-only; and its mode for the seal.

    A linked file is hashed through the link; the link is never chmodded.
    A read-only file whose digest this process recorded (placed or
    copied from bytes) is neither read nor stat'ed again.
    """
    full = f"{run.run_dir}/{path}"
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        raise StageError(f"Staged file {path} is missing from {run.run_dir}") from None
    if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222:
        digest = hash_cache.lookup(None, st)
        if digest is not None:
            return digest, file_mode(full, st)
    link = stat.S_ISLNK(st.st_mode)
    try:
        digest = hash_cache.file_sha256(full, cache, None if link else st)
    except FileNotFoundError:
        raise StageError(f"Staged file {path} is missing from {run.run_dir}") from None
    except file_util.NotRegularFile as e:
        raise StageError(
            f"Staged file {path} is {e.strerror}: a run dir holds files, "
            "links and directories only"
        ) from None
    if not link:
        file_util.make_readonly(full, st)
    # Its stat now, for start and `gage check` (they need not read it):
    # remembered in this process (a run started as it is staged), and
    # stored for a large file, or an object's inode (not a small copy: a
    # row per run would grow the cache with every run).
    st = os.stat(full)
    if (st.st_size >= hash_cache.MIN_SIZE or st.st_nlink > 1) and not (
        hash_cache.remembered(st, digest)
    ):
        hash_cache.store(cache, st, digest)
    hash_cache.remember(full, digest, st)
    return digest, file_mode(full) if link else file_mode(full, st)


def _check_inside(run: Run, paths: Mapping[str, str]) -> None:
    """Refuse a staged path that a link among its dirs leads out of the
    run dir (finalizing makes staged files read-only): each dir once."""
    for reldir in sorted({os.path.dirname(p) for p in paths}):
        if not file_util.is_inside(run.run_dir, os.path.join(run.run_dir, reldir, "_")):
            raise StageError(
                f"Staged dir {reldir} leads outside the run dir {run.run_dir} "
                "(a link to a directory outside it): a run dir holds its files"
            )


def _staged_files(files_log: list[FileEvent]) -> dict[str, str]:
    """Path -> type for files in the run dir according to log/files."""
    files: dict[str, str] = {}
    for e in files_log:
        if e.event == "d":
            files.pop(e.path, None)
        elif e.event == "a" or e.path not in files:
            files[e.path] = e.type
    return files
