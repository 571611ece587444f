"""`gage report` of 1,000 runs with 1,000 scalar points each.

A runs home of RUNS completed runs of one batch (config lr and batch
size, `loss` and `acc` logged per step, POINTS steps each) is made with
the library (making them through `gage run` would only add the op's
Python start-ups). Then, in one run on this machine:

- `gage report --batch ID -o report.html` (whole process): target under
  5 s; next to `gage compare --cols lr,loss.min` of the same runs (the
  peer: it reads the same records, no points) as a ratio;
- opening the page in headless Chromium (from navigation to the last
  chart drawn, the page's own `performance.now()` at its end): target
  under 3 s; next to a page that only loads the same plotly.js (the
  floor) as a ratio. Each is the best of 3 opens in one browser.

Exit 1 when a target is missed or Chromium is not installed.
`RUNS`, `POINTS` in the environment scale it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from gage._internal.lifecycle import scalars  # noqa: E402
from gage._internal.lifecycle.run_stage import init_run_meta, make_run  # noqa: E402
from gage._internal.store import run_meta  # noqa: E402
from gage._internal.test import delete_temp_dir  # noqa: E402
from gage._internal.types import OpCmd, OpDef, OpRef  # noqa: E402

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")
RUNS = int(os.environ.get("RUNS", "1000"))
POINTS = int(os.environ.get("POINTS", "1000"))
WRITE_TARGET_S = 5.0
OPEN_TARGET_S = 3.0
BATCH = "b" * 32


def main() -> int:
    import browser_util

    why = browser_util.missing()
    if why:
        print(f"FAIL: {why}")
        return 1
    home = tempfile.mkdtemp(prefix="gage-bench-report-")
    try:
        t0 = time.perf_counter()
        _make_runs(home)
        print(f"{RUNS} runs x {POINTS} points made in {time.perf_counter() - t0:.1f} s")
        env = dict(os.environ, GAGE_RUNS=home)
        out = os.path.join(home, "..", os.path.basename(home) + "-report.html")
        out = os.path.normpath(out)
        floor_page = out + ".floor.html"
        _write_floor(floor_page)
        compare = _time([GAGE, "compare", "--cols", "lr,loss.min"], env)
        write = _time([GAGE, "report", "--batch", BATCH[:8], "-o", out], env)
        size = os.path.getsize(out) / 1e6
        print(
            f"gage compare --cols lr,loss.min  {compare:6.2f} s\n"
            f"gage report --batch -o FILE      {write:6.2f} s  "
            f"({write / compare:.1f}x compare; {size:.1f} MB)  target < "
            f"{WRITE_TARGET_S:.0f} s"
        )
        floor, opened, charts = _open_times(browser_util, floor_page, out)
        print(
            f"open plotly.js only (floor)      {floor:6.2f} s\n"
            f"open the report                  {opened:6.2f} s  "
            f"({opened / floor:.1f}x floor; {charts} charts drawn)  target < "
            f"{OPEN_TARGET_S:.0f} s"
        )
        ok = write < WRITE_TARGET_S and opened < OPEN_TARGET_S and charts >= 3
        print("ok" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        delete_temp_dir(home)
        for path in (out, floor_page):
            if os.path.exists(path):
                os.remove(path)


def _make_runs(home: str) -> None:
    rnd = random.Random(1)
    opdef = OpDef("train", {"exec": "python train.py"})
    for i in range(RUNS):
        run = make_run(home)
        lr = rnd.choice([0.001, 0.003, 0.01, 0.03, 0.1])
        bs = rnd.choice([16, 32, 64])
        init_run_meta(
            run,
            OpRef("bench", "train"),
            opdef,
            OpCmd(["python", "train.py"], {}),
            {"lr": lr, "batch_size": bs},
            {},
        )
        run_meta.write_batch(run, BATCH)
        for name in ("staged", "started"):
            run_meta.write_timestamp(run, name)
        rec = scalars.Recorder(run)
        loss = 2.0 + rnd.random()
        for step in range(POINTS):
            loss *= 1 - lr * (0.5 + rnd.random())
            rec.add("loss", step, loss)
            if step % 10 == 0:
                rec.add("acc", step, 1 - loss / 3)
        rec.flush()
        run_meta.write_summary(run, scalars.last_values(run))
        run_meta.write_exit_code(run, 0)
        run_meta.write_timestamp(run, "stopped")


def _write_floor(path: str) -> None:
    from plotly.offline import get_plotlyjs

    with open(path, "w") as f:
        f.write(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><script>"
            + get_plotlyjs()
            + "</script></head><body><p>floor</p>"
            "<script>document.body.dataset.ready='1'</script></body></html>"
        )


def _time(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{args[1]} failed: {p.stderr}")
    return wall


_DONE = """
var t = performance.now();
return [document.body.dataset.ready === '1', t,
        document.querySelectorAll('.js-plotly-plot').length];
"""


def _open_times(browser_util, floor_page: str, page: str) -> tuple[float, float, int]:
    best = {floor_page: float("inf"), page: float("inf")}
    charts = 0
    with browser_util.chromium() as driver:
        driver.get("about:blank")
        for _ in range(3):
            for path in (floor_page, page):
                driver.get("file://" + path)  # returns after the load event
                ready, ms, n = driver.execute_script(_DONE)
                if not ready:
                    raise SystemExit(f"{path}: the page did not finish")
                best[path] = min(best[path], ms / 1000)
                if path == page:
                    charts = n
                    errors = browser_util.console_errors(driver)
                    if errors:
                        raise SystemExit(f"console errors: {errors[:3]}")
    return best[floor_page], best[page], charts


if __name__ == "__main__":
    sys.exit(main())
