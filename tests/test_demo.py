"""`make demo` (examples/pipeline/run-demo.sh) runs end to end and
leaves nothing behind: its temp runs dir is removed when it ends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("fail", [False, True])
def test_demo_leaves_no_temp_dir(tmp_path, fail):
    env = {k: v for k, v in os.environ.items() if k not in ("GAGE_RUNS", "TMPDIR")}
    env["TMPDIR"] = str(tmp_path)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    if fail:
        # A demo that fails midway (no python for its runs) still cleans up.
        env["PATH"] = os.path.dirname(sys.executable)
        bad = tmp_path / "bin"
        bad.mkdir()
        (bad / "python").write_text("#!/bin/sh\nexit 3\n")
        (bad / "python").chmod(0o755)
        env["PATH"] = f"{bad}{os.pathsep}{env['PATH']}{os.pathsep}/usr/bin:/bin"
    p = subprocess.run(
        ["bash", os.path.join(ROOT, "examples", "pipeline", "run-demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (p.returncode != 0) == fail, p.stdout + p.stderr
    assert "Runs dir: " + str(tmp_path) in p.stdout
    assert os.listdir(tmp_path) == (["bin"] if fail else [])
