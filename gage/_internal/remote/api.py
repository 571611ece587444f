"""The library API of remotes: push, pull, list what a remote holds, and
pull a run with the same inputs instead of running it again.

`remote` is a remote's name (a table of gage.toml or the user config,
see `remote_spec`), a url or directory, a RemoteSpec, or an open
Backend; None means the default (`$remote`). `gf`: the loaded gage.toml
that names remotes, if any.
"""

from __future__ import annotations

from typing import Any

from ..project.remote_spec import RemoteSpec
from ..types import Run
from ..util.console import Progress
from .backend import Backend, open_backend
from .config import resolve_remote
from .push import Plan

__all__ = [
    "Plan",
    "fetch_files",
    "open_remote",
    "pull_needed",
    "pull_runs",
    "push_runs",
    "remote_runs",
]


def open_remote(remote: Any = None, gf: Any = None) -> Backend:
    """An open remote (connected, for ssh); see the module doc."""
    if isinstance(remote, Backend):
        return remote
    spec = remote if isinstance(remote, RemoteSpec) else resolve_remote(remote, gf)
    return open_backend(spec)


def push_runs(
    runs: list[Run],
    remote: Any = None,
    gf: Any = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    force: bool = False,
) -> Plan:
    """Push `runs` to `remote`: the plan, carried out unless `dry_run`.
    `force` sends every run and file again (see push.plan_push)."""
    from .push import plan_push, push

    b = open_remote(remote, gf)
    plan = plan_push(b, runs, force)
    return plan if dry_run else push(b, plan, progress)


def pull_runs(
    runs_home: str,
    specs: list[str] | None = None,
    remote: Any = None,
    gf: Any = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> tuple[Plan, list[Run]]:
    """Pull the runs `specs` name (all when None) from `remote` into
    `runs_home`: the plan and the runs pulled (none when `dry_run`)."""
    from .pull import plan_pull, pull, select_entries

    b = open_remote(remote, gf)
    plan = plan_pull(runs_home, b, select_entries(b, specs or []))
    return plan, ([] if dry_run else pull(runs_home, b, plan, progress))


def remote_runs(remote: Any = None, gf: Any = None) -> list[dict[str, Any]]:
    """Records of the runs on `remote`, oldest first (as `gage runs
    --json` gives them, with `pushed` and `pushed_from`)."""
    from .layout import list_entries

    out = []
    for e in list_entries(open_remote(remote, gf)):
        record = dict(
            e["run"], pushed=e.get("pushed"), pushed_from=e.get("pushed_from")
        )
        record["input_key"] = e.get("input_key")
        out.append(record)
    return out


def pull_needed(
    runs_home: str, key: str, remote: Any = None, gf: Any = None
) -> Run | None:
    """A completed run with inputs key `key` pulled from `remote` into
    `runs_home` (see op_inputs.find_run), or None when it has none."""
    from .pull import pull_matching

    return pull_matching(runs_home, open_remote(remote, gf), key)


def fetch_files(
    runs_home: str,
    absent: list[Any],
    remote: Any = None,
    gf: Any = None,
    say: Any = None,
) -> None:
    """Fetch pinned project files that are missing (`absent`, from
    stage_op.absent_files) from `remote` into the object cache of
    `runs_home`, verified against their sha256 (see remote/fetch.py)."""
    from .fetch import fetch_absent

    if absent:
        fetch_absent(runs_home, open_remote(remote, gf), absent, say)
