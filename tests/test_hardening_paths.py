"""Standing suite (issue 11): hostile paths.

A project dir, its files, its dependency files and so its runs home and
its op namespace are named with a space, unicode, a newline, bytes that
are not UTF-8, a leading dash, glob characters (`[*?`) and a quote.
Staging, running, starting a staged run, `gage runs`, `gage show`
(with `--files` and `--json`) and `gage check` all work: exit 0, no
traceback, and every name round-trips through meta (`opref`,
`log/files`, `manifest`) exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gage._internal.cli import main as cli
from gage._internal.home import runs
from gage._internal.store import run_meta

NAMES = [
    b"my proj",
    "\u00fcn\u00efc\u00f6d\u00e9 \u540d\u524d".encode(),
    b"new\nline",
    b"bad\xff\xfebytes",
    b"-dash",
    b"glob[*?]",
    b'quo"te',
]

GAGEFILE = b"""
[prep]
exec = ["python", "-c", "open('out.txt', 'w').write('1')"]

[train]
exec = "python -c pass"
depends = [
  { type = "project-files", files = "data" },
  { type = "run-files", run-select = "prep", files = "out.txt" },
]
"""


def _ids(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


@pytest.fixture(params=NAMES, ids=_ids)
def project(request, tmp_path, monkeypatch):
    name = request.param
    proj = os.path.join(os.fsencode(tmp_path), name)
    for d in (b"", b"data", b"sub/" + name, b"data/" + name):
        os.makedirs(os.path.join(proj, d), exist_ok=True)
    for path in (
        name + b".txt",
        b"sub/" + name + b"/x.txt",
        b"data/" + name + b"/raw.csv",
        b"data/" + name + b".csv",
    ):
        with open(os.path.join(proj, path), "wb") as f:
            f.write(b"x\n")
    with open(os.path.join(proj, b"gage.toml"), "wb") as f:
        f.write(GAGEFILE)
    monkeypatch.chdir(proj)
    monkeypatch.delenv("GAGE_RUNS", raising=False)
    return os.fsdecode(proj), os.fsdecode(name)


def gage(capfd, *argv: str) -> str:
    code = cli.main(list(argv))
    out, err = capfd.readouterr()
    assert code == 0, (argv, out, err)
    assert "Traceback" not in err, (argv, err)
    return out


def test_paths_stage_run_list_show_check(project, capfd):
    proj, name = project
    gage(capfd, "run", "prep", "-y", "-q")
    gage(capfd, "run", "train", "-y", "-q", "--stage")
    home = os.path.join(proj, ".gage", "runs")
    [staged_run] = runs.filter_runs(runs.list_runs(home), status="staged")
    gage(capfd, "run", "--start", staged_run.run_dir, "-q")
    listed = runs.list_runs(home)
    assert len(listed) == 2
    for run in listed:
        assert run_meta.read_opref(run).op_ns == name
    out = gage(capfd, "runs")
    assert [line.split()[2] for line in out.splitlines()[1:]] == ["train", "prep"]
    records = json.loads(gage(capfd, "runs", "--json"))
    assert {r["op_ns"] for r in records} == {name}
    train = next(r for r in listed if runs.op_name(r) == "train")
    staged = {
        name + ".txt",
        f"sub/{name}/x.txt",
        f"data/{name}/raw.csv",
        f"data/{name}.csv",
        "out.txt",
        "gage.toml",
    }
    manifest = {e.path for e in run_meta.read_manifest(train)}
    assert staged <= manifest
    files = {e.path for e in run_meta.read_files_log(train)}
    assert staged <= files
    for path in staged:
        assert os.path.exists(os.path.join(train.run_dir, path)), path
    shown = json.loads(gage(capfd, "show", train.id, "--json", "--files"))
    assert staged <= {e["path"] for e in shown["manifest"]}
    out = gage(capfd, "show", train.id, "--files")
    assert run_meta.quote_path(name + ".txt") in out
    out = gage(capfd, "check", train.id)
    assert f"{len(manifest)} files match" in out
    gage(capfd, "check", train.run_dir)


@pytest.mark.parametrize("name", [b"new\nline", b"bad\xff\xfebytes"], ids=_ids)
def test_paths_gage_process(tmp_path, name):
    """The installed entry point with real stdio (no in-process capture)."""
    proj = os.path.join(os.fsencode(tmp_path), name)
    os.makedirs(os.path.join(proj, b"data"))
    with open(os.path.join(proj, b"data", name), "wb") as f:
        f.write(b"x\n")
    with open(os.path.join(proj, b"gage.toml"), "wb") as f:
        f.write(GAGEFILE)
    env = {k: v for k, v in os.environ.items() if k != "GAGE_RUNS"}
    for argv in (
        ["run", "prep", "-y"],
        ["run", "train", "-y"],
        ["runs"],
        ["show", "--files"],
        ["check", "1"],
    ):
        p = subprocess.run(
            [sys.executable, "-m", "gage"] + argv,
            cwd=proj,
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert p.returncode == 0, (argv, p.stdout, p.stderr)
        assert b"Traceback" not in p.stderr, (argv, p.stderr)
