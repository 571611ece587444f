"""Hardening II (issue 19, item 1): a full disk.

The runs home is on a small tmpfs mounted for the test (root only; the
test skips when mount is not permitted). A run whose output fills it
ends with a status and what output fit, one `gage:` warning saying
where the output was cut, no traceback and no hang; finalize on a full
disk still records `stopped`; every listing and deleting verb works on
a full disk (the runs index is a cache: not written then).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

GAGE = [sys.executable, "-m", "gage"]


@pytest.fixture
def disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def project(tmp_path, disk):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "gage.toml").write_text(
        textwrap.dedent(
            """
            [fill]
            exec = "python fill.py"

            [fill-dir]
            exec = "python fill_dir.py"

            [hello]
            exec = "python -c 'print(1)'"
            """
        )
    )
    (proj / "fill.py").write_text(
        textwrap.dedent(
            """
            import sys
            for i in range(8000):
                sys.stdout.write("x" * 999 + "\\n")
            sys.stdout.flush()
            sys.stderr.write("the run's own last words\\n")
            sys.exit(3)
            """
        )
    )
    (proj / "fill_dir.py").write_text(
        textwrap.dedent(
            """
            import os
            fd = os.open("big", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"x" * 4096)
            except OSError:
                pass
            print("filled")
            """
        )
    )
    return proj


def gage(proj, disk, *argv: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ, GAGE_RUNS=str(disk / "runs"), NO_COLOR="1")
    return subprocess.run(
        GAGE + list(argv),
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test
    )


def fill(disk, leave: int = 0) -> None:
    """Fill the disk with a file of its own (removed with the mount), then
    free `leave` bytes of it."""
    fd = os.open(disk / f"filler-{uuid.uuid4().hex}", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    os.close(fd)


def only_run(disk) -> str:
    home = disk / "runs"
    [meta] = [n for n in os.listdir(home) if n.endswith(".meta")]
    return str(home / meta)


def test_output_fills_disk(project, disk):
    p = gage(project, disk, "run", "fill", "-y", "-q")
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 3, p.stderr  # the run's own exit code
    warnings = [line for line in p.stderr.splitlines() if "output cut" in line]
    assert len(warnings) == 1, p.stderr
    assert warnings[0].startswith("gage: warning: ")
    meta = only_run(disk)
    assert os.path.join(meta, "output", "40_run") in warnings[0]
    assert os.path.getsize(os.path.join(meta, "output", "40_run")) > 100_000
    for name in ("exit_code", "stopped"):
        assert os.path.exists(os.path.join(meta, name)), name
    with open(os.path.join(meta, "log", "runner")) as f:
        assert "output cut at" in f.read()
    runs = gage(project, disk, "runs")
    assert runs.returncode == 0 and " error " in runs.stdout, runs


def test_finalize_on_full_disk_records_stopped(project, disk):
    p = gage(project, disk, "run", "fill-dir", "-y", "-q")
    assert "Traceback" not in p.stderr, p.stderr
    meta = only_run(disk)
    for name in ("exit_code", "stopped"):
        assert os.path.exists(os.path.join(meta, name)), (name, p.stderr)
    runs = gage(project, disk, "runs")
    assert "completed" in runs.stdout, runs


def test_verbs_work_on_full_disk(project, disk):
    for _ in range(2):
        assert gage(project, disk, "run", "hello", "-y", "-q").returncode == 0
    gage(project, disk, "runs")  # the index exists, and knows both
    assert gage(project, disk, "run", "hello", "-y", "-q").returncode == 0
    # The index must now be written to list the third run: the disk
    # gives sqlite a page or two, not what a transaction needs.
    fill(disk, leave=8192)
    for argv in (["runs"], ["show", "1"], ["check", "1"], ["runs", "rm", "-y", "1"]):
        p = gage(project, disk, *argv)
        assert "Traceback" not in p.stderr, (argv, p.stderr)
        assert p.returncode == 0, (argv, p.stdout, p.stderr)
    runs = gage(project, disk, "runs")
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.count("hello") == 2, runs.stdout
