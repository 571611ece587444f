"""Which remote a command means: `--remote NAME`, else `$remote` in
gage.toml, else `$remote` in the user config; its table from gage.toml
or the user config (`remote_spec.user_config_path`; a table there
replaces the project's table of the same name).

A NAME that holds `/` or `://` is a url itself (`--remote /mnt/share`,
`--remote ssh://host/path`): no table is needed.
"""

from __future__ import annotations

import os
from typing import Any

from ..project import remote_spec
from ..project.remote_spec import RemoteSpec
from ..types import GagefileError

__all__ = ["default_remote", "remote_names", "resolve_remote"]


def resolve_remote(name: str | None, gf: Any = None) -> RemoteSpec:
    """The remote `name` means (the default when None). `gf`: the loaded
    gage.toml, if any. GagefileError when there is no such remote."""
    user_default, user_remotes = remote_spec.read_user_config()
    remotes = _remotes(gf, user_remotes)
    name = name or (gf.remote if gf is not None else None) or user_default
    if not name:
        raise GagefileError(
            'no remote given: use --remote NAME, or set "$remote" = "NAME" in '
            f"gage.toml ({_known(remotes)})"
        )
    if name in remotes:
        return remotes[name]
    if "/" in name or "://" in name:
        url = name if "://" in name else os.path.abspath(os.path.expanduser(name))
        return RemoteSpec(name, url)
    raise GagefileError(
        f"no remote named '{name}' in gage.toml or {remote_spec.user_config_path()} "
        f'({_known(remotes)}): add a ["$remotes".{name}] table with a url',
        key=name,
    )


def default_remote(gf: Any = None) -> str | None:
    """The `$remote` default of gage.toml, else of the user config."""
    return (gf.remote if gf is not None else None) or remote_spec.read_user_config()[0]


def remote_names(gf: Any = None) -> list[str]:
    return sorted(_remotes(gf, remote_spec.read_user_config()[1]))


def _remotes(gf: Any, user: dict[str, RemoteSpec]) -> dict[str, RemoteSpec]:
    remotes = dict((gf.remotes or {}) if gf is not None else {})
    remotes.update(user)
    return remotes


def _known(remotes: dict) -> str:
    return "remotes: " + ", ".join(sorted(remotes)) if remotes else "none defined"
