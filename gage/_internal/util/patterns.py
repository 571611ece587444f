"""The one path pattern language of gage.toml.

Every path pattern in gage.toml is a gitignore-style glob (pathspec's
`gitignore` patterns): source code rules (`project/file_select`) and, here,
a dependency's `files` and an op's config files.

- `*` and `?` match within one path part, never across `/`; `**` matches
  any number of parts (`data/**/*.csv`, `**/*.json`).
- A dot file is a file like any other: `data/*` matches `data/.meta`.
  (The default source code rules exclude dot dirs with their own rule,
  `-**/.* dir`.)
- A pattern that matches a directory matches everything under it
  (`data/*` matches `data/imgs/a.png`).
- Source code rules read as in `.gitignore`: a pattern with no `/` but a
  trailing one matches at any depth (`*.py` is every `.py` file). A
  dependency's `files` and an op's config files are relative to their
  root (the project, or an upstream run): `*.csv` is a file at the top,
  as if the pattern began with `/`.

`matches` finds what an anchored pattern names under a root with one
walk, descending only into directories the pattern can reach.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["has_magic", "matches"]

_MAGIC = re.compile(r"[*?\[]")


def has_magic(pattern: str) -> bool:
    """Whether `pattern` is a glob rather than a plain path."""
    return _MAGIC.search(pattern) is not None


def matches(root: str, pattern: str) -> list[str]:
    """Paths relative to `root` (`/`-separated, sorted) of the files,
    links and directories that the anchored `pattern` names: a matched
    directory stands for everything under it and is listed itself, not
    its contents. Links are not followed."""
    parts = [p for p in pattern.strip("/").split("/") if p not in ("", ".")]
    literal = []
    for part in parts:
        if has_magic(part):
            break
        literal.append(part)
    start = "/".join(literal)
    deep = any("**" in p for p in parts)
    spec = _spec("/" + "/".join(parts))
    found: list[str] = []
    stack = [start]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if spec.match_file(path + ("/" if is_dir else "")):
                found.append(path)
            elif is_dir and (deep or path.count("/") + 1 < len(parts)):
                stack.append(path)
    return sorted(found)


def _spec(pattern: str) -> Any:
    import pathspec  # here: most commands never match a pattern

    return pathspec.PathSpec.from_lines("gitignore", [pattern])
