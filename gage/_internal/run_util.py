"""The run lifecycle: make, init meta, stage.

    make_run -> init_run_meta -> stage_run -> start_run -> finalize_run

`stage_run` calls, in order: `copy_sourcecode`, `apply_config`,
`init_runtime`, `resolve_deps`, `finalize_staged_run`. Each phase logs to
`log/runner` and appends what it changed in the run dir to `log/files`.
"""

from __future__ import annotations

import contextlib
import os
import pprint
import secrets
import shlex
import threading
import time
from typing import Any, Iterator

import attrs

from . import (
    file_select,
    file_util,
    hash_cache,
    run_deps,
    run_exec,
    run_hooks,
    run_meta,
)
from .runs import RUN_STATUSES, run_status
from .run_meta import (
    FileEvent,
    ManifestEntry,
    append_files_log,
    read_files_log,
    read_opdef,
    run_meta_dir,
    run_meta_path,
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
from .types import (
    OpCmd,
    OpDef,
    OpRef,
    Run,
    RunError,
    RunLockedError,
    StageError,
    VerifyError,
)

__all__ = [
    "Difference",
    "RUN_STATUSES",
    "SourcecodePreview",
    "apply_config",
    "copy_sourcecode",
    "exec_run",
    "finalize_run",
    "finalize_staged_run",
    "init_run_meta",
    "init_runtime",
    "load_run",
    "make_run",
    "preview_sourcecode",
    "resolve_deps",
    "run_meta_dir",
    "run_meta_path",
    "run_status",
    "sourcecode_rules",
    "stage_run",
    "start_run",
    "verify_run",
]


# ---------------------------------------------------------------------------
# Make run


def make_run(runs_home: str) -> Run:
    """Create a new run dir under `runs_home` and return the run.

    Run ids are 32 hex chars: 14 for microseconds since the epoch, then 18
    random. They sort by creation time. The run dir is created with an
    atomic `mkdir`, so concurrent processes never get the same run. The
    op a run is for is recorded by `init_run_meta`.
    """
    os.makedirs(runs_home, exist_ok=True)
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
    return f"{us:014x}{secrets.token_hex(9)}"


_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def _run_name(run_id: str) -> str:
    """A short, pronounceable name from the random part of the id."""
    n = int(run_id[14:], 16)
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


def stage_run(run: Run, project_dir: str | None = None) -> list[str]:
    """Stage `run` from `project_dir` (default: the current directory).

    Returns warnings a user should see (e.g. files skipped by limits).
    """
    _check_run_dirs(run)
    project_dir = project_dir or os.getcwd()
    warnings = copy_sourcecode(project_dir, run)
    run_hooks.run_hook(run, "stage-sourcecode", project_dir)
    apply_config(run)
    init_runtime(run, project_dir)
    resolve_deps(run, project_dir)
    run_hooks.run_hook(run, "stage-dependencies", project_dir)
    finalize_staged_run(run)
    return warnings


def _check_run_dirs(run: Run, error: type[Exception] = FileNotFoundError) -> None:
    if not os.path.isdir(run.run_dir):
        raise error(f"Run dir does not exist: {run.run_dir}")
    if not os.path.isdir(run.meta_dir):
        raise error(f"Run meta dir does not exist: {run.meta_dir}")


# ---------------------------------------------------------------------------
# Copy source code


def sourcecode_rules(opdef: OpDef) -> list[str]:
    """Rule lines for an op: the defaults, or the op's `sourcecode`.

    An op `sourcecode` list that only excludes adds to the defaults;
    a list with any include replaces them.
    """
    rules = opdef.get_sourcecode()
    if rules is None:
        return list(file_select.DEFAULT_RULES)
    if rules and all(r.lstrip().startswith("-") for r in rules):
        return list(file_select.DEFAULT_RULES) + rules
    return rules


@attrs.frozen
class SourcecodePreview:
    """What `copy_sourcecode` would do: files and skipped paths with rules."""

    rules: list[str]
    files: list[str]
    skipped: list[file_select.Skipped]
    warnings: list[str]


def preview_sourcecode(
    src_dir: str, opdef: OpDef, runs_home: str | None = None
) -> SourcecodePreview:
    """Files that would be copied and, for each skipped path, why.

    A `runs_home` inside `src_dir` is never source code.
    """
    rules = sourcecode_rules(opdef)
    sel = _select(src_dir, rules, runs_home)
    return SourcecodePreview(rules, sel.files, sel.skipped, sel.warnings())


def _select(
    src_dir: str, rules: list[str], runs_home: str | None
) -> file_select.Selection:
    if not os.path.isdir(src_dir):
        raise StageError(f"Source code dir does not exist: {src_dir}")
    never = []
    if runs_home:
        rel = os.path.relpath(os.path.realpath(runs_home), os.path.realpath(src_dir))
        if rel != "." and not rel.startswith(".."):
            never.append(rel.replace(os.sep, "/"))
    return file_select.select_files(src_dir, file_select.parse_rules(rules), never)


def copy_sourcecode(src_dir: str, run: Run) -> list[str]:
    """Copy source code from `src_dir` to the run dir under the op's rules.

    Returns warnings: files skipped by limits (size, max-matches), files
    that cannot be read, links that leave the source dir.
    """
    opdef = read_opdef(run)
    rules = sourcecode_rules(opdef)
    log = runner_log(run)
    log.info("Copying source code (see log/files for details)")
    log.info("Source code include:\n" + _pformat([r for r in rules if _incl(r)]))
    log.info(
        "Source code exclude:\n" + _pformat([r[1:] for r in rules if not _incl(r)])
    )
    sel = _select(src_dir, rules, run.runs_home)
    warnings = sel.warnings()
    events = []
    made_dirs: set[str] = set()
    for relpath in sel.files:
        src = os.path.join(src_dir, relpath)
        dest = os.path.join(run.run_dir, relpath)
        parent = os.path.dirname(dest)
        if parent not in made_dirs:
            os.makedirs(parent, exist_ok=True)
            made_dirs.add(parent)
        try:
            st = sel.stats.get(relpath) or os.stat(src)
            digest = file_util.copy_file(src, dest, st, sel.data.get(relpath))
            if digest:
                hash_cache.remember(dest, digest)
        except OSError as e:
            warnings.append(f"{relpath} skipped: {e.strerror or e}")
            continue
        events.append(FileEvent("a", "s", st.st_mtime_ns, relpath))
    append_files_log(run, events)
    for w in warnings:
        log.info(f"WARNING: {w}")
    return warnings


def _incl(rule: str) -> bool:
    return not rule.lstrip().startswith("-")


def _pformat(val: list[str]) -> str:
    return pprint.pformat(val, width=72)


# ---------------------------------------------------------------------------
# Apply config, init runtime, resolve deps


def apply_config(run: Run) -> None:
    """Apply run config to the copied source code (see run_config)."""
    # Imported only for runs with config: its parsers (yaml, tomlkit) cost
    # more than a simple `gage run` should.
    if not run_meta.read_config(run):
        return
    from . import run_config

    run_config.apply_run_config(run)


def init_runtime(run: Run, project_dir: str | None = None) -> None:
    """Run the op's `stage-runtime` hook, if any."""
    run_hooks.run_hook(run, "stage-runtime", project_dir)


def resolve_deps(run: Run, project_dir: str | None = None) -> None:
    """Resolve the op's dependencies into the run dir (see run_deps)."""
    run_deps.resolve_deps(run, project_dir)


# ---------------------------------------------------------------------------
# Finalize staged run


def finalize_staged_run(run: Run) -> None:
    """Make staged files read-only, write the manifest and `staged`."""
    entries = []
    with hash_cache.open_cache(run.runs_home) as cache:
        for path, type in sorted(_staged_files(run).items()):
            entries.append(ManifestEntry(type, _staged_digest(run, path, cache), path))
    write_manifest(run, entries)
    write_timestamp(run, "staged")
    runner_log(run).info(f"Staged run {run.id} ({len(entries)} files in manifest)")


def _staged_digest(run: Run, path: str, cache: hash_cache.HashCache) -> str:
    """sha256 of a staged file (cached by stat when large), made read-only.

    A linked file is hashed through the link; the link is never chmodded.
    """
    full = os.path.join(run.run_dir, path)
    try:
        digest = hash_cache.file_sha256(full, cache)
    except FileNotFoundError:
        raise StageError(f"Staged file {path} is missing from {run.run_dir}") from None
    file_util.make_readonly(full)
    return digest


def _staged_files(run: Run) -> dict[str, str]:
    """Path -> type for files in the run dir according to log/files."""
    files: dict[str, str] = {}
    for e in read_files_log(run):
        if e.event == "d":
            files.pop(e.path, None)
        elif e.event == "a" or e.path not in files:
            files[e.path] = e.type
    return files


# ---------------------------------------------------------------------------
# Start, finalize, status, verify
#
# A staged run starts from its run dir and meta dir alone: nothing here
# reads the project, and nothing written to meta holds an absolute path,
# so a staged run can be moved (run dir and meta dir together) and
# started where it lands.

_SUMMARY_MARKER = r"^--- summary ---[ \t]*$"
_LOCK_PID_WAIT = 2.0


def load_run(run_dir: str) -> Run:
    """The run for a run dir, read from the meta dir beside it.

    Works for a run dir that was moved: identity comes from meta, the
    location from `run_dir`.
    """
    run_dir = os.path.abspath(run_dir)
    meta_dir = run_dir + ".meta"
    if not os.path.isdir(run_dir):
        raise RunError(f"Run dir does not exist: {run_dir}")
    if not os.path.isdir(meta_dir):
        raise RunError(
            f"Run meta dir does not exist: {meta_dir} "
            "(a run dir and its .meta dir must be moved together)"
        )
    return Run(run_meta.read_id(meta_dir), run_dir, run_meta.read_name(meta_dir))


def start_run(run: Run, quiet: bool = False, verify: bool = True) -> int:
    """Run a staged run's command in its run dir and finalize it.

    Returns the command's exit code (negative for a signal). Refuses a
    run that is not staged, is running or has run (RunError), one that
    another process holds (RunLockedError) and, unless `verify` is false,
    one whose staged files differ from its manifest (VerifyError).
    """
    import filelock

    _check_run_dirs(run, RunError)
    lock = filelock.FileLock(run_meta.lock_path(run))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise RunLockedError(_locked_msg(run)) from None
    except PermissionError:
        raise RunError(
            f"Cannot lock run {run.name} ({run.id}): permission denied "
            f"for {run_meta.lock_path(run)}; the meta dir must be writable"
        ) from None
    try:
        return _start_locked(run, quiet, verify)
    finally:
        lock.release()


exec_run = start_run


def _locked_msg(run: Run) -> str:
    # The holder writes proc/lock right after it takes the lock.
    deadline = time.monotonic() + _LOCK_PID_WAIT
    proc_lock = run_meta.read_proc_lock(run)
    while proc_lock is None and time.monotonic() < deadline:
        time.sleep(0.02)
        proc_lock = run_meta.read_proc_lock(run)
    pid = str(proc_lock.pid) if proc_lock else "unknown"
    return (
        f"Run {run.name} ({run.id}) is held by another process (pid {pid}): "
        "it is being started or is running; wait for it or stop that process"
    )


def _start_locked(run: Run, quiet: bool, verify: bool) -> int:
    log = runner_log(run)
    status = run_status(run)
    if status != "staged":
        raise RunError(_not_startable_msg(run, status))
    # proc/lock first: a process refused the lock reads the pid here.
    pid = os.getpid()
    run_meta.write_proc_lock(run, pid, run_exec.proc_start_time(pid))
    deferred: list[int] = []
    try:
        # Verified files match the manifest: only files the run touches
        # need hashing again. Unverified ones may not: hash all at the end.
        before = None
        if verify:
            before = file_util.snapshot_dir(run.run_dir)
            _verify_for_start(run, log, before)
        args = run_meta.read_proc_cmd(run)
        env = _run_env(run)
        write_timestamp(run, "started")
        log.info(f"Starting run {run.id}: {shlex.join(args)}")
        output, _index = run_meta.output_paths(run, "run")
        try:
            exit_code = run_exec.exec_proc(
                args,
                run.run_dir,
                env,
                output,
                quiet=quiet,
                on_signal=lambda sig: _on_signal(run, sig),
            )
        except run_exec.ExecError as e:
            log.info(str(e))
            with _signals_deferred(run, deferred):
                finalize_run(run, 127, quiet=quiet, _before=before)
            raise RunError(
                f"{e} (run {run.name}): check the command in proc/cmd and PATH"
            ) from None
        log.info(f"Run process exited with code {exit_code}")
        with _signals_deferred(run, deferred):
            finalize_run(run, exit_code, quiet=quiet, _before=before)
        return exit_code
    finally:
        run_meta.delete_proc_lock(run)
        _raise_deferred(deferred)


@contextlib.contextmanager
def _signals_deferred(run: Run, deferred: list[int]) -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the record of a run is completed.

    The run's process has ended; a signal now would leave the record
    half written. It is raised again once the record is complete.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(sig: int, _frame: Any) -> None:
        deferred.append(sig)
        name = signal.Signals(sig).name
        runner_log(run).info(f"Received {name}: completing the run record first")

    sigs = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield
    finally:
        for sig, prev in saved.items():
            signal.signal(sig, prev)


def _raise_deferred(deferred: list[int]) -> None:
    import signal

    if deferred:
        signal.raise_signal(deferred[0])


def _not_startable_msg(run: Run, status: str) -> str:
    what = f"Run {run.name} ({run.id})"
    if status == "pending":
        return f"{what} is not staged: stage it before starting it"
    if status == "running":
        lock = run_meta.read_proc_lock(run)
        pid = lock.pid if lock else "unknown"
        return f"{what} is already running (pid {pid})"
    return (
        f"{what} has already been started (status {status}): "
        "a run starts once; stage a new run"
    )


def _verify_for_start(run: Run, log: Any, files: dict[str, tuple[int, int]]) -> None:
    diffs = _verify(run, files)
    if not diffs:
        return
    listing = ", ".join(str(d) for d in diffs)
    log.info("Refused to start: staged files differ from the manifest\n" + listing)
    raise VerifyError(
        f"Run {run.name} ({run.id}) differs from its manifest: {listing}; "
        "stage a new run, or start without verifying to run it as it is"
    )


def _run_env(run: Run) -> dict[str, str]:
    env = dict(os.environ)
    env.update(run_meta.read_proc_env(run))
    env["RUN_ID"] = run.id
    env["RUN_DIR"] = run.run_dir
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _on_signal(run: Run, sig: int) -> None:
    import signal

    name = signal.Signals(sig).name
    if run_meta.read_proc_signal(run) is None:
        run_meta.write_proc_signal(run, name)
    runner_log(run).info(f"Received {name}: passing it to the run process")


# Finalize


def finalize_run(
    run: Run,
    exit_code: int,
    quiet: bool = True,
    _before: dict[str, tuple[int, int]] | None = None,
) -> None:
    """Complete the record of a run whose process ended with `exit_code`.

    Runs the op's `finalize` hook if it has one, records generated (g),
    modified (m) and deleted (d) files in `log/files`, adds generated
    files to the manifest, reads the run's summary into meta, then writes
    `exit_code` and `stopped`.
    """
    log = runner_log(run)
    opdef = read_opdef(run)
    hook = opdef.get_exec().get("finalize")
    if hook is not None:
        _run_finalize_hook(run, hook, exit_code, quiet, log)
    _log_run_files(run, _before)
    _read_summary(run, opdef, log)
    for phase in ("run", "finalize"):
        for path in run_meta.output_paths(run, phase):
            if os.path.exists(path):
                file_util.make_readonly(path)
    run_meta.write_exit_code(run, exit_code)
    write_timestamp(run, "stopped")
    log.info(f"Run stopped with exit code {exit_code} ({run_status(run)})")


def _run_finalize_hook(
    run: Run, hook: Any, exit_code: int, quiet: bool, log: Any
) -> None:
    args, hook_env = run_hooks.hook_cmd(hook)
    env = _run_env(run)
    env.update(hook_env)
    env["RUN_EXIT_CODE"] = str(exit_code)
    output, _index = run_meta.output_paths(run, "finalize")
    log.info(f"Running finalize hook: {shlex.join(args)}")
    try:
        code = run_exec.exec_proc(args, run.run_dir, env, output, quiet=quiet)
    except run_exec.ExecError as e:
        log.info(f"finalize hook could not start: {e}")
        return
    log.info(f"finalize hook exited with code {code}")


def _log_run_files(run: Run, before: dict[str, tuple[int, int]] | None) -> None:
    """Log what the run did to the run dir; extend the manifest."""
    manifest = {e.path: e for e in run_meta.read_manifest(run)}
    after = file_util.snapshot_dir(run.run_dir)
    events: list[FileEvent] = []
    generated: list[ManifestEntry] = []
    for path in sorted(after):
        mtime = after[path][1]
        full = os.path.join(run.run_dir, path)
        staged = manifest.get(path)
        if staged is None:
            events.append(FileEvent("a", "g", mtime, path))
            generated.append(ManifestEntry("g", _digest(full), path))
        elif before is None or before.get(path) != after[path]:
            if _digest(full) != staged.sha256:
                events.append(FileEvent("m", staged.type, mtime, path))
    for path in sorted(set(manifest) - set(after)):
        events.append(FileEvent("d", manifest[path].type, 0, path))
    append_files_log(run, events)
    if generated:
        run_meta.append_manifest(run, generated)


def _digest(path: str) -> str:
    """sha256 of a file's content; of its target text for a link to none."""
    try:
        return file_util.sha256_file(path)
    except OSError:
        try:
            return file_util.sha256_bytes(os.readlink(path).encode())
        except OSError:
            return file_util.sha256_bytes(b"")


def _read_summary(run: Run, opdef: OpDef, log: Any) -> None:
    """Summary from the output block and the run's summary file, file last."""
    summary: dict[str, Any] = {}
    marker = opdef.data.get("output-summary", _SUMMARY_MARKER)
    if marker is not False:
        summary.update(_output_summary(run, str(marker), log))
    summary.update(_file_summary(run, opdef.data.get("summary"), log))
    if summary:
        run_meta.write_summary(run, summary)


def _output_summary(run: Run, marker: str, log: Any) -> dict[str, Any]:
    import json
    import re

    output, _index = run_meta.output_paths(run, "run")
    try:
        with open(output, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    try:
        pattern = re.compile(marker, re.MULTILINE)
    except re.error as e:
        log.info(f"WARNING: output-summary {marker!r} is not a valid regex: {e}")
        return {}
    match = None
    for match in pattern.finditer(text):
        pass
    if match is None:
        return {}
    rest = text[match.end() :].lstrip()
    try:
        data, _end = json.JSONDecoder().raw_decode(rest)
    except ValueError as e:
        log.info(f"WARNING: summary block in output is not valid JSON: {e}")
        return {}
    if not isinstance(data, dict):
        log.info("WARNING: summary block in output is not a JSON object")
        return {}
    log.info(f"Read summary from output ({len(data)} keys)")
    return data


def _file_summary(run: Run, filename: Any, log: Any) -> dict[str, Any]:
    name = str(filename or "summary.json")
    path = os.path.normpath(os.path.join(run.run_dir, name))
    if not path.startswith(run.run_dir + os.sep):
        log.info(f"WARNING: summary file {name} is outside the run dir: ignored")
        return {}
    try:
        data = _load_summary_file(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.info(f"WARNING: cannot read summary file {name}: {e}")
        return {}
    if not isinstance(data, dict):
        log.info(f"WARNING: summary file {name} does not hold an object: ignored")
        return {}
    log.info(f"Read summary from {name} ({len(data)} keys)")
    return data


def _load_summary_file(path: str) -> Any:
    if path.endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        with open(path, "rb") as f:
            return tomllib.load(f)
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)


# Status


# Verify


@attrs.frozen
class Difference:
    """A run dir file that differs from the manifest."""

    change: str  # changed | missing | added | dangling
    path: str
    detail: str | None = None  # for a dangling link: where it points

    def __str__(self) -> str:
        if self.detail:
            return f"{self.change} {self.path} -> {self.detail}"
        return f"{self.change} {self.path}"


def verify_run(run: Run) -> list[Difference]:
    """Re-hash run dir files against the manifest: every difference, by path.

    An empty list means the run dir holds exactly the files of its
    manifest with the same content.
    """
    if run_meta.read_timestamp(run, "staged") is None:
        raise RunError(
            f"Run {run.name} ({run.id}) is not staged: it has no manifest to verify"
        )
    return _verify(run, file_util.snapshot_dir(run.run_dir))


def _verify(run: Run, files: dict[str, tuple[int, int]]) -> list[Difference]:
    """Differences between `files` (a snapshot of the run dir) and the
    manifest, re-hashing each listed file."""
    manifest = run_meta.read_manifest(run)
    diffs = []
    for e in manifest:
        path = os.path.join(run.run_dir, e.path)
        if e.path not in files:
            diffs.append(Difference("missing", e.path))
        elif os.path.islink(path) and not os.path.exists(path):
            diffs.append(Difference("dangling", e.path, os.readlink(path)))
        elif _digest(path) != e.sha256:
            diffs.append(Difference("changed", e.path))
    listed = {e.path for e in manifest}
    diffs.extend(Difference("added", path) for path in files if path not in listed)
    return sorted(diffs, key=lambda d: d.path)
