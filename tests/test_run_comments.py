"""Comments: appended whole by concurrent writers, deleted without
losing a concurrent append, never an input of the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gage._internal.history import run_comments
from gage._internal.home import runs
from gage._internal.lifecycle import run_verify
from gage._internal.store import run_meta
from gage._internal.types import GageError

_WRITER = """
import sys
from gage._internal.history import run_comments
from gage._internal.home import runs
run = runs.load_run(sys.argv[1])
who, n = sys.argv[2], int(sys.argv[3])
for i in range(n):
    run_comments.comment_run(run, f"{who} {i} " + "x" * (i % 7) * 300, author=who)
"""

_DELETER = """
import os, sys
from gage._internal.history import run_comments
from gage._internal.home import runs
run = runs.load_run(sys.argv[1])
i = 0
while i < int(sys.argv[2]) or not os.path.exists(sys.argv[3]):
    i += 1
    run_comments.comment_run(run, f"tmp {i}", author="d")
    comments = run_comments.list_comments(run)
    n = next(j for j, c in enumerate(comments, 1) if c["text"] == f"tmp {i}")
    run_comments.delete_comment(run, n)
"""


@pytest.fixture
def run(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text('[train]\nexec = "python -c pass"\n')
    home = tmp_path / "runs"
    env = {**os.environ, "GAGE_RUNS": str(home)}
    gage = os.path.join(os.path.dirname(sys.executable), "gage")
    subprocess.run([gage, "run", "train", "-y", "-q"], cwd=project, env=env, check=True)
    return runs.select_run(str(home))


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args])


def test_two_writers_lose_nothing(run, tmp_path):
    # Two writers append while a third adds and deletes its own
    # comments (read, then replace the file) until both are done.
    n = 400
    done = str(tmp_path / "done")
    deleter = _start(_DELETER, run.run_dir, "20", done)
    writers = [_start(_WRITER, run.run_dir, who, str(n)) for who in ("a", "b")]
    for p in writers:
        assert p.wait(timeout=120) == 0
    open(done, "w").close()
    assert deleter.wait(timeout=120) == 0
    comments = run_comments.list_comments(run)
    # Every line is one whole comment: nothing torn, nothing lost.
    with open(os.path.join(run.meta_dir, "comments"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == len(comments) == 2 * n
    for who in ("a", "b"):
        mine = [c["text"].split()[1] for c in comments if c["author"] == who]
        assert mine == [str(i) for i in range(n)]  # in order, each once
    assert not [c for c in comments if c["author"] == "d"]


def test_comments_are_no_input(run):
    key = run_meta.read_input_key(run)
    seal = run_meta.read_seal(run)
    run_comments.comment_run(run, "first try", author="me", time=1_000_000)
    run_comments.comment_run(run, "  two\nlines ", author="you")
    assert run_meta.read_input_key(run) == key
    assert run_meta.read_seal(run) == seal
    assert run_verify.verify_run(run) == []
    comments = run_comments.list_comments(run)
    assert comments[0] == {"author": "me", "time": 1_000_000, "text": "first try"}
    assert comments[1]["text"] == "two\nlines"
    assert run_comments.delete_comment(run, 1)["text"] == "first try"
    assert [c["text"] for c in run_comments.list_comments(run)] == ["two\nlines"]


def test_bad_comments(run):
    with pytest.raises(GageError, match="the comment is empty"):
        run_comments.comment_run(run, "  ")
    with pytest.raises(GageError, match="has no comment 1: it has none"):
        run_comments.delete_comment(run, 1)
    run_comments.comment_run(run, "ok")
    with pytest.raises(GageError, match=r"has no comment 3: it has 1 \(1 to 1\)"):
        run_comments.delete_comment(run, 3)
    # A torn or foreign line is skipped, never fatal.
    with open(os.path.join(run.meta_dir, "comments"), "a") as f:
        f.write('{"text": "half\n[1, 2]\n')
    assert [c["text"] for c in run_comments.list_comments(run)] == ["ok"]
    assert json.loads(json.dumps(run_comments.list_comments(run)))
