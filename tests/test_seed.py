"""The user's specification, run as written.

`../shared/seeds/003_*.txt` is the staging API contract. It is run here
byte for byte from the seeds dir (its `+skiprest` line and all) under
groktest, with the project's groktest config. The built version of the
same text, with its TODO sections written, is
`topics/topic-run-lifecycle-3-stage.md`.
"""

from __future__ import annotations

import glob
import os

import groktest
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SEEDS = os.path.join(os.path.dirname(_ROOT), "shared", "seeds")


def _seed() -> str | None:
    paths = glob.glob(os.path.join(_SEEDS, "003_*.txt"))
    return paths[0] if paths else None


def test_seed_runs_as_written(monkeypatch, tmp_path):
    # Its temp dirs (the runs home, the project) go where pytest removes
    # them.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    seed = _seed()
    if seed is None:
        if os.environ.get("CI"):
            pytest.fail(f"the seed is missing from {_SEEDS}")
        pytest.skip(f"no seeds dir beside the project ({_SEEDS})")
    config = groktest.load_project_config(os.path.join(_ROOT, "pyproject.toml"))
    lines: list[str] = []
    summary = groktest.test_file(
        seed, config, print_output=lambda s="", *a, **kw: lines.append(str(s))
    )
    assert summary.tested, "no examples ran"
    assert not summary.failed, "\n".join(lines)
