"""Hardening II (issue 19, items 14 and 17): smaller defects.

A run that makes a dangling link or a link loop passes `gage check` (the
link is recorded as a link, by its target text, and checked as one);
op names with control or bidi characters print escaped in tables.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gage._internal.cli import table

GAGE = [sys.executable, "-m", "gage"]


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    return proj


def gage(proj, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GAGE_RUNS=str(proj.parent / "runs"), NO_COLOR="1")
    return subprocess.run(
        GAGE + list(argv), cwd=proj, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_run_made_dangling_links(project):
    (project / "gage.toml").write_text(
        "[t]\nexec = \"sh -c 'ln -s nonexistent dangling; ln -s loop loop'\"\n"
    )
    assert gage(project, "run", "t", "-y", "-q").returncode == 0
    check = gage(project, "check", "1")
    assert check.returncode == 0, check.stdout + check.stderr
    [run_dir] = [
        p for p in (project.parent / "runs").iterdir() if p.name.endswith(".meta")
    ]
    link = project.parent / "runs" / run_dir.name[: -len(".meta")] / "dangling"
    os.unlink(link)
    os.symlink("elsewhere", link)  # another link: a change
    check = gage(project, "check", "1")
    assert check.returncode == 1 and "dangling" in check.stdout, check


@pytest.mark.parametrize("name", ["evil\u202etxt.exe", "a\x1b[31mred", "tab\there"])
def test_table_cells_escaped(name):
    text = table.table_text(["op"], [[name]])
    md = table.md_text(["op"], [[name]])
    for out in (text, md):
        assert not any(c in out for c in "\u202e\x1b\t"), out
    import io

    buf = io.StringIO()
    table.print_table(["op"], [[name]], file=buf)
    assert not any(c in buf.getvalue() for c in "\u202e\x1b\t")


def test_symlinked_meta_dir_refused(project, tmp_path):
    (project / "gage.toml").write_text('[t]\nexec = "python -c pass"\n')
    assert gage(project, "run", "t", "--stage", "-y", "-q").returncode == 0
    home = project.parent / "runs"
    [meta] = [p for p in home.iterdir() if p.name.endswith(".meta")]
    outside = tmp_path / "outside.meta"
    os.rename(meta, outside)
    os.symlink(outside, meta)
    before = sorted(os.listdir(outside))
    p = gage(project, "run", "--start", meta.name[: -len(".meta")], "-y")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "is a link" in lines[0], p.stderr
    assert sorted(os.listdir(outside)) == before  # nothing written there


def test_concurrent_rm_counts_its_own(project, tmp_path):
    import re

    (project / "gage.toml").write_text('[t]\nexec = "python -c pass"\n')
    for _ in range(3):
        assert gage(project, "run", "t", "-y", "-q").returncode == 0
    marker = tmp_path / "paused"
    env = dict(
        os.environ,
        GAGE_RUNS=str(project.parent / "runs"),
        GAGE_TEST_PAUSE="delete",
        GAGE_TEST_PAUSE_FILE=str(marker),
        GAGE_TEST_PAUSE_SECONDS="3",
    )
    first = subprocess.Popen(
        GAGE + ["runs", "rm", "-y", "-o", "t"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    from wait_util import wait_for

    wait_for(marker.exists, "the first rm to pause")
    second = gage(project, "runs", "rm", "-y", "-o", "t")
    out, err = first.communicate(timeout=60)
    counts = [
        int(m.group(1))
        for text in (out, second.stdout)
        for m in re.finditer(r"Deleted (\d+) run", text)
    ]
    assert sum(counts) == 3, (out, err, second.stdout, second.stderr)
    assert "?" not in out + second.stdout


def test_rm_removes_links_never_follows_them(project, tmp_path):
    """Runs whose dirs are links (out of the runs home, dangling, a
    loop) and a `.trash` that is a link: `runs rm` leaves no link in the
    trash and nothing outside the runs home is moved, changed or removed."""
    (project / "gage.toml").write_text('[t]\nexec = "python -c pass"\n')
    for _ in range(4):
        assert gage(project, "run", "t", "-y", "-q").returncode == 0
    home = project.parent / "runs"
    ids = sorted(p.name for p in home.iterdir() if len(p.name) == 32)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious\n")
    os.rename(home / ids[0], outside / "run0")
    os.symlink(outside / "run0", home / ids[0])  # run dir out of the home
    os.rename(home / (ids[1] + ".meta"), outside / "meta1")
    os.symlink(outside / "meta1", home / (ids[1] + ".meta"))
    _replace_with_link(home / ids[2], "nonexistent")  # dangling
    _replace_with_link(home / ids[3], ids[3])  # a loop
    before = _tree(outside)
    os.symlink(outside, home / ".trash")  # the trash, a link out
    p = gage(project, "runs", "rm", "-y", *ids)
    assert p.returncode == 0, p.stderr
    assert "Deleted 4 runs" in p.stdout, p.stdout
    trash = home / ".trash"
    assert trash.is_dir() and not trash.is_symlink()
    assert os.listdir(trash) == []
    assert [n for n in os.listdir(home) if not n.startswith(".")] == []
    assert _tree(outside) == before  # nothing followed


def _replace_with_link(path, target):
    import shutil

    shutil.rmtree(path)
    os.symlink(target, path)


def _tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("form", ["list", "string"])
def test_huge_exec_refused_at_load(project, form):
    """A command over 1 MiB could never start (ARG_MAX), and each run
    kept copies of it: gage.toml is refused with one line naming the
    file, line and key; nothing is staged. Just under the bound loads."""
    import json

    def write(n):
        words = ["python", "-c", "pass"] + ["x" * 999] * n
        val = json.dumps(words if form == "list" else " ".join(words))
        (project / "gage.toml").write_text(f"[big]\nexec = {val}\n")

    write(3000)  # about 3 MB
    p = gage(project, "run", "big", "-y")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("gage: gage.toml:2: op 'big': 'exec' is 2.9 MiB")
    assert "over the 1.0 MiB a command may have" in lines[0]
    home = project.parent / "runs"
    assert not home.exists() or not [n for n in os.listdir(home) if len(n) >= 32]
    write(1000)  # about 1 MB, under the bound
    p = gage(project, "ops")
    assert p.returncode == 0, p.stderr
