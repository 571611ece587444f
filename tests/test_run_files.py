"""`gage cat` and `gage open` on hostile paths: nothing outside the run
is shown or opened, nothing blocks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_TIMEOUT = 60


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text('[train]\nexec = "python train.py"\n')
    (project / "train.py").write_text(
        "import os\n"
        "os.makedirs('sub', exist_ok=True)\n"
        "open('sub/out.txt', 'w').write('hello\\n')\n"
        "os.symlink('sub/out.txt', 'inside')\n"
        "os.symlink('/etc/hostname', 'outside')\n"
        "os.symlink('..', 'up')\n"
        "os.mkfifo('fifo')\n"
        "print('trained')\n"
    )
    (tmp_path / "secret.txt").write_text("secret\n")
    _gage(project, "run", "train", "-y", "-q")
    return project


def _gage(project, *args):
    env = dict(os.environ, GAGE_RUNS=str(project.parent / "runs"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    p = subprocess.run(
        [sys.executable, "-m", "gage", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )
    return p.returncode, p.stdout, p.stderr


def test_cat(project):
    assert _gage(project, "cat", "sub/out.txt") == (0, "hello\n", "")
    assert _gage(project, "cat", "1", "inside") == (0, "hello\n", "")
    assert _gage(project, "cat", "--meta", "output/40_run") == (0, "trained\n", "")


@pytest.mark.parametrize(
    "path, msg",
    [
        ("../secret.txt", "is outside run"),
        ("sub/../../secret.txt", "is outside run"),
        ("/etc/hostname", "is outside run"),
        ("outside", "leads to /etc/hostname (a link), outside the run"),
        ("up/secret.txt", "outside the run"),
        ("up/nope", "outside the run"),
        ("fifo", "not a regular file (FIFO)"),
        ("sub", "not a regular file (directory)"),
        ("nope", "no file nope in run"),
    ],
)
def test_cat_refuses(project, path, msg):
    code, out, err = _gage(project, "cat", path)
    assert code == 2 and out == ""
    assert err.startswith("gage: ") and msg in err and err.count("\n") == 1
    assert "secret" not in out


def test_cat_meta_refuses(project):
    code, _out, err = _gage(project, "cat", "--meta", "../../secret.txt")
    assert code == 2 and "is outside the meta dir of run" in err


def test_open_with_cmd(project, tmp_path):
    record = tmp_path / "opened"
    script = tmp_path / "opener.py"
    script.write_text(
        f"import sys\nopen({str(record)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
    )
    cmd = f"{sys.executable} {script} --flag"
    assert _gage(project, "open", "--cmd", cmd)[0] == 0
    assert _gage(project, "open", "1", "sub/out.txt", "--cmd", cmd)[0] == 0
    assert _gage(project, "open", "--meta", "--cmd", cmd)[0] == 0
    code, _out, err = _gage(project, "open", "1", "outside", "--cmd", cmd)
    assert code == 2 and "outside the run" in err
    run_dir = _gage(project, "select", "--dir")[1].strip()
    assert record.read_text().splitlines() == [
        f"--flag {run_dir}",
        f"--flag {run_dir}/sub/out.txt",
        f"--flag {run_dir}.meta",
    ]
    code, _out, err = _gage(
        project, "open", "--cmd", f"{sys.executable} -c 'raise SystemExit(3)'"
    )
    assert code == 1 and err.endswith("exited with 3\n")
    code, _out, err = _gage(project, "open", "--cmd", "no-such-program-27")
    assert code == 2 and "cannot run no-such-program-27" in err
