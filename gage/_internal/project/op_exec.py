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

__all__ = ["PHASES", "op_cmd", "op_env", "split_exec"]

PHASES = ("stage-sourcecode", "stage-runtime", "stage-dependencies", "run", "finalize")

_ENV_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


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
