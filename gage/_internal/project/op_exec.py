"""An op's commands: `exec` and `env` turned into an `OpCmd` per phase.

`exec` is a string (split like a shell line; leading `NAME=VALUE` words
set the environment), an argv list, or a table of phase commands (`run`,
`stage-sourcecode`, `stage-runtime`, `stage-dependencies`, `finalize`).
`env` values are written as TOML gives them: `true` stays `true`.

Every phase (the run and each hook) gets its command from `op_cmd`, so
the run and its hooks always see the same environment.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from ..types import GagefileError, OpCmd, OpDef

__all__ = [
    "MAX_EXEC_BYTES",
    "PHASES",
    "exec_size_problem",
    "op_cmd",
    "op_env",
    "split_exec",
]

PHASES = ("stage-sourcecode", "stage-runtime", "stage-dependencies", "run", "finalize")

_ENV_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")

MAX_EXEC_BYTES = 1 << 20
"""The most bytes one command of gage.toml may have (its words, with
their NAME=VALUE words). The system refuses to start a command whose
arguments and environment are over ARG_MAX (2 MiB on Linux by default),
so a longer one could never start; a run keeps copies of its command,
which made each such run weigh several times its size. Half of ARG_MAX
leaves room for the environment, and is far above any real command."""


def op_cmd(opdef: OpDef, phase: str = "run") -> OpCmd:
    """The command of an op's `phase` with the op's `env`.

    Raises GagefileError when the op has no command for the run phase;
    for a hook phase the op has none of, `OpCmd([], {})` is returned.
    """
    val = opdef.get_exec().get(phase)
    if val is None:
        if phase == "run":
            raise GagefileError(
                f"op '{opdef.name}' has no command: add exec = \"...\" "
                f"(or a 'run' entry in its exec table)"
            )
        return OpCmd([], {})
    args, env = split_exec(val)
    return OpCmd(args, {**op_env(opdef), **env})


def exec_size_problem(val: Any) -> str | None:
    """What is wrong with the size of one `exec` value, or None; checked
    before the value is split (a huge line is not worth splitting)."""
    if isinstance(val, str):
        size = len(val.encode("utf-8", errors="replace"))
    elif isinstance(val, list):
        size = sum(
            len(a.encode("utf-8", errors="replace")) + 1
            for a in val
            if isinstance(a, str)
        )
    else:
        return None
    if size <= MAX_EXEC_BYTES:
        return None
    from ..util.fmt import format_size

    return (
        f"is {format_size(size)}, over the {format_size(MAX_EXEC_BYTES)} a command "
        "may have (the system cannot start a command with arguments over "
        "about 2 MiB, so it would never run): pass long inputs in a file "
        "the command reads"
    )


def split_exec(val: str | list[Any]) -> tuple[list[str], dict[str, str]]:
    """argv and env of one `exec` value (a shell-like line or a list)."""
    if isinstance(val, list):
        return [str(a) for a in val], {}
    words = shlex.split(val)
    env: dict[str, str] = {}
    while words and _ENV_WORD.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return words, env


def op_env(opdef: OpDef) -> dict[str, str]:
    """The op's `env` as strings: TOML booleans as `true`/`false`, other
    non-strings as JSON."""
    return {str(k): _env_str(v) for k, v in (opdef.data.get("env") or {}).items()}


def _env_str(val: Any) -> str:
    if isinstance(val, str):
        return val
    if isinstance(val, (bool, int, float)):
        return json.dumps(val)
    return str(val)
