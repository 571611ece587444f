"""sha256 pins of dependencies, and pinned project files that are not in
the project.

A `project-files` dependency pins its files with `sha256` (a string for
its only file, else a table path -> sha256). A pinned file that is
missing from the project is no error by itself: its bytes are named by
the pin, so they can come from the runs home's object cache, where a
remote puts them (`gage run --remote NAME`, `gage repro --remote NAME`,
or the `"$remote"` default: see remote/fetch.py). Staging places such a
file from the object cache and the runner log says so; the project is
never changed. Missing and not in the object cache, staging fails with
one line that says a remote can fetch it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..store import hash_cache, objects
from ..types import DependencyError
from ..util import patterns

__all__ = [
    "Absent",
    "absent_error",
    "merge_digests",
    "pinned_paths",
    "split_absent",
    "unfetched",
]


@dataclass(frozen=True)
class Absent:
    """A pinned project file that is not in the project: `source` (its
    path in the project), `digest` (its pin), `where` (the dependency)."""

    where: str
    source: str
    digest: str
    root: str


def pinned_paths(spec: dict[str, Any]) -> dict[str, str]:
    """Path -> sha256 a `project-files` spec pins by name, known from the
    spec alone (a string pin counts when `files` is one plain path)."""
    val = spec.get("sha256")
    if val is None or spec.get("type") != "project-files" or spec.get("link"):
        return {}
    if isinstance(val, str):
        files = spec.get("files")
        if isinstance(files, list) and len(files) == 1:
            files = files[0]
        if isinstance(files, str) and not patterns.has_magic(files):
            return {os.path.normpath(files): val}
        return {}
    return {os.path.normpath(k): v for k, v in val.items()}


def split_absent(
    root: str, globs: list[str], spec: dict[str, Any], where: str
) -> tuple[list[str], tuple[Absent, ...]]:
    """The patterns to match in the project, and the pinned plain paths
    that are not there (`Absent`)."""
    pinned = pinned_paths(spec)
    if not pinned:
        return globs, ()
    absent: dict[str, Absent] = {}
    for pat in globs:
        rel = os.path.normpath(pat)
        if patterns.has_magic(pat) or rel not in pinned:
            continue
        if not os.path.lexists(os.path.join(root, rel)):
            absent[rel] = Absent(where, rel, pinned[rel], root)
    rest = [
        p for p in globs if patterns.has_magic(p) or os.path.normpath(p) not in absent
    ]
    return rest, tuple(absent.values())


def merge_digests(
    sources: list[str], present: list[str], absent: tuple[Absent, ...]
) -> list[str]:
    """Digests in `sources` order: each absent file's pin, the others'
    from `present` (in order)."""
    pins = {a.source: a.digest for a in absent}
    rest = iter(present)
    return [pins[s] if s in pins else next(rest) for s in sources]


def unfetched(
    runs_home: str, absent: list[Absent], cache: hash_cache.HashCache | None = None
) -> list[Absent]:
    """Those of `absent` whose object is not in the object cache."""
    if not absent:
        return []
    if cache is not None:
        return [a for a in absent if not objects.has_object(runs_home, a.digest, cache)]
    from ..store import run_meta

    with hash_cache.open_cache(run_meta.hash_cache_path(runs_home)) as c:
        return unfetched(runs_home, absent, c)


def absent_error(a: Absent) -> DependencyError:
    """The line for a pinned file that is neither in the project nor in
    the object cache."""
    return DependencyError(
        f"{a.where}: file '{a.source}' not found in project ({a.root}): it is "
        f"pinned by sha256 ({a.digest[:12]}): restore it, or fetch it from a "
        'remote with --remote NAME (or set "$remote" in gage.toml)'
    )
