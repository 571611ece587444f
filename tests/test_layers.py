"""The layer contract (pyproject's [tool.importlinter]) holds, and it
fails, naming the import, when a module imports a layer above its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(root: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, "--config", os.path.join(root, "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_layers_kept():
    p = _lint(ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout


def test_upward_import_fails(tmp_path):
    shutil.copytree(
        os.path.join(ROOT, "gage"),
        tmp_path / "gage",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    meta = tmp_path / "gage" / "_internal" / "store" / "run_meta.py"
    meta.write_text(meta.read_text() + "\n\ndef _up():\n    from ..cli import common\n")
    p = _lint(str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "BROKEN" in p.stdout
    assert "gage._internal.store.run_meta -> gage._internal.cli.common" in p.stdout
