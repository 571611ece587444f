"""What a run records of where it came from: the `provenance` settings.

An op's `provenance` key in gage.toml, or the `[provenance]` table of
the user config (`$GAGE_CONFIG`, else `$XDG_CONFIG_HOME/gage/config.toml`,
else `~/.config/gage/config.toml`), says whether runs record their git
state, interpreter, packages and machine, which environment variables'
values go with them, and whether `--needed` compares package sets:

    provenance = false                       # record nothing
    provenance = { env = ["CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"] }
    provenance = { strict-env = true }       # --needed: same packages too

    # user config
    [provenance]
    enabled = false

The op's setting wins over the user's; both are validated where they
are read (`check_setting`), errors name the file and key. An env var
whose name looks like a secret (TOKEN, SECRET, PASSWORD, KEY, ...) is
refused: gage never records secrets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..types import GageError, OpDef, describe
from ..util import file_util

__all__ = [
    "DEFAULT_ENV",
    "ProvenanceSettings",
    "UserConfigError",
    "check_setting",
    "op_settings",
    "user_config_path",
]

DEFAULT_ENV = ("CUDA_VISIBLE_DEVICES",)

KEYS = ("enabled", "env", "strict-env")

_SECRET = re.compile(
    r"(TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|API_?KEY|PRIVATE|AUTH|_KEY$|^KEY$)",
    re.IGNORECASE,
)


class UserConfigError(GageError):
    """The user config cannot be read or holds a bad value."""


@dataclass(frozen=True)
class ProvenanceSettings:
    """What runs of an op record of where they came from."""

    enabled: bool = True
    env: tuple[str, ...] = DEFAULT_ENV
    strict_env: bool = False


def check_setting(val: Any, top: bool = False) -> str | None:
    """What is wrong with a `provenance` value (an op's, or the user
    config's table when `top`), None when it is good."""
    if isinstance(val, bool) and not top:
        return None
    if not isinstance(val, dict):
        what = "a table" if top else "true, false or a table"
        return f"must be {what} (keys: {', '.join(KEYS)}), got {describe(val)}"
    for key, v in val.items():
        if key not in KEYS:
            return f"unknown key '{key}' (known keys: {', '.join(KEYS)})"
        if key in ("enabled", "strict-env") and not isinstance(v, bool):
            return f"'{key}' must be true or false, got {describe(v)}"
        if key == "env":
            problem = _env_problem(v)
            if problem:
                return problem
    return None


def _env_problem(val: Any) -> str | None:
    if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
        return f"'env' must be a list of variable names, got {describe(val)}"
    for name in val:
        if not name or "=" in name or "\0" in name:
            return f"'env' name {name!r} is not a variable name"
        if _SECRET.search(name):
            return (
                f"'env' name {name!r} looks like a secret: gage never records "
                "secrets; remove it from the list"
            )
    return None


def op_settings(opdef: OpDef, user_config: bool = True) -> ProvenanceSettings:
    """The settings for runs of `opdef`: its `provenance` key over the
    user config's (unless not `user_config`) over the defaults.
    UserConfigError for a bad user config."""
    user = _user_table() if user_config else {}
    op = opdef.data.get("provenance")
    if op is False:
        return ProvenanceSettings(enabled=False)
    merged = dict(user)
    if isinstance(op, dict):
        merged.update(op)
        merged.setdefault("enabled", True)
    elif op is True:
        merged["enabled"] = True
    return ProvenanceSettings(
        enabled=merged.get("enabled", True),
        env=tuple(merged.get("env", DEFAULT_ENV)),
        strict_env=merged.get("strict-env", False),
    )


def user_config_path() -> str:
    """Where the user config is read from (it need not exist)."""
    path = os.environ.get("GAGE_CONFIG")
    if path:
        return os.path.expanduser(path)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "gage", "config.toml")


_cache: dict[str, tuple[Any, dict[str, Any]]] = {}


def _user_table() -> dict[str, Any]:
    """The user config's `[provenance]` table ({} without one)."""
    path = user_config_path()
    try:
        st = os.stat(path)
    except OSError:
        return {}
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    known = _cache.get(path)
    if known and known[0] == key:
        return known[1]
    table = _read_user_table(path)
    _cache[path] = (key, table)
    return table


def _read_user_table(path: str) -> dict[str, Any]:
    toml = file_util.tomllib()
    try:
        with file_util.open_regular(path) as f:
            data = toml.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise UserConfigError(
            f"{path}: cannot read the user config: {why}; fix or remove it",
            path=path,
        ) from None
    table = data.get("provenance", {})
    problem = check_setting(table, top=True)
    if problem:
        raise UserConfigError(f"{path}: [provenance] {problem}", path=path)
    return table
