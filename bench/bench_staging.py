"""Benchmark: staging source code against `cp -a` + `sha256sum`.

Generates a project of 5,000 small source files plus a `.venv` of 20,000
files, then measures, on this machine, in one run:

- gage staging (`stage_run`: select, copy, read-only, manifest) of the
  project with the `.venv` present (it is pruned)
- the same project without the `.venv`
- a baseline: `cp -a` of the same selected files + `sha256sum` of the
  copies, the least work a stager could do

Targets: staging within 2x of the baseline; the `.venv` adding under 5%.
Prints the median of several rounds. Copies are deleted only at the end:
on some file systems deleting many files slows the file creation that
follows, which would make every figure measure the previous round's
clean-up. Usage: python bench/bench_staging.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gage._internal import run_util
from gage._internal.test import delete_temp_dir  # noqa: E402
from gage._internal.types import OpCmd, OpDef, OpRef  # noqa: E402

SOURCE_FILES = 5000
VENV_FILES = 20000
ROUNDS = 5
SELECT_ROUNDS = 21

# The default rules, with max-matches raised so all 5,000 files are source.
RULES = [
    "**/* text size<10000 max-matches=10000",
    "-**/.* dir",
    "-**/* dir sentinel=bin/activate",
    "-**/* dir sentinel=.nocopy",
]


def main() -> None:
    work = tempfile.mkdtemp(prefix="gage-bench-")
    try:
        project = os.path.join(work, "project")
        _gen_project(project, venv=True)
        bare = os.path.join(work, "bare")
        _gen_project(bare, venv=False)
        selected = _selected_files(project)
        assert len(selected) == SOURCE_FILES, len(selected)
        assert _selected_files(bare) == selected
        # Rounds interleave the three so machine noise hits each alike.
        times: dict[str, list[float]] = {"base": [], "venv": [], "bare": []}
        for i in range(ROUNDS + 1):
            base = _baseline(project, selected, work)
            venv = _stage(project, work)
            no_venv = _stage(bare, work)
            if i > 0:  # the first round warms the page cache
                times["base"].append(base)
                times["venv"].append(venv)
                times["bare"].append(no_venv)
        sel_venv, sel_bare = [], []
        for _ in range(SELECT_ROUNDS):
            sel_venv.append(_time_select(project))
            sel_bare.append(_time_select(bare))
        select_venv = statistics.median(sel_venv)
        select_bare = statistics.median(sel_bare)
        baseline = statistics.median(times["base"])
        with_venv = statistics.median(times["venv"])
        without_venv = statistics.median(times["bare"])
    finally:
        delete_temp_dir(work)
    ratio = with_venv / baseline
    venv_cost = (with_venv - without_venv) / without_venv
    print(
        f"source files: {SOURCE_FILES}, .venv files: {VENV_FILES}, "
        f"median of {ROUNDS} rounds"
    )
    print(f"cp -a + sha256sum (baseline):  {baseline:.3f} s")
    print(
        f"gage staging, with .venv:      {with_venv:.3f} s  "
        f"({ratio:.2f}x baseline; target < 2x)"
    )
    print(
        f"gage staging, without .venv:   {without_venv:.3f} s  "
        f"(.venv adds {venv_cost * 100:+.1f}%; target < 5%)"
    )
    print(
        f"selection only (walk + rules): {select_venv:.3f} s with .venv, "
        f"{select_bare:.3f} s without "
        f"({(select_venv - select_bare) / select_bare * 100:+.1f}%)"
    )


def _gen_project(project: str, venv: bool) -> None:
    for i in range(SOURCE_FILES):
        d = os.path.join(project, "src", f"pkg{i // 100:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"mod{i % 100:02d}.py"), "w") as f:
            f.write(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * (i % 50))
    if not venv:
        return
    venv_dir = os.path.join(project, ".venv")
    os.makedirs(os.path.join(venv_dir, "bin"))
    open(os.path.join(venv_dir, "bin", "activate"), "w").close()
    for i in range(VENV_FILES):
        d = os.path.join(venv_dir, "lib", f"site{i // 200:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i % 200:03d}.py"), "w") as f:
            f.write("pass\n")


def _selected_files(project: str) -> list[str]:
    opdef = OpDef("bench", {"sourcecode": RULES})
    return run_util.preview_sourcecode(project, opdef).files


def _time_select(project: str) -> float:
    t0 = time.perf_counter()
    _selected_files(project)
    return time.perf_counter() - t0


def _stage(project: str, work: str) -> float:
    runs_home = tempfile.mkdtemp(dir=work)
    run = run_util.make_run(runs_home)
    run_util.init_run_meta(
        run,
        OpRef("bench", "bench"),
        OpDef("bench", {"sourcecode": RULES}),
        OpCmd(["true"], {}),
        {},
        {},
    )
    t0 = time.perf_counter()
    run_util.stage_run(run, project)
    elapsed = time.perf_counter() - t0
    return elapsed


def _baseline(project: str, selected: list[str], work: str) -> float:
    dest = tempfile.mkdtemp(dir=work)
    listing = os.path.join(work, "files.txt")
    with open(listing, "wb") as f:
        f.write(b"\0".join(p.encode() for p in selected) + b"\0")
    script = (
        f"cd {project} && xargs -0 cp -a --parents -t {dest} < {listing} "
        f"&& cd {dest} && xargs -0 sha256sum < {listing} > /dev/null"
    )
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    elapsed = time.perf_counter() - t0
    return elapsed


if __name__ == "__main__":
    main()
