"""Slurm settings: `[$slurm]` in gage.toml, an op's `slurm = {...}` and
`--slurm KEY=VALUE` (`--slurm-partition`, `--slurm-time`) on the command
line, later ones winning (extra `args` add up).

    partition  --partition        time   --time (minutes or D-HH:MM:SS)
    cpus       --cpus-per-task    mem    --mem (MB, or 4G, 500M)
    gres       --gres             account, qos   --account, --qos
    args       more sbatch arguments (a list, or one shell-like string)
    setup      shell lines the job runs before the run (module load ...)

An op's settings do not make its runs differ: they are not inputs.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ..types import GageError

__all__ = ["KEYS", "from_assigns", "merge", "problem", "sbatch_args"]

KEYS = ("partition", "time", "cpus", "mem", "gres", "account", "qos", "args", "setup")

_OPTS = {
    "partition": "--partition",
    "time": "--time",
    "cpus": "--cpus-per-task",
    "mem": "--mem",
    "gres": "--gres",
    "account": "--account",
    "qos": "--qos",
}

_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.I)
_NAME = re.compile(r"^[^\s]+$")

_GAGE_ARGS = ("--output", "--error", "--wrap", "--parsable", "--wait", "--array")
"""sbatch arguments gage sets itself (or that would break its jobs)."""


def problem(data: Any) -> tuple[str | None, str] | None:
    """What is wrong with a table of Slurm settings, as (key, message),
    or None when it is valid."""
    if not isinstance(data, dict):
        return None, f"must be a table of Slurm settings ({', '.join(KEYS)})"
    for key, val in data.items():
        msg = _key_problem(key, val)
        if msg:
            return key, msg
    return None


def _key_problem(key: str, val: Any) -> str | None:
    if key not in KEYS:
        return f"unknown Slurm setting '{key}' (known: {', '.join(KEYS)})"
    if key == "cpus":
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            return f"'cpus' must be a whole number of CPUs above 0, got {val!r}"
        return None
    if key == "mem" and isinstance(val, int) and not isinstance(val, bool):
        return None if val > 0 else f"'mem' must be above 0 (MB), got {val}"
    if key == "time" and isinstance(val, int) and not isinstance(val, bool):
        return None if val > 0 else f"'time' must be above 0 (minutes), got {val}"
    if key == "args":
        return _args_problem(val)
    if not isinstance(val, str) or not val.strip():
        return f"'{key}' must be a non-empty string, got {val!r}"
    if key == "time" and not _TIME.match(val):
        return (
            f"'time' must be minutes or [D-]HH:MM[:SS] as sbatch --time takes "
            f"(e.g. 30, 2:00:00, 1-0), got {val!r}"
        )
    if key == "mem" and not _MEM.match(val):
        return f"'mem' must be MB or a size like 4G or 500M, got {val!r}"
    if key in _OPTS and key != "time" and not _NAME.match(val):
        return f"'{key}' must have no spaces, got {val!r}"
    return None


def _args_problem(val: Any) -> str | None:
    try:
        args = _split_args(val)
    except ValueError as e:
        return f"'args' cannot be split like a shell line: {e}"
    if args is None:
        return f"'args' must be a list of sbatch arguments or a string, got {val!r}"
    for i, arg in enumerate(args):
        prev = args[i - 1] if i else ""
        value = prev.startswith("-") and "=" not in prev  # --opt VALUE
        if not arg.startswith("-") and not value:
            return f"'args' must be sbatch options (starting with -), got {arg!r}"
        if arg.split("=", 1)[0] in _GAGE_ARGS:
            return f"'args' cannot hold {arg.split('=', 1)[0]}: gage sets it"
    return None


def _split_args(val: Any) -> list[str] | None:
    if isinstance(val, str):
        return shlex.split(val)
    if isinstance(val, list) and all(isinstance(a, str) for a in val):
        return list(val)
    return None


def from_assigns(assigns: list[str], what: str = "--slurm") -> dict[str, Any]:
    """`KEY=VALUE` words of the command line as settings (checked)."""
    data: dict[str, Any] = {}
    for word in assigns:
        key, eq, val = word.partition("=")
        key = key.strip()
        if not eq or not key:
            raise GageError(f"{what} takes KEY=VALUE (e.g. time=10), got {word!r}")
        data[key] = int(val) if key == "cpus" and val.strip().isdigit() else val
    bad = problem(data)
    if bad:
        raise GageError(f"{what}: {bad[1]}", key=what)
    return data


def merge(*tables: dict[str, Any] | None) -> dict[str, Any]:
    """Settings from several places, later ones winning; `args` add up."""
    merged: dict[str, Any] = {}
    args: list[str] = []
    for table in tables:
        for key, val in (table or {}).items():
            if key == "args":
                args.extend(_split_args(val) or [])
            else:
                merged[key] = val
    if args:
        merged["args"] = args
    return merged


def sbatch_args(settings: dict[str, Any]) -> list[str]:
    """sbatch options for the settings (in KEYS order, then `args`)."""
    out = [f"{_OPTS[k]}={settings[k]}" for k in _OPTS if k in settings]
    return out + list(_split_args(settings.get("args", [])) or [])
