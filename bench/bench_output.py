"""Time and peak memory of `gage` with very large run output.

Whole `gage` processes, in one run on this machine:

- `gage run long -y -q`: the run prints one 100 MB line with no newline
  (capture must be linear and bounded: no line buffer that grows with
  the line);
- `gage run big -y -q`: the run prints 200 MB in 100-byte lines, then a
  summary block (finalize must find the summary without reading all the
  output into memory);
- `gage show` of each run (prints a capped tail of the output).

Each reports wall seconds and the peak RSS of the gage process and its
children (`resource.getrusage(RUSAGE_CHILDREN)` after each, from a fresh
measuring process so earlier commands do not count).

Targets (exit 1 when missed): each gage process under 60 MB peak RSS
beyond a `python -c pass` floor, the 100 MB line in under 5 s, and
`gage show` under 1 s.

`SIZE_MB` in the environment scales the outputs (default 100).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from gage._internal.test import delete_temp_dir

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")
SIZE_MB = int(os.environ.get("SIZE_MB", "100"))
RSS_TARGET_MB = 60
LONG_LINE_TARGET_S = 5.0
SHOW_TARGET_S = 1.0

_LONG = f"""
import sys
chunk = "x" * (1 << 20)
for _ in range({SIZE_MB}):
    sys.stdout.write(chunk)
"""

_BIG = f"""
import json, sys
line = "y" * 99 + "\\n"
block = line * 10000
for _ in range({SIZE_MB * 2}):
    sys.stdout.write(block)
print("--- summary ---")
print(json.dumps({{"loss": 0.25, "acc": 0.9}}))
"""

_MEASURE = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"wall": wall, "rss_mb": rss, "code": p.returncode,
                  "err": p.stderr.decode()[-300:]}))
"""


def main() -> int:
    project = tempfile.mkdtemp(prefix="gage-bench-output-")
    runs = tempfile.mkdtemp(prefix="gage-bench-output-runs-")
    env = dict(os.environ, GAGE_RUNS=runs)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    try:
        with open(os.path.join(project, "long.py"), "w") as f:
            f.write(_LONG)
        with open(os.path.join(project, "big.py"), "w") as f:
            f.write(_BIG)
        with open(os.path.join(project, "gage.toml"), "w") as f:
            f.write(
                '[long]\nexec = "python long.py"\n\n[big]\nexec = "python big.py"\n'
            )
        floor = _measure([sys.executable, "-c", "pass"], project, env)["rss_mb"]
        print(f"floor (python -c pass): {floor:.0f} MB")
        failed = False
        for op in ("long", "big"):
            # gage's RSS: the run's own process is a child of gage, so the
            # max over children is the larger of the two; the run's python
            # stays well under gage's figure for this measure to matter.
            run = _measure([GAGE, "run", op, "-y", "-q"], project, env)
            show = _measure([GAGE, "show", op], project, env)
            for what, m in ((f"gage run {op}", run), (f"gage show {op}", show)):
                extra = m["rss_mb"] - floor
                print(
                    f"{what:<16} {m['wall']:7.2f} s  peak RSS {m['rss_mb']:6.0f} MB"
                    f" (+{extra:.0f} MB)  exit {m['code']}"
                )
                if m["code"] != 0:
                    print("   ", m["err"])
                    failed = True
                if extra > RSS_TARGET_MB:
                    failed = True
            if op == "long" and run["wall"] > LONG_LINE_TARGET_S * SIZE_MB / 100:
                failed = True
            if show["wall"] > SHOW_TARGET_S:
                failed = True
        summary = subprocess.run(
            [GAGE, "runs", "--json"], cwd=project, env=env, capture_output=True
        )
        records = json.loads(summary.stdout)
        big = [r for r in records if r["op"] == "big"][0]
        print(f"summary of big: {big['summary']}")
        if big["summary"] != {"loss": 0.25, "acc": 0.9}:
            failed = True
        print("FAIL" if failed else "ok")
        return 1 if failed else 0
    finally:
        delete_temp_dir(project)
        delete_temp_dir(runs)


def _measure(args: list[str], cwd: str, env: dict[str, str]) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(p.stdout)


if __name__ == "__main__":
    sys.exit(main())
