"""An op's source code: its rules and what they select in a project.

The rules are the op's `sourcecode` or the defaults (see file_select for
the rule language and the walk). Computing an op's inputs before staging
(op_inputs) and staging itself (run_stage) select through here, so both
see the same files; this module imports only what selecting needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..types import OpDef, StageError
from . import file_select

KnownText = Callable[[os.stat_result], "bool | None"]

__all__ = [
    "SourcecodePreview",
    "preview_sourcecode",
    "select_rules",
    "select_sourcecode",
    "sourcecode_rules",
]


def sourcecode_rules(opdef: OpDef) -> list[str]:
    """Rule lines for an op: the defaults, or the op's `sourcecode`.

    An op `sourcecode` list that only excludes adds to the defaults;
    a list with any include replaces them.
    """
    rules = opdef.get_sourcecode()
    if rules is None:
        return list(file_select.DEFAULT_RULES)
    if rules and all(r.lstrip().startswith("-") for r in rules):
        return list(file_select.DEFAULT_RULES) + rules
    return rules


@dataclass(frozen=True)
class SourcecodePreview:
    """What `copy_sourcecode` would do: files and skipped paths with rules."""

    rules: list[str]
    files: list[str]
    skipped: list[file_select.Skipped]
    warnings: list[str]


def preview_sourcecode(
    src_dir: str, opdef: OpDef, runs_home: str | None = None
) -> SourcecodePreview:
    """Files that would be copied and, for each skipped path, why.

    A `runs_home` inside `src_dir` is never source code.
    """
    rules = sourcecode_rules(opdef)
    sel = select_rules(src_dir, rules, runs_home)
    file_select.add_files(sel, src_dir, required_files(src_dir, opdef))
    return SourcecodePreview(rules, sel.files, sel.skipped, sel.warnings())


def select_sourcecode(
    src_dir: str,
    opdef: OpDef,
    runs_home: str | None = None,
    known_text: KnownText | None = None,
    prefetch: file_select.Prefetch | None = None,
    skip: list[str] | None = None,
) -> file_select.Selection:
    """The source code selection staging would copy (nothing copied):
    what the rules select and the files the op needs (`required_files`).
    `skip`: dirs not walked, for a caller to whom nothing under them is
    source code (a folder a dependency replaces whole)."""
    rules = sourcecode_rules(opdef)
    sel = select_rules(src_dir, rules, runs_home, known_text, prefetch, skip)
    file_select.add_files(sel, src_dir, required_files(src_dir, opdef))
    return sel


def required_files(src_dir: str, opdef: OpDef) -> list[str]:
    """Files copied whatever the source code rules say: the project
    files the op's `exec` names (`python train.py`: train.py, in every
    phase) and its config files (config is applied to the copies)."""
    from ..types import GageError
    from .op_exec import split_exec

    found = []
    for val in opdef.get_exec().values():
        try:
            words, _env = split_exec(val)
        except (ValueError, TypeError):
            continue
        for word in words:
            if word.startswith("-") or os.path.isabs(word):
                continue
            if os.path.isfile(os.path.join(src_dir, word)):
                found.append(word)
    if opdef.get_config():
        from ..config import run_config

        try:
            found.extend(sorted(run_config.config_files(src_dir, opdef)))
        except GageError:
            pass  # staging names what is wrong with the op's config
    return found


def select_rules(
    src_dir: str,
    rules: list[str],
    runs_home: str | None,
    known_text: KnownText | None = None,
    prefetch: file_select.Prefetch | None = None,
    skip: list[str] | None = None,
) -> file_select.Selection:
    """The files `rules` select under `src_dir`; a `runs_home` inside
    it is pruned whatever the rules say, as are the dirs in `skip` (not
    listed as skipped: the caller knows why)."""
    if not os.path.isdir(src_dir):
        raise StageError(f"Source code dir does not exist: {src_dir}")
    never = []
    if runs_home:
        rel = os.path.relpath(os.path.realpath(runs_home), os.path.realpath(src_dir))
        if rel != "." and not rel.startswith(".."):
            never.append(rel.replace(os.sep, "/"))
    sel = file_select.select_files(
        src_dir,
        file_select.parse_rules(rules),
        never + (skip or []),
        known_text,
        prefetch,
    )
    if skip:
        quiet = {d + "/" for d in skip} - {d + "/" for d in never}
        sel.skipped[:] = [s for s in sel.skipped if s.path not in quiet]
    return sel
