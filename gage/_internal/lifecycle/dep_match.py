"""The files a dependency's `files` patterns name under its root
(the project, or an upstream run dir), each with its stat.

A pattern names files and folders (`util.patterns`); a folder is walked
once, with `os.scandir`, and each file's stat is its entry's (one
`lstat`, no path resolved), so staging and `--needed` need take no
other. Containment is checked once per dir a match is in, and for each
link (followed only when it stays inside the root); the dirs a walk
descends are inside the root, so no file is checked again. A link that
leads out of the root, or nowhere, is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..types import DependencyError
from ..util import file_util, patterns

__all__ = ["match_files", "replaced_folders"]


def match_files(
    root: str,
    globs: list[str],
    where: str,
    root_desc: str,
    stats: bool = True,
    walked: list[str] | None = None,
) -> dict[str, os.stat_result | None]:
    """Path relative to root -> stat (links followed) of each file the
    patterns name, in path order. A folder is walked once (`_walk`);
    containment is checked once per dir a match is in and for each link,
    not per file. Without `stats`, a folder's files have none (None).
    `walked`: given a list, each folder walked in which no link was met
    is added to it (every regular file under it is then matched, by its
    own path)."""
    real_root = os.path.realpath(root)
    inside = _Inside(real_root, root, where, root_desc, stats)
    found: dict[str, os.stat_result | None] = {}
    for pat in globs:
        if patterns.has_magic(pat):
            matches = patterns.matches(root, pat)
            if not matches:
                raise DependencyError(
                    f"{where}: no files match '{pat}' in {root_desc} ({root})"
                )
        else:
            matches = [os.path.normpath(pat)]
        for rel in matches:
            rel = os.path.normpath(rel)
            st = inside.stat(rel)
            if stat.S_ISDIR(st.st_mode):
                files, linked = _walk(inside, rel)
                found.update(files)
                if walked is not None and not linked:
                    walked.append(rel)
            else:
                found[rel] = st
    return dict(sorted(found.items()))


@dataclass
class _Inside:
    """Containment of paths under a root, each dir's checked once."""

    real_root: str
    root: str
    where: str
    root_desc: str
    stats: bool = True
    dirs: dict[str, bool] = field(default_factory=dict)

    def stat(self, rel: str) -> os.stat_result:
        """The stat of `rel` (a link followed), refused when it, or a
        dir it is in, leads outside the root; not found: raised."""
        full = os.path.join(self.root, rel)
        parent = os.path.dirname(full)
        ok = self.dirs.get(parent)
        if ok is None:
            ok = self.dirs[parent] = self._ok(os.path.realpath(parent))
        try:
            st: os.stat_result | None = os.lstat(full)
        except OSError:
            st = None
        if not ok or (st and stat.S_ISLNK(st.st_mode)):
            self.check(full, rel)
            with contextlib.suppress(OSError):
                st = os.stat(full)  # a link followed
        if st is None or stat.S_ISLNK(st.st_mode):
            raise DependencyError(
                f"{self.where}: file '{rel}' not found in {self.root_desc} "
                f"({self.root})"
            )
        return st

    def check(self, full: str, rel: str) -> None:
        real = os.path.realpath(full)
        if not self._ok(real):
            raise DependencyError(
                f"{self.where}: '{rel}' resolves to {real}, outside "
                f"{self.root_desc}: a dependency must stay inside its root"
            )

    def target(self, full: str, rel: str) -> os.stat_result:
        """The stat of what the link `full` leads to (checked inside)."""
        try:
            return os.stat(full)
        except OSError:
            raise DependencyError(
                f"{self.where}: '{rel}' is a broken link in {self.root_desc}"
            ) from None

    def _ok(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root + os.sep)


def _walk(
    inside: _Inside, reldir: str
) -> tuple[dict[str, os.stat_result | None], bool]:
    """Files under a dir and their stats (links followed when they stay
    inside the root): one scandir walk, a file's stat from its entry
    (one lstat, no path resolved; none without `inside.stats`); a link
    alone is resolved. The dirs walked are inside the root (the walk
    follows no link it has not checked), so no file's containment is
    checked again. Also whether a link was met."""
    files: dict[str, os.stat_result | None] = {}
    linked = False
    for sub, entry in file_util.walk_files(inside.root, reldir, follow_links=True):
        if entry.is_symlink():
            linked = True
            inside.check(entry.path, sub)
            st = inside.target(entry.path, sub)
            if stat.S_ISDIR(st.st_mode):
                continue
            files[sub] = st
        else:
            files[sub] = entry.stat(follow_symlinks=False) if inside.stats else None
    return files, linked


def replaced_folders(root: str, specs: list[dict[str, Any]]) -> list[str]:
    """Folders under `root` (the project) that a project-files
    dependency names by their path (no pattern) and places whole at the
    same path: each of their files is replaced by the dependency's, so
    the source code walk of staging need not descend them (a dependency
    that cannot be placed fails staging)."""
    found = []
    for spec in specs:
        if not isinstance(spec, dict) or spec.get("type") != "project-files":
            continue
        if spec.get("target-path", "") not in ("", "."):
            continue  # placed elsewhere
        val = spec.get("files")
        for pat in [val] if isinstance(val, str) else val or []:
            if not isinstance(pat, str) or patterns.has_magic(pat):
                continue
            rel = os.path.normpath(pat)
            full = os.path.join(root, rel)
            if rel in (".", "..") or rel.startswith(("..", os.sep)):
                continue
            if os.path.isdir(full) and not os.path.islink(full):
                found.append(rel.replace(os.sep, "/"))
    return found
