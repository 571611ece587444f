"""Value types and errors shared by every layer.

Data types in gage are dataclasses (frozen for values): the standard
library's, because every command imports them and `import attrs` alone
costs about as much as starting Python. Errors derive from `GageError` and carry a message a
user can act on: what went wrong, where (file, key or path) and what to
do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GageError",
    "GagefileError",
    "MetaError",
    "ConfigError",
    "DependencyError",
    "RunError",
    "RunLockedError",
    "RunSelectError",
    "RemoteError",
    "META_SUFFIX",
    "StageError",
    "VerifyError",
    "OpRef",
    "OpDef",
    "OpCmd",
    "Run",
    "SourceRule",
    "describe",
]


META_SUFFIX = ".meta"
"""A run's meta dir is its run dir with this suffix."""


def describe(val: Any) -> str:
    """How an error message names a value: `string 'x'`, `number 1`, `a table`."""
    if isinstance(val, bool):
        return f"boolean {str(val).lower()}"
    if isinstance(val, str):
        return f"string {val!r}"
    if isinstance(val, (int, float)):
        return f"number {val}"
    if isinstance(val, list):
        return "a list"
    if isinstance(val, dict):
        return "a table"
    return type(val).__name__


class GageError(Exception):
    """Base for errors whose message is meant for the user.

    Besides the message, an error carries what it is about as fields, so
    an API caller need not match text: `path` (a file or dir), `key` (a
    gage.toml or config key), `op` (an op name), `run` (a run id) and
    `spec` (a run spec as given). Fields that do not apply are None.
    """

    def __init__(
        self,
        msg: str = "",
        *,
        path: str | None = None,
        key: str | None = None,
        op: str | None = None,
        run: str | None = None,
        spec: str | None = None,
    ) -> None:
        super().__init__(msg)
        self.path = path
        self.key = key
        self.op = op
        self.run = run
        self.spec = spec


class GagefileError(GageError):
    """gage.toml is missing or not valid."""


class ConfigError(GageError):
    """Run config cannot be read or applied."""


class DependencyError(GageError):
    """A dependency cannot be resolved."""


class StageError(GageError):
    """Staging a run failed."""


class RunError(GageError):
    """A run cannot be started or is in the wrong state."""


class MetaError(GageError, ValueError):
    """A run's meta file has content gage cannot read (a garbage line,
    bytes that are not UTF-8). A ValueError too: code that lists many
    runs skips or marks the one run, never fails for all."""


class RunSelectError(GageError):
    """A run spec matches no run, or more than one."""


class RemoteError(RunError):
    """A remote cannot be reached or used, or what it holds is refused
    (exit 1, as for a run that cannot start)."""


class RunLockedError(RunError):
    """Another process holds the run."""


class VerifyError(RunError):
    """Staged files differ from the run manifest."""


@dataclass(frozen=True)
class OpRef:
    """Identifies the operation a run was made for."""

    op_ns: str
    op_name: str
    op_version: str | None = None


@dataclass(frozen=True)
class OpDef:
    """An operation definition: `data` is the op's table from gage.toml.

    Accessors normalise the shorthand forms gage.toml allows.
    """

    name: str
    data: dict[str, Any] = field(default_factory=dict)

    def get_description(self) -> str:
        return self.data.get("description") or ""

    def get_sourcecode(self) -> list[str] | None:
        """Source code rules, or None when the op does not set them."""
        val = self.data.get("sourcecode")
        if val is None or val == {}:
            return None
        if isinstance(val, str):
            return [val]
        return list(val)

    def get_config(self) -> list[Any]:
        val = self.data.get("config")
        if val is None:
            return []
        if isinstance(val, (str, dict)):
            return [val]
        return list(val)

    def get_dependencies(self) -> list[dict[str, Any]]:
        val = self.data.get("depends")
        if val is None:
            return []
        if isinstance(val, dict):
            return [val]
        return list(val)

    def get_exec(self) -> dict[str, Any]:
        """Phase commands keyed by phase name (`run`, `stage-runtime`, ...)."""
        val = self.data.get("exec")
        if val is None:
            return {}
        if isinstance(val, (str, list)):
            return {"run": val}
        return dict(val)


@dataclass(frozen=True)
class OpCmd:
    """A command: argv list and extra environment."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """A run: its id, run directory and short name."""

    id: str
    run_dir: str
    name: str

    @property
    def meta_dir(self) -> str:
        return self.run_dir + META_SUFFIX

    @property
    def runs_home(self) -> str:
        return os.path.dirname(self.run_dir)


@dataclass(frozen=True)
class SourceRule:
    """A compiled source code rule (see `file_select.parse_rule`)."""

    text: str
    include: bool
    pattern: str
    type: str | None = None
    size_lt: int | None = None
    size_gt: int | None = None
    max_matches: int | None = None
    sentinel: str | None = None
