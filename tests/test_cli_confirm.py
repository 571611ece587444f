"""`gage run` asks before it runs when used interactively (stdin a TTY)."""

from __future__ import annotations

import os
import sys

import pytest
from pty_util import run_in_pty

GAGE = os.path.join(os.path.dirname(sys.executable), "gage")


def _run_in_pty(args, cwd, answer: bytes, env) -> tuple[int, str]:
    code, out = run_in_pty(args, cwd=cwd, env=env, prompt=b"Continue?", answer=answer)
    return code, out.replace("\r\n", "\n")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "gage.toml").write_text(
        '[hello]\nexec = "python hello.py"\nconfig = "hello.py"\n'
    )
    (tmp_path / "hello.py").write_text('msg = "hi"\nprint(msg)\n')
    return tmp_path


@pytest.mark.parametrize(
    "answer, code, runs, shown",
    [
        (b"n\n", 1, 0, "cancelled: nothing staged"),
        (b"\n", 0, 1, "hello"),
        (b"y\n", 0, 1, "hello"),
    ],
)
def test_confirm(project, answer, code, runs, shown):
    env = {**os.environ, "GAGE_RUNS": str(project / "runs")}
    rc, out = _run_in_pty([GAGE, "run", "hello", "msg=hello"], project, answer, env)
    assert "You are about to run hello" in out
    assert "msg: hello" in out
    assert shown in out
    assert rc == code
    runs_dir = project / "runs"
    # A run dir and its meta dir per run; the runs home's own files
    # (.gage-hash-cache.sqlite3 once a file is old enough to record, ...)
    # are not runs.
    names = os.listdir(runs_dir) if runs_dir.exists() else []
    assert len([n for n in names if not n.startswith(".")]) == 2 * runs
