"""Value types and errors shared by every layer.

Types are `attrs` classes, frozen where they are values. Errors derive
from `GageError` and carry a message a user can act on: what went wrong,
where (file, key or path) and what to do.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

__all__ = [
    "GageError",
    "GagefileError",
    "ConfigError",
    "DependencyError",
    "RunError",
    "RunLockedError",
    "StageError",
    "VerifyError",
    "OpRef",
    "OpDef",
    "OpCmd",
    "Run",
    "SourceRule",
]


class GageError(Exception):
    """Base for errors whose message is meant for the user."""


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


class RunLockedError(RunError):
    """Another process holds the run."""


class VerifyError(RunError):
    """Staged files differ from the run manifest."""


@attrs.frozen
class OpRef:
    """Identifies the operation a run was made for."""

    op_ns: str
    op_name: str
    op_version: str | None = None


@attrs.frozen
class OpDef:
    """An operation definition: `data` is the op's table from gage.toml.

    Accessors normalise the shorthand forms gage.toml allows.
    """

    name: str
    data: dict[str, Any] = attrs.field(factory=dict)

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

    def get_env(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.data.get("env") or {}).items()}


@attrs.frozen
class OpCmd:
    """A command: argv list and extra environment."""

    args: list[str]
    env: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Run:
    """A run: its id, run directory and short name."""

    id: str
    run_dir: str
    name: str

    @property
    def meta_dir(self) -> str:
        return self.run_dir + ".meta"

    @property
    def runs_home(self) -> str:
        return os.path.dirname(self.run_dir)


@attrs.frozen
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
