"""Where a run came from: git state at staging, environment at start.

    stage_run:  begin_git  ... (copy, config, deps) ...  .finish() -> git.json
    start_run:  begin_environment -> (the command runs) -> .finish()
                -> environment.json, before finalize_run

The git state of the project (`util.git_state`: commit, branch, remote
without credentials, dirty or not, the diff of tracked files, bounded,
its digest always) is read in a thread while the source code is copied,
and sealed with the staged run. The environment is read on the machine
that starts the run (a Dask worker records its own): the Python the
run's command runs (resolved on the run's PATH, asked once, in a thread
while the command starts), its packages, the host, GPUs when
`nvidia-smi` is there, and the values of the env vars the settings list
(`project.provenance_spec`). `provenance = false` (per op, or in the
user config) records nothing.

None of it is part of a run's inputs key: `--needed` asks for the same
package set only when told (`--strict-env`, or `strict-env = true`):
`packages_filter`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from ..project import provenance_spec
from ..store import run_meta, run_records
from ..types import OpDef, Run
from ..util import git_state, machine, python_env

__all__ = [
    "Pending",
    "begin_environment",
    "begin_git",
    "columns",
    "op_settings",
    "packages_filter",
    "strict_filter",
]


class Pending:
    """Facts being read in a thread; `finish()` waits and writes them.
    A failure to read them is logged (`log`), never raised: a run's
    record does without them."""

    def __init__(
        self,
        read: Callable[[], Any] | None,
        write: Callable[[Any], None],
        log: Callable[[str], None] | None = None,
    ):
        self._result: list[Any] = []
        self._error: list[BaseException] = []
        self._write = write
        self._log = log
        self._thread = None
        if read is not None:
            self._thread = threading.Thread(
                target=self._read, args=(read,), daemon=True
            )
            self._thread.start()

    def _read(self, read: Callable[[], Any]) -> None:
        try:
            self._result.append(read())
        except Exception as e:
            self._error.append(e)

    def finish(self) -> None:
        if self._thread is None:
            return
        self._thread.join()
        self._thread = None
        if self._result:
            self._write(self._result[0])
        elif self._error and self._log:
            self._log(f"WARNING: provenance not recorded: {self._error[0]!r}")


_NOTHING = Pending(None, lambda _r: None)


def op_settings(opdef: OpDef) -> provenance_spec.ProvenanceSettings:
    """The provenance settings of runs of `opdef` (UserConfigError for a
    bad user config)."""
    return provenance_spec.op_settings(opdef)


# ---------------------------------------------------------------------------
# Staging: git


def begin_git(run: Run, project_dir: str, opdef: OpDef) -> Pending:
    """Start reading the git state of `project_dir`; `finish()` writes
    `git.json` (and `git.diff`) before the run is sealed."""
    if not op_settings(opdef).enabled:
        return _NOTHING

    def write(state: git_state.GitState) -> None:
        run_records.write_git(run, state.data(), state.diff)
        if state.note:
            run_meta.runner_log(run).info(f"Git state: {state.note}")

    log = run_meta.runner_log(run).info
    return Pending(lambda: git_state.git_state(project_dir), write, log)


# ---------------------------------------------------------------------------
# Start: environment


def begin_environment(run: Run, args: Sequence[str], env: Mapping[str, str]) -> Pending:
    """Start reading the environment of the run's command `args` (run
    with `env` in the run dir); `finish()` writes `environment.json`."""
    log = run_meta.runner_log(run)
    opdef = run_meta.read_opdef(run)
    try:
        settings = op_settings(opdef)
    except provenance_spec.UserConfigError as e:
        log.info(f"WARNING: {e} (provenance recorded with the op's settings)")
        settings = provenance_spec.op_settings(opdef, user_config=False)
    if not settings.enabled:
        return _NOTHING
    env = dict(env)

    def write(facts: dict[str, Any]) -> None:
        run_records.write_environment(run, facts)

    cache = run_meta.python_cache_path(run.runs_home)
    return Pending(
        lambda: environment(args, env, run.run_dir, settings.env, cache),
        write,
        log.info,
    )


def environment(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    names: Sequence[str],
    cache: str | None = None,
) -> dict[str, Any]:
    """The facts `environment.json` holds (see run_records.write_environment)."""
    t0 = time.monotonic()
    notes: list[str] = []
    program, is_python = python_env.command_python(args, env, cwd)
    gpus: list[Any] = []
    gpu_thread = threading.Thread(target=lambda: gpus.append(machine.gpus(env)))
    gpu_thread.start()
    python = None
    if is_python and program:
        python = python_env.python_facts(program, env, cwd, cache)
        if "note" in python:
            notes.append(python.pop("note"))
            python = None
    elif program:
        notes.append(
            f"command {os.path.basename(program)} is not Python: no interpreter facts"
        )
    elif args:
        notes.append(f"command {args[0]} not found on the run's PATH")
    gpu_thread.join()
    found, note = gpus[0] if gpus else ([], None)
    if note:
        notes.append(note)
    facts: dict[str, Any] = {
        "command": {
            "program": program or (args[0] if args else None),
            "python": is_python,
        },
        "python": python,
        "host": machine.host_facts(),
        "gpus": found,
        "env": {name: env.get(name) for name in names},
        "seconds": round(time.monotonic() - t0, 3),
    }
    if notes:
        facts["notes"] = notes
    return facts


# ---------------------------------------------------------------------------
# Reading it back


def columns(run: Run) -> dict[str, Any]:
    """A run's provenance as compare columns: `git.commit`, `git.branch`,
    `git.dirty`, `git.remote`, `python`, `host`, `pkg.NAME`."""
    vals: dict[str, Any] = {}
    git = _read(run_records.read_git, run) or {}
    for key in ("commit", "branch", "dirty", "remote"):
        if key in git or git.get("status") == "ok":
            vals[f"git.{key}"] = git.get(key)  # None: no commit, detached
    envd = _read(run_records.read_environment, run) or {}
    python = envd.get("python") or {}
    if python.get("version"):
        vals["python"] = python["version"]
    host = envd.get("host") or {}
    if host.get("host"):
        vals["host"] = host["host"]
    for name, version in (python.get("packages") or {}).items():
        vals[f"pkg.{name}"] = version
    return vals


def _read(read: Callable[[Run], Any], run: Run) -> Any:
    try:
        data = read(run)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def packages(run: Run) -> dict[str, str] | None:
    """The packages a run's interpreter had (None when not recorded)."""
    envd = _read(run_records.read_environment, run) or {}
    python = envd.get("python")
    if not isinstance(python, dict) or not isinstance(python.get("packages"), dict):
        return None
    return python["packages"]


def packages_filter(
    args: Sequence[str], env: Mapping[str, str], cwd: str, runs_home: str
) -> Callable[[Run], bool] | None:
    """For `--needed --strict-env`: a test that a completed run's Python
    had the packages (and version) the command's Python has now; None
    when the command is not Python (nothing to compare)."""
    program, is_python = python_env.command_python(args, env, cwd)
    if not (is_python and program):
        return None
    cache = run_meta.python_cache_path(runs_home)
    now = python_env.python_facts(program, env, cwd, cache)
    if "note" in now:
        return None
    want = (now.get("version"), now.get("packages"))

    def accept(run: Run) -> bool:
        envd = _read(run_records.read_environment, run) or {}
        python = envd.get("python") or {}
        return (python.get("version"), python.get("packages")) == want

    return accept


def strict_filter(
    opdef: OpDef,
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    runs_home: str,
    strict: bool = False,
) -> Callable[[Run], bool] | None:
    """The package test (`packages_filter`) when `strict` (`--strict-env`)
    or the op's `strict-env` asks for it, else None."""
    if not (strict or op_settings(opdef).strict_env):
        return None
    return packages_filter(args, env, cwd, runs_home)
