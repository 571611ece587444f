"""Hardening II (issue 19, items 3 and 4): hostile config files.

A config file that is a link out of the project is refused at load with
one line, and nothing of it is read (`gage ops`, `--preview`, `gage
run`); a link to a FIFO says so; a YAML alias bomb is refused before it
is expanded.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GAGE = [sys.executable, "-m", "gage"]


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    return proj


def gage(proj, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, GAGE_RUNS=str(proj.parent / "runs"), NO_COLOR="1")
    return subprocess.run(
        GAGE + list(argv),
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a config that spins fails the test
    )


def toml(proj, config: str) -> None:
    (proj / "gage.toml").write_text(
        f'[t]\nexec = "python -c pass"\nconfig = "{config}"\n'
    )


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("gage: warning:")]
    assert len(lines) == 1 and lines[0].startswith("gage: "), err
    assert "Traceback" not in err
    return lines[0]


def test_config_link_out_of_project(project, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"token": "SECRET-123"}\n')
    os.symlink(secret, project / "params.json")
    toml(project, "params.json")
    ops = gage(project, "ops")
    assert "SECRET" not in ops.stdout + ops.stderr
    preview = gage(project, "run", "t", "--preview")
    assert "SECRET" not in preview.stdout + preview.stderr
    assert preview.returncode == 2
    assert "outside" in one_error(preview.stderr)
    run = gage(project, "run", "t", "-y")
    assert run.returncode == 2
    line = one_error(run.stderr)
    assert "params.json" in line and "outside" in line
    home = tmp_path / "runs"
    assert not home.exists() or not [n for n in os.listdir(home) if n.endswith(".meta")]


def test_config_link_to_fifo(project, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    os.symlink(fifo, project / "params.json")
    toml(project, "params.json")
    p = gage(project, "run", "t", "--preview")
    assert p.returncode == 2
    assert "FIFO" in one_error(p.stderr)


def test_yaml_alias_bomb(project):
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("lr: 0.1")
    (project / "params.yaml").write_text("\n".join(lines) + "\n")
    toml(project, "params.yaml")
    for argv in (["ops"], ["run", "t", "--preview"], ["run", "t", "-y"]):
        p = gage(project, *argv, timeout=30)
        assert "Traceback" not in p.stderr
        assert "alias" in p.stderr, (argv, p.stderr)
    assert gage(project, "run", "t", "-y").returncode == 2
