"""Include/exclude rules for source code and a pruned tree walk.

A rule is `[-]GLOB [text|binary|dir] [size<N] [size>N] [max-matches=N]
[sentinel=PATH]`. `-` excludes. Globs have gitignore semantics
(`pathspec`). For each path the last matching rule decides.

Rules typed `dir` apply to directories; an excluded directory is pruned:
it is never walked. Untyped rules whose glob ends with `/` apply to
directories too (`-tests/`). All other rules apply to files.

`select_files()` walks once with `os.scandir`, compiling each glob once.
It returns the files selected and, for every file or directory it
skipped, the rule (or reason) that skipped it.
"""

from __future__ import annotations

import collections
import os
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..types import SourceRule, StageError
from ..util import file_util

if TYPE_CHECKING:
    import pathspec

__all__ = [
    "DEFAULT_RULES",
    "Selection",
    "add_files",
    "Skipped",
    "is_text_file",
    "parse_rule",
    "parse_rules",
    "select_files",
]

DEFAULT_RULES = [
    "**/* text size<10000 max-matches=500",
    "-**/.* dir",
    "-**/* dir sentinel=bin/activate",
    "-**/* dir sentinel=.nocopy",
]

KNOWN_PATTERNS = {
    "**/*": ".",
    "**/.*": r"^(?:.+/)?\.[^/]*(?:/|$)",
}
"""The regexes pathspec compiles the default rules' globs to (an include
pattern each): the default rules select without importing pathspec,
which costs a small run more than the rest of its selection.
tests/test_file_select.py checks them against pathspec."""

# Told the (device, inode) of files about to be visited.
Prefetch = Callable[[list[tuple[int, int]]], None]

_TEXT_SAMPLE = 1024
_KEEP_FILE = 64 * 1024  # files up to this size are read whole when sniffed
_KEEP_TOTAL = 64 * 1024 * 1024  # and kept up to this many bytes in all
_LINK_TO_DIR = "link to a directory (not followed)"


@dataclass(frozen=True)
class Skipped:
    """A path that was not selected and why.

    `reason` is one of: `excluded` (an exclude rule matched), `pruned` (an
    excluded directory), `limit` (an include rule matched the name but a
    size or max-matches limit skipped it), `type` (text/binary mismatch),
    `unmatched` (no rule matched), `symlink` (a link that leaves the source
    dir or points to a directory), `special` (not a regular file),
    `unreadable`, `runs` (the runs home, never source code).
    """

    path: str
    reason: str
    rule: str | None = None
    detail: str | None = None

    def describe(self) -> str:
        """Why the path was skipped, in a few words."""
        if self.reason == "pruned":
            return f"directory pruned by '{self.rule}'"
        if self.reason == "excluded":
            return f"excluded by '{self.rule}'"
        if self.reason == "limit":
            return f"over the {self.detail} limit of '{self.rule}'"
        if self.reason == "type":
            return f"{self.detail}, required by '{self.rule}'"
        if self.reason == "unmatched":
            return "no include rule matches"
        return self.detail or self.reason


@dataclass(frozen=True)
class Selection:
    """Files selected (in path order), paths skipped, and what the walk
    already read: `stats` of selected files and, for small files read
    whole while checking their type, their `data`, so a copy need not
    read them again; `texts`: the text verdict of each selected file
    whose type a rule checked."""

    files: list[str]
    skipped: list[Skipped]
    stats: dict[str, os.stat_result] = field(default_factory=dict, repr=False)
    data: dict[str, bytes] = field(default_factory=dict, repr=False)
    texts: dict[str, bool] = field(default_factory=dict, repr=False)

    def warnings(self) -> list[str]:
        """What a user should know is missing: one line per rule whose
        limits skipped files, then one per file that could not be read or
        links out of the source dir."""
        counts: dict[tuple[str, str], int] = {}
        for s in self.skipped:
            if s.reason == "limit":
                key = (s.rule or "", s.detail or "")
                counts[key] = counts.get(key, 0) + 1
        warnings = [
            f"{n} file{'s' if n != 1 else ''} skipped by {detail} "
            f"of source code rule '{rule}' (to copy them, change the rule "
            "in the op's 'sourcecode')"
            for (rule, detail), n in sorted(counts.items())
        ]
        for s in self.skipped:
            if s.reason == "unreadable" or (
                s.reason == "symlink" and s.detail != _LINK_TO_DIR
            ):
                warnings.append(f"{s.path} skipped: {s.detail}")
        return warnings


# ---------------------------------------------------------------------------
# Rules


def parse_rules(lines: list[str]) -> list[SourceRule]:
    return [parse_rule(line) for line in lines]


def parse_rule(text: str) -> SourceRule:
    """Parse a rule line; raise StageError naming the rule when bad."""
    if not isinstance(text, str):
        raise StageError(f"source code rule {text!r} must be a string")
    parts = text.split()
    if not parts:
        raise StageError("source code rule is empty")
    pattern = parts[0]
    include = True
    if pattern.startswith("-"):
        include = False
        pattern = pattern[1:]
    if not pattern:
        raise StageError(f"source code rule '{text}' has no pattern")
    kw: dict[str, object] = {}
    for part in parts[1:]:
        if part in ("text", "binary", "dir"):
            if "type" in kw:
                raise StageError(
                    f"source code rule '{text}' has more than one type "
                    "(use one of text, binary, dir)"
                )
            kw["type"] = part
        elif part.startswith("size<"):
            kw["size_lt"] = _int_arg(part, "size<", text)
        elif part.startswith("size>"):
            kw["size_gt"] = _int_arg(part, "size>", text)
        elif part.startswith("max-matches="):
            kw["max_matches"] = _int_arg(part, "max-matches=", text)
        elif part.startswith("sentinel="):
            val = part[len("sentinel=") :]
            if not val:
                raise StageError(f"source code rule '{text}': sentinel needs a path")
            kw["sentinel"] = val
        else:
            raise StageError(
                f"source code rule '{text}': unknown qualifier '{part}' "
                "(expected text, binary, dir, size<N, size>N, max-matches=N "
                "or sentinel=PATH)"
            )
    try:
        if pattern not in KNOWN_PATTERNS:
            _spec(pattern)
    except Exception as e:
        raise StageError(f"source code rule '{text}': bad pattern: {e}") from None
    return SourceRule(text=text, include=include, pattern=pattern, **kw)  # type: ignore[arg-type]


def _int_arg(part: str, prefix: str, text: str) -> int:
    val = part[len(prefix) :]
    try:
        n = int(val)
    except ValueError:
        n = -1
    if n < 0:
        raise StageError(
            f"source code rule '{text}': '{part}' needs a whole number "
            f"(e.g. {prefix}100)"
        )
    return n


def _applies_to_dirs(rule: SourceRule) -> bool:
    return rule.type == "dir" or (rule.type is None and rule.pattern.endswith("/"))


# ---------------------------------------------------------------------------
# Walk


@dataclass
class _Compiled:
    """A source rule and how many files it matched."""

    rule: SourceRule
    matches: int = 0

    def __post_init__(self) -> None:
        self.match = _pattern_matcher(self.rule.pattern)


def _spec(pattern: str) -> pathspec.PathSpec:
    import pathspec  # here: the default rules' globs are KNOWN_PATTERNS

    return pathspec.PathSpec.from_lines("gitignore", [pattern])


def _pattern_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a path matches the glob `pattern` (gitignore style)."""
    known = KNOWN_PATTERNS.get(pattern)
    if known is None:
        return _matcher(_spec(pattern))
    search = re.compile(known).search
    return lambda path: search(path) is not None


def _matcher(spec: pathspec.PathSpec) -> Callable[[str], bool]:
    """`spec.match_file` for a path relative to the walk's root (`/`
    separators, no leading `/` or `./`: nothing to normalize), matched
    with its patterns' regexes directly: what pathspec's default
    backend does for regex patterns, without its per-call layers."""
    import pathspec

    try:
        pats = [(p.regex, p.include) for p in spec.patterns if p.include is not None]
        plain = all(
            type(p).match_file is pathspec.RegexPattern.match_file
            for p in spec.patterns
        )
    except AttributeError:
        plain = False
    if not plain or any(regex is None for regex, _ in pats):
        return spec.match_file

    def match(path: str) -> bool:
        found = False
        for regex, include in pats:
            if regex.search(path) is not None:
                found = include
        return bool(found)

    return match


def select_files(
    src_dir: str,
    rules: list[SourceRule],
    never: Iterable[str] = (),
    known_text: Callable[[os.stat_result], bool | None] | None = None,
    prefetch: Prefetch | None = None,
) -> Selection:
    """Walk `src_dir` once and apply `rules` (last match wins).

    `never` names directories (relative to `src_dir`) that are pruned
    whatever the rules say, such as a runs home inside the project.
    `known_text` gives the text verdict of a file by its stat when it is
    known (the digest cache), so the file is not read to check it;
    `prefetch`, when given, is told the (device, inode) of each dir's
    files that an include rule's pattern matches as the walk enters it,
    so it can look them up in one go.
    """
    compiled = [_Compiled(r) for r in rules]
    dir_rules = [c for c in compiled if _applies_to_dirs(c.rule)]
    file_rules = [c for c in compiled if c.rule.type != "dir"]
    sel = Selection([], [])
    real_root = os.path.realpath(src_dir)
    includes = [c.match for c in file_rules if c.rule.include]
    walk = _walk(
        src_dir,
        "",
        dir_rules,
        sel.skipped,
        real_root,
        frozenset(never),
        prefetch,
        lambda path: any(match(path) for match in includes),
    )
    kept = [0]
    for relpath, entry, kind in walk:
        if kind == "file":
            _select_file(relpath, entry, file_rules, sel, kept, known_text)
    sel.files.sort()
    sel.skipped.sort(key=lambda s: s.path)
    return sel


def add_files(sel: Selection, root: str, paths: Iterable[str]) -> None:
    """Add `paths` (relative to `root`) to `sel` whatever the rules said:
    the files an op cannot run without. A path that is not a regular file
    inside `root` is left out (staging or the run says why)."""
    real_root = os.path.realpath(root)
    have = set(sel.files)
    added = set()
    for rel in paths:
        rel = os.path.normpath(rel).replace(os.sep, "/")
        full = os.path.join(root, rel)
        if rel in have or rel.startswith("../") or os.path.isabs(rel):
            continue
        real = os.path.realpath(full)
        if not real.startswith(real_root + os.sep):
            continue
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sel.stats[rel] = st
            added.add(rel)
    if added:
        sel.files[:] = sorted(have | added)
        sel.skipped[:] = [s for s in sel.skipped if s.path not in added]


def _walk(
    root: str,
    reldir: str,
    dir_rules: list[_Compiled],
    skipped: list[Skipped],
    real_root: str,
    never: frozenset[str],
    prefetch: Prefetch | None = None,
    wanted: Callable[[str], bool] = lambda path: True,
) -> Iterator[tuple[str, os.DirEntry[str], str]]:
    """Files under `root/reldir`, pruned by `dir_rules`, level by level:
    the top level first, then each dir's files before deeper ones, so a
    max-matches limit keeps the project's own files over deep trees.

    A queue, not recursion: a tree of any depth is walked.
    """
    top = _entries(root, reldir, skipped)
    if prefetch and top:
        _prefetch(prefetch, os.stat(root).st_dev, reldir, top, wanted)
    queue = collections.deque([(reldir, iter(top or []))])
    while queue:
        parent, entries = queue[0]
        entry = next(entries, None)
        if entry is None:
            queue.popleft()
            continue
        relpath = parent + "/" + entry.name if parent else entry.name
        is_link = False
        try:
            is_link = entry.is_symlink()
            # The entry's type, no stat, unless it is a link.
            mode = _entry_mode(entry, is_link)
        except OSError as e:
            reason = "symlink" if is_link else "unreadable"
            detail = "broken link" if is_link else _err(e)
            skipped.append(Skipped(relpath, reason, detail=detail))
            continue
        if is_link:
            problem = _link_problem(entry.path, entry.stat(), real_root)
            if problem:
                skipped.append(Skipped(relpath, "symlink", detail=problem))
                continue
        if stat.S_ISDIR(mode):
            if relpath in never:
                skipped.append(Skipped(relpath + "/", "runs", detail="runs home"))
                continue
            rule = _dir_rule(relpath, entry.path, dir_rules)
            if rule and not rule.include:
                skipped.append(Skipped(relpath + "/", "pruned", rule.text))
            else:
                sub = _entries(root, relpath, skipped)
                if sub is not None:
                    if prefetch:
                        _prefetch(prefetch, entry.stat().st_dev, relpath, sub, wanted)
                    queue.append((relpath, iter(sub)))
        elif stat.S_ISREG(mode):
            yield relpath, entry, "file"
        else:
            skipped.append(Skipped(relpath, "special", detail="not a regular file"))


def _entry_mode(entry: os.DirEntry[str], is_link: bool) -> int:
    """The file type bits of an entry (a link followed): from the dir
    listing (no stat) for anything but a link."""
    if is_link:
        return entry.stat().st_mode
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return entry.stat(follow_symlinks=False).st_mode


def _prefetch(
    prefetch: Prefetch,
    dev: int,
    reldir: str,
    entries: list[os.DirEntry[str]],
    wanted: Callable[[str], bool],
) -> None:
    """Prefetch the dir's files that an include rule could select."""
    keys = []
    for e in entries:
        try:
            path = reldir + "/" + e.name if reldir else e.name
            if e.is_file(follow_symlinks=False) and wanted(path):
                keys.append((dev, e.inode()))
        except OSError:
            pass
    if keys:
        prefetch(keys)


def _entries(
    root: str, reldir: str, skipped: list[Skipped]
) -> list[os.DirEntry[str]] | None:
    """A dir's entries sorted by name; None (skipped) when unreadable."""
    path = os.path.join(root, reldir) if reldir else root
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        if not reldir:
            raise
        skipped.append(Skipped(reldir + "/", "unreadable", detail=e.strerror))
        return None


def _err(e: OSError) -> str:
    return e.strerror or str(e)


def _link_problem(path: str, st: os.stat_result, real_root: str) -> str | None:
    if stat.S_ISDIR(st.st_mode):
        return _LINK_TO_DIR
    target = os.path.realpath(path)
    if not (target == real_root or target.startswith(real_root + os.sep)):
        return "link to a file outside the source dir"
    return None


def _dir_rule(relpath: str, path: str, dir_rules: list[_Compiled]) -> SourceRule | None:
    candidate = relpath + "/"
    for c in reversed(dir_rules):
        if not c.match(candidate):
            continue
        r = c.rule
        if r.sentinel and not os.path.exists(os.path.join(path, r.sentinel)):
            continue
        return r
    return None


def _select_file(
    relpath: str,
    entry: os.DirEntry[str],
    file_rules: list[_Compiled],
    sel: Selection,
    kept: list[int],
    known_text: Callable[[os.stat_result], bool | None] | None,
) -> None:
    limited: Skipped | None = None
    mistyped: Skipped | None = None
    data: bytes | None = None
    text: bool | None = None
    for c in reversed(file_rules):
        if not c.match(relpath):
            continue
        r = c.rule
        size = entry.stat().st_size
        if r.size_lt is not None and not size < r.size_lt:
            if r.include and not limited:
                limited = Skipped(relpath, "limit", r.text, f"size<{r.size_lt}")
            continue
        if r.size_gt is not None and not size > r.size_gt:
            if r.include and not limited:
                limited = Skipped(relpath, "limit", r.text, f"size>{r.size_gt}")
            continue
        if r.type in ("text", "binary"):
            if text is None and known_text is not None:
                text = known_text(entry.stat())
            if text is None:
                try:
                    data = _read_head(entry.path, size, kept[0] < _KEEP_TOTAL)
                except OSError as e:
                    sel.skipped.append(Skipped(relpath, "unreadable", detail=_err(e)))
                    return
                text = _is_text(data[:_TEXT_SAMPLE], size)
            if text != (r.type == "text"):
                if r.include and not mistyped:
                    mistyped = Skipped(relpath, "type", r.text, f"not {r.type}")
                continue
        if not r.include:
            sel.skipped.append(Skipped(relpath, "excluded", r.text))
            return
        if r.max_matches is not None and c.matches >= r.max_matches:
            sel.skipped.append(
                Skipped(relpath, "limit", r.text, f"max-matches={r.max_matches}")
            )
            return
        c.matches += 1
        sel.files.append(relpath)
        sel.stats[relpath] = entry.stat()
        if text is not None:
            sel.texts[relpath] = text
        if data is not None and len(data) == size:
            sel.data[relpath] = data
            kept[0] += size
        return
    sel.skipped.append(limited or mistyped or Skipped(relpath, "unmatched"))


def _read_head(path: str, size: int, keep: bool) -> bytes:
    """The file's first bytes for a type check; all of it when it is small
    (and `keep`), so that copying it needs no second read."""
    return file_util.read_head(
        path, size if keep and size <= _KEEP_FILE else _TEXT_SAMPLE
    )


def is_text_file(path: str) -> bool:
    """True when the first bytes have no NUL and decode as UTF-8."""
    with file_util.open_regular(path) as f:
        sample = f.read(_TEXT_SAMPLE)
        size = os.fstat(f.fileno()).st_size
    return _is_text(sample, size)


def _is_text(sample: bytes, size: int) -> bool:
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the end of the sample is fine
        return e.start >= len(sample) - 3 and size > len(sample)
    return True
