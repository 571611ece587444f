"""util/patterns: the one path pattern language (gitignore globs) for
dependency `files` and config files, anchored at their root."""

from __future__ import annotations

import os

from gage._internal.util import patterns


def _tree(root, paths):
    for p in paths:
        full = os.path.join(root, p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        open(full, "w").close()


def test_matches(tmp_path):
    _tree(
        tmp_path, ["a.csv", "d/b.csv", "d/.c.csv", "d/e/f.csv", "d/e/g.txt", ".h/i.csv"]
    )
    root = str(tmp_path)
    assert patterns.matches(root, "*.csv") == ["a.csv"]
    assert patterns.matches(root, "d/*.csv") == ["d/.c.csv", "d/b.csv"]
    # A matched dir stands for everything under it.
    assert patterns.matches(root, "d/*") == ["d/.c.csv", "d/b.csv", "d/e"]
    assert patterns.matches(root, "**/*.csv") == [
        ".h/i.csv",
        "a.csv",
        "d/.c.csv",
        "d/b.csv",
        "d/e/f.csv",
    ]
    assert patterns.matches(root, "d/**/*.txt") == ["d/e/g.txt"]
    assert patterns.matches(root, "d/?.csv") == ["d/b.csv"]
    assert patterns.matches(root, "nope/*") == []


def test_links_not_descended(tmp_path):
    # A link is matched as a path; what is under it is the caller's to
    # read (a dependency checks that a link stays inside its root).
    _tree(tmp_path, ["real/x.csv"])
    os.symlink(tmp_path / "real", tmp_path / "link")
    root = str(tmp_path)
    assert patterns.matches(root, "*/x.csv") == ["real/x.csv"]
    assert patterns.matches(root, "l*") == ["link"]


def test_has_magic():
    assert (
        patterns.has_magic("d/*.csv")
        and patterns.has_magic("a?")
        and patterns.has_magic("[ab]")
    )
    assert not patterns.has_magic("data/train.csv")
