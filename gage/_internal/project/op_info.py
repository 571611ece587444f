"""What gage.toml defines, op by op, for `gage ops`.

`describe_ops` gives each op's name, description, whether it is the
default op, its config keys with their defaults (read from the
project's files, as `gage run` reads them: `run_config`), its
dependencies and the ops it comes after (`graph.op_graph`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..types import GageError, OpDef
from . import graph

__all__ = ["OpInfo", "describe_ops"]


@dataclass(frozen=True)
class OpInfo:
    """An op as `gage ops` shows it. `config_error` says why its config
    could not be read (then `config` is empty)."""

    name: str
    description: str
    default: bool
    config: dict[str, Any]
    depends: list[dict[str, Any]]
    after: list[str]
    config_error: str | None = None


def describe_ops(gf) -> list[OpInfo]:
    """The ops of a loaded gage.toml, in file order."""
    edges = graph.op_graph(gf.opdefs)
    default = _default_name(gf)
    return [
        _info(gf.project_dir, opdef, opdef.name == default, edges[opdef.name])
        for opdef in gf.opdefs.values()
    ]


def _default_name(gf) -> str | None:
    try:
        return gf.default_opdef().name
    except GageError:
        return None


def _info(project_dir: str, opdef: OpDef, default: bool, after: list[str]) -> OpInfo:
    config: dict[str, Any] = {}
    error = None
    if opdef.get_config():
        from ..config import run_config

        try:
            defaults = run_config.read_project_config(project_dir, opdef)
        except (GageError, OSError) as e:
            error = str(e)
        else:
            config = {key: val.value for key, val in sorted(defaults.items())}
    return OpInfo(
        opdef.name,
        opdef.get_description(),
        default,
        config,
        opdef.get_dependencies(),
        list(after),
        error,
    )
