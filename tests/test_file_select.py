"""Unit and property tests for source code rules and the pruned walk."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gage._internal import run_util
from gage._internal.project import file_select
from gage._internal.project.file_select import parse_rule, select_files
from gage._internal.store import run_meta
from gage._internal.types import OpCmd, OpDef, OpRef, StageError


def _write(root, rel, text="x\n"):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------
# Parsing


def test_parse_rule_all_qualifiers():
    r = parse_rule("-data/** binary size<100 size>1 max-matches=3 sentinel=x/y")
    assert (r.include, r.pattern, r.type) == (False, "data/**", "binary")
    assert (r.size_lt, r.size_gt, r.max_matches, r.sentinel) == (100, 1, 3, "x/y")


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "   ",
        "-",
        "* bogus",
        "* size<",
        "* size<-1",
        "* max-matches=x",
        "* text dir",
        "* sentinel=",
    ],
)
def test_bad_rules_raise_stage_error(rule):
    with pytest.raises(StageError) as e:
        parse_rule(rule)
    assert "source code rule" in str(e.value)


_names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


@given(
    pattern=_names,
    include=st.booleans(),
    type=st.sampled_from([None, "text", "binary", "dir"]),
    size_lt=st.none() | st.integers(0, 10**9),
    max_matches=st.none() | st.integers(0, 10**6),
)
def test_parse_rule_round_trip(pattern, include, type, size_lt, max_matches):
    parts = [("" if include else "-") + pattern]
    if type:
        parts.append(type)
    if size_lt is not None:
        parts.append(f"size<{size_lt}")
    if max_matches is not None:
        parts.append(f"max-matches={max_matches}")
    r = parse_rule(" ".join(parts))
    assert (r.include, r.pattern, r.type) == (include, pattern, type)
    assert (r.size_lt, r.max_matches) == (size_lt, max_matches)


# ---------------------------------------------------------------------------
# Selection


def test_excluded_dirs_are_never_walked(tmp_path, monkeypatch):
    root = str(tmp_path)
    _write(root, "train.py")
    for i in range(50):
        _write(root, f".venv/lib/m{i}/x.py")
    _write(root, ".venv/bin/activate")
    _write(root, "env/bin/activate")
    _write(root, "env/lib/y.py")
    _write(root, "skip/.nocopy")
    _write(root, "skip/deep/z.py")
    walked = []
    real_scandir = os.scandir

    def scandir(path):
        walked.append(os.path.relpath(path, root))
        return real_scandir(path)

    monkeypatch.setattr(file_select.os, "scandir", scandir)
    sel = select_files(root, file_select.parse_rules(file_select.DEFAULT_RULES))
    assert sel.files == ["train.py"]
    assert walked == ["."]
    assert {s.path for s in sel.skipped} == {".venv/", "env/", "skip/"}


def test_last_matching_rule_wins(tmp_path):
    root = str(tmp_path)
    for name in ["a.py", "b.py", "c.txt"]:
        _write(root, name)
    rules = file_select.parse_rules(["*", "-*.py", "b.py"])
    assert select_files(root, rules).files == ["b.py", "c.txt"]


@settings(max_examples=30, deadline=None)
@given(
    names=st.lists(_names, min_size=0, max_size=12, unique=True),
    limit=st.integers(0, 12),
)
def test_max_matches_takes_first_n_in_path_order(tmp_path_factory, names, limit):
    root = str(tmp_path_factory.mktemp("src"))
    for name in names:
        _write(root, name + ".txt")
    rules = file_select.parse_rules([f"*.txt max-matches={limit}"])
    sel = select_files(root, rules)
    expected = sorted(n + ".txt" for n in names)
    assert sel.files == expected[:limit]
    skipped = len(expected) - min(limit, len(expected))
    assert [s.reason for s in sel.skipped] == ["limit"] * skipped
    warnings = sel.warnings()
    assert len(warnings) == (1 if skipped else 0)
    if skipped:
        assert warnings[0].startswith(f"{skipped} file")


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=8))
def test_size_limits(tmp_path_factory, sizes):
    root = str(tmp_path_factory.mktemp("src"))
    for i, size in enumerate(sizes):
        _write(root, f"f{i}.txt", "x" * size)
    sel = select_files(root, file_select.parse_rules(["* size>10 size<200"]))
    expected = [f"f{i}.txt" for i, size in enumerate(sizes) if 10 < size < 200]
    assert sel.files == expected


def test_text_detection(tmp_path):
    root = str(tmp_path)
    _write(root, "utf8.txt", "h\u00e9llo " * 300)  # multi-byte char cut at 1024
    with open(os.path.join(root, "nul.bin"), "wb") as f:
        f.write(b"abc\x00def")
    assert file_select.is_text_file(os.path.join(root, "utf8.txt"))
    assert not file_select.is_text_file(os.path.join(root, "nul.bin"))


# ---------------------------------------------------------------------------
# Runs


def test_make_run_threads_unique(tmp_path):
    ids: list[str] = []
    lock = threading.Lock()

    def make():
        for _ in range(50):
            run = run_util.make_run(str(tmp_path))
            with lock:
                ids.append(run.id)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 400
    assert sorted(os.listdir(tmp_path)) == sorted(ids)


def test_finalize_keeps_logs_writable_and_seals_manifest(tmp_path):
    src = tmp_path / "src"
    _write(str(src), "train.py")
    run = run_util.make_run(str(tmp_path / "runs"))
    run_util.init_run_meta(
        run, OpRef("t", "t"), OpDef("t", {}), OpCmd(["true"], {}), {}, {}
    )
    run_util.stage_run(run, str(src))

    def writable(*parts):
        mode = os.stat(os.path.join(run.meta_dir, *parts)).st_mode
        return bool(mode & stat.S_IWUSR)

    assert writable("log", "files")
    assert writable("log", "runner")
    assert not writable("manifest")
    assert not writable("seal")
    assert not writable("staged")
    train = os.path.join(run.run_dir, "train.py")
    assert not os.stat(train).st_mode & 0o222
    # The project's file is untouched
    assert os.stat(src / "train.py").st_mode & stat.S_IWUSR


def test_stage_never_changes_project(tmp_path):
    src = tmp_path / "src"
    for i in range(20):
        _write(str(src), f"m{i}.py", f"v = {i}\n")
    before = {
        p: (
            os.stat(src / p).st_mode,
            os.stat(src / p).st_mtime_ns,
            (src / p).read_bytes(),
        )
        for p in os.listdir(src)
    }
    run = run_util.make_run(str(tmp_path / "runs"))
    run_util.init_run_meta(
        run, OpRef("t", "t"), OpDef("t", {}), OpCmd(["true"], {}), {}, {}
    )
    run_util.stage_run(run, str(src))
    after = {
        p: (
            os.stat(src / p).st_mode,
            os.stat(src / p).st_mtime_ns,
            (src / p).read_bytes(),
        )
        for p in os.listdir(src)
    }
    assert before == after


def test_manifest_digest_is_of_the_file_after_an_in_place_change(tmp_path):
    # Copying remembers each small file's digest from the bytes it wrote.
    # A later change that keeps size and mtime must still be seen.
    src = tmp_path / "src"
    _write(str(src), "train.py", "lr = 0.1\n")
    run = run_util.make_run(str(tmp_path / "runs"))
    run_util.init_run_meta(
        run, OpRef("t", "t"), OpDef("t", {}), OpCmd(["true"], {}), {}, {}
    )
    run_util.copy_sourcecode(str(src), run)
    staged = os.path.join(run.run_dir, "train.py")
    st = os.stat(staged)
    with open(staged, "r+") as f:
        f.write("lr = 0.2\n")
    os.utime(staged, ns=(st.st_atime_ns, st.st_mtime_ns))
    run_util.finalize_staged_run(run)
    [entry] = run_meta.read_manifest(run)
    assert entry.sha256 == hashlib.sha256(b"lr = 0.2\n").hexdigest()


def test_matcher_same_as_pathspec():
    """The walk matches with the patterns' regexes directly: the same
    answers as pathspec's match_file for walk paths."""
    import pathspec

    from gage._internal.project.file_select import _matcher

    pats = [
        "*.py",
        "**/*",
        "**/.*",
        "train.py",
        "/a/b",
        "a/",
        "**/x/**",
        "!foo",
        "data/**/*.bin",
        "[ab]*.c",
        "a?b",
        "\\#x",
        "**/",
        "b/**",
    ]
    paths = [
        "a.py",
        "x/a.py",
        "train.py",
        "x/train.py",
        "a/b",
        "a/b/c",
        "a/",
        "a",
        "x/y/z.bin",
        "data/q/r.bin",
        "data/r.bin",
        ".git/",
        ".hidden",
        "x/.h/y",
        "foo",
        "bc.c",
        "a.c",
        "aXb",
        "#x",
        "b/c",
        "b/",
        "x/",
        "c/x/d",
    ]
    for pat in pats:
        spec = pathspec.PathSpec.from_lines("gitignore", [pat])
        match = _matcher(spec)
        assert match is not spec.match_file
        for path in paths:
            assert match(path) == spec.match_file(path), (pat, path)


def test_known_patterns_are_pathspecs_regexes():
    """The default rules' globs match without pathspec (KNOWN_PATTERNS):
    each is the regex pathspec compiles the glob to, an include pattern,
    and the default rules use no other glob."""
    import pathspec

    from gage._internal.project.file_select import (
        DEFAULT_RULES,
        KNOWN_PATTERNS,
        _pattern_matcher,
    )

    assert {parse_rule(r).pattern for r in DEFAULT_RULES} <= set(KNOWN_PATTERNS)
    for pat, regex in KNOWN_PATTERNS.items():
        (compiled,) = pathspec.PathSpec.from_lines("gitignore", [pat]).patterns
        assert (compiled.regex.pattern, compiled.include) == (regex, True), pat
        spec = pathspec.PathSpec.from_lines("gitignore", [pat])
        for path in ("a.py", "x/.h/y", ".git/", "a/b/c", "x/", ".hidden", "a"):
            assert _pattern_matcher(pat)(path) == spec.match_file(path), (pat, path)


def test_default_rules_select_without_pathspec(tmp_path):
    import subprocess
    import sys

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "b.py").write_text("y = 2\n")
    code = (
        "import sys\n"
        "from gage._internal.project import file_select as fs\n"
        "rules = fs.parse_rules(fs.DEFAULT_RULES)\n"
        "sel = fs.select_files(sys.argv[1], rules)\n"
        "print(sel.files, 'pathspec' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == "['a.py'] False"
