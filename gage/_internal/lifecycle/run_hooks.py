"""Stage phase hooks: commands an op runs while its run is staged.

`exec` in an op def may be a table of phase commands:

    [train.exec]
    stage-sourcecode = "sh gen-code.sh"
    stage-runtime = "sh make-env.sh"
    stage-dependencies = ["python", "fetch.py"]
    run = "python train.py"

This module runs the three staging hooks (`stage-sourcecode`,
`stage-runtime`, `stage-dependencies`); `run` and `finalize` belong to
starting and finishing a run. A command string is split like a shell
line (leading `NAME=VALUE` words set the environment); a list is argv
as is.

A hook runs in the run dir with `RUN_ID`, `RUN_DIR` and `PROJECT_DIR`
set, on top of this process's environment and the op's `env`. Its
output goes to `output/NN_<phase>` with a `.index` file. Files it adds,
changes or deletes in the run dir are appended to `log/files` with the
phase's type (s, r, d), so they end up in the manifest.
"""

from __future__ import annotations

import os
import shlex

from ..project.op_exec import op_cmd
from ..store.run_meta import (
    FileEvent,
    append_files_log,
    output_paths,
    read_opdef,
    runner_log,
)
from ..types import OpDef, Run, StageError
from ..util import file_util
from ..util.run_exec import ExecError, exec_proc

__all__ = ["STAGE_HOOKS", "run_hook"]

# Hook phase -> (output phase, file type in log/files)
STAGE_HOOKS = {
    "stage-sourcecode": ("sourcecode", "s"),
    "stage-runtime": ("runtime", "r"),
    "stage-dependencies": ("dependencies", "d"),
}


def run_hook(
    run: Run, phase: str, project_dir: str | None = None, opdef: OpDef | None = None
) -> bool:
    """Run the op's `phase` hook in the run dir, if it has one.

    Returns True when a hook ran. Raises StageError when it cannot be
    started or exits non-zero; the run is then left unstaged.
    """
    output_phase, file_type = STAGE_HOOKS[phase]
    opdef = opdef or read_opdef(run)
    if opdef.get_exec().get(phase) is None:
        return False
    cmd = op_cmd(opdef, phase)
    args = cmd.args
    output, _index = output_paths(run, output_phase)
    log = runner_log(run)
    log.info(f"Running {phase} hook: {_cmd_str(args)}")
    env = _hook_env(run, project_dir, cmd.env)
    before = file_util.snapshot_dir(run.run_dir)
    try:
        exit_code = exec_proc(args, run.run_dir, env, output)
    except ExecError as e:
        log.info(f"{phase} hook could not start: {e}")
        raise StageError(f"{phase} hook could not start: {e}") from None
    _log_changes(run, before, file_util.snapshot_dir(run.run_dir), file_type)
    log.info(f"{phase} hook exited with code {exit_code}")
    if exit_code != 0:
        raise StageError(
            f"{phase} hook failed with exit code {exit_code}: {_cmd_str(args)} "
            f"(output in {output})"
        )
    return True


def _cmd_str(args: list[str]) -> str:
    return shlex.join(args)


def _hook_env(
    run: Run, project_dir: str | None, cmd_env: dict[str, str]
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(cmd_env)
    env["RUN_ID"] = run.id
    env["RUN_DIR"] = run.run_dir
    env["PROJECT_DIR"] = os.path.abspath(project_dir or os.getcwd())
    return env


def _log_changes(
    run: Run,
    before: dict[str, tuple[int, int]],
    after: dict[str, tuple[int, int]],
    file_type: str,
) -> None:
    events = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            events.append(FileEvent("d", file_type, before[path][1], path))
        elif path not in before:
            events.append(FileEvent("a", file_type, after[path][1], path))
        elif before[path] != after[path]:
            events.append(FileEvent("m", file_type, after[path][1], path))
    append_files_log(run, events)
