"""Import budget: what `gage --help` and `gage run` of a simple op import.

A start-up budget checked by module name, not by timing: a change that
pulls a heavy module into the hot path fails here and names it. Each
check runs a whole process (`python -X importtime`, or a `gage run`
stopped as staging begins) in a temp project.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# Imported by no simple `gage run` at all (the whole process).
NEVER_ON_RUN = {
    "filelock",  # start takes its lock with flock (util/file_lock)
    "concurrent.futures",  # the local engine's pool: jobs > 1 only
    "logging",
    "pprint",  # rules are logged without it
    "secrets",  # run ids from os.urandom
    "shutil",  # help width from os.get_terminal_size; big copies only
    "tempfile",
    "uuid",
    "asyncio",
    "email",
    "http",
    "yaml",
    "tomlkit",
    "rich",
    "dask",
    "distributed",
    "numpy",
    "pandas",
    "pathspec",  # an op with the default source rules (KNOWN_PATTERNS)
}

# Not imported before staging begins for an op without config.
NOT_BEFORE_STAGING = NEVER_ON_RUN | {
    "gage._internal.config.run_config",
    "gage._internal.config.config_yaml",
    "gage._internal.config.config_toml",
    "gage._internal.engines.engine_dask",
    "gage._internal.cli.table",
    "gage._internal.history",
    "gage._internal.pipeline.repro",
}

# All that `gage --help` imports of gage; and what it must not import.
HELP_GAGE_MODULES = {
    "gage",
    "gage.__main__",
    "gage._internal",
    "gage._internal.cli",
    "gage._internal.cli.common",
    "gage._internal.cli.main",
    "gage._internal.util",
    "gage._internal.util.fmt",  # values as the CLI prints them: no imports
}
# Not imported by `gage run --needed` that finds its run (nothing is
# staged, started or copied), nor by `gage show RUN` (issue 21).
NOT_ON_LOOKUP = NEVER_ON_RUN | {
    "gage._internal.lifecycle.run_stage",
    "gage._internal.lifecycle.run_start",
    "gage._internal.lifecycle.run_verify",
    "subprocess",  # util/git_state and util/machine import it on use
}
# Kept off `gage run --needed` (with and without -q), `gage runs` and
# `gage show` at 100,000 runs (issue 21: each at most 3x `python -c pass`).
NOT_ON_LOOKUP |= {
    "hashlib",  # small data hashed by Python's own sha256 (file_util)
    "_hashlib",
    "inspect",  # dataclasses' import of it deferred (cli.main)
    "gage._internal.lifecycle.provenance",  # --strict-env only
    "gage._internal.util.git_state",
    "gage._internal.util.python_env",
    "gage._internal.cli.batch",  # options in cli.run_args
    "gage._internal.cli.repro",
    "gage._internal.cli.optimize",
    "gage._internal.cli.slurm_args",
    "gage._internal.config.run_config",  # an op with config only
    "gage._internal.lifecycle.dep_pins",  # pinned dependency files only
    "gage._internal.store.objects",
    "gage._internal.home.run_where",  # --where only
    "threading",  # a status line only (util.console)
    "_strptime",  # run times read with fromisoformat
}
NOT_ON_SHOW = NOT_ON_LOOKUP | {
    "gage._internal.project.file_select",
}

NOT_ON_HELP = NOT_BEFORE_STAGING | {
    "dataclasses",
    "json",
    "sqlite3",
    "hashlib",
    "subprocess",
    "threading",
    "pathspec",
    "typing_extensions",
}


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "gage.toml").write_text('[train]\nexec = "python train.py"\n')
    (proj / "train.py").write_text("print('ok')\n")
    return str(proj)


def _env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env["GAGE_RUNS"] = str(tmp_path / "runs")
    env.pop("PYTHONPATH", None)
    return env


def _imported(stderr: str) -> list[str]:
    """Module names from `python -X importtime` output."""
    names = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":
                names.append(name)
    return names


def _heavy(names: list[str], forbidden: set[str]) -> list[str]:
    return sorted(
        n for n in set(names) if any(n == f or n.startswith(f + ".") for f in forbidden)
    )


def test_help_imports(project, tmp_path):
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gage", "--help"],
        cwd=project,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    names = _imported(p.stderr)
    assert "gage._internal.cli.main" in names  # the check sees gage's imports
    gage_mods = {n for n in names if n == "gage" or n.startswith("gage.")}
    assert gage_mods - HELP_GAGE_MODULES == set()
    assert _heavy(names, NOT_ON_HELP) == []


def test_run_imports(project, tmp_path):
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gage", "run", "train", "-y"],
        cwd=project,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "ok" in p.stdout
    names = _imported(p.stderr)
    assert "gage._internal.lifecycle.run_start" in names
    assert _heavy(names, NEVER_ON_RUN) == []


def _gage_importtime(args: list[str], project: str, tmp_path) -> tuple[str, list[str]]:
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gage"] + args,
        cwd=project,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout, _imported(p.stderr)


def test_needed_and_show_imports(project, tmp_path):
    out, _names = _gage_importtime(["run", "train", "-y"], project, tmp_path)
    assert "ok" in out
    for quiet in ([], ["-q"]):  # the bench runs `--needed -y -q`
        args = ["run", "train", "--needed", "-y"] + quiet
        out, names = _gage_importtime(args, project, tmp_path)
        assert "Run not needed" in out
        assert "gage._internal.lifecycle.op_inputs" in names
        assert _heavy(names, NOT_ON_LOOKUP) == []
    out, names = _gage_importtime(["show", "1"], project, tmp_path)
    assert "Exit:     0" in out
    assert "gage._internal.home.runs" in names
    assert _heavy(names, NOT_ON_SHOW) == []
    out, names = _gage_importtime(["runs"], project, tmp_path)
    assert "train" in out
    assert "gage._internal.home.runs_index" in names
    assert _heavy(names, NOT_ON_SHOW) == []


_STOP_AT_STAGING = textwrap.dedent(
    """
    import sys
    from gage._internal.lifecycle import run_stage

    out = sys.argv[1]

    def stop(*args, **kw):
        with open(out, "w") as f:
            f.write("\\n".join(sorted(sys.modules)))
        raise SystemExit(0)

    run_stage.stage_run = stop
    sys.argv = ["gage", "run", "train", "-y"]
    from gage._internal.cli import main
    main.main()
    """
)


def test_run_imports_before_staging(project, tmp_path):
    out = tmp_path / "modules.txt"
    p = subprocess.run(
        [sys.executable, "-c", _STOP_AT_STAGING, str(out)],
        cwd=project,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    names = out.read_text().split()
    assert "gage._internal.lifecycle.stage_op" in names
    assert _heavy(names, NOT_BEFORE_STAGING) == []


def test_budget_catches_a_heavy_import(project, tmp_path):
    """The check names a module it forbids (it cannot pass vacuously)."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pprint, json"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = _imported(p.stderr)
    assert "pprint" in _heavy(names, NEVER_ON_RUN)
    assert {"json", "json.decoder", "pprint"} <= set(_heavy(names, NOT_ON_HELP))


def test_dataclasses_have_docstrings():
    """`dataclasses` reads `inspect` (deferred by cli.main) only for a
    class without a docstring: every gage dataclass has one."""
    import ast
    import pathlib

    import gage

    missing = []
    for path in pathlib.Path(gage.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                "dataclass" in ast.unparse(d) for d in node.decorator_list
            ):
                if ast.get_docstring(node) is None:
                    missing.append(f"{path}:{node.lineno} {node.name}")
    assert missing == []


def test_directory_remote_imports_no_fsspec(project, tmp_path):
    # A directory remote is read and written with the kernel's calls:
    # fsspec (and what it pulls in) is for servers (ssh, s3).
    out, _names = _gage_importtime(["run", "train", "-y"], project, tmp_path)
    remote = str(tmp_path / "remote")
    for verb in ("push", "pull"):
        _out, names = _gage_importtime(
            [verb, "--remote", remote, "-y"], project, tmp_path
        )
        assert "gage._internal.remote.backend" in names
        assert _heavy(names, {"fsspec"}) == [], verb
