"""`gage report` pages opened in a real browser (headless Chromium, the
OS package; scripts/os-deps/chromium.sh installs it): the page loads
with no console errors, every chart drew, the runs table has one row
per run, and a screenshot is saved in the test's temp dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import browser_util  # noqa: E402

pytestmark = pytest.mark.skipif(
    browser_util.missing() is not None, reason=str(browser_util.missing())
)

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "pipeline")


def _gage(args: list[str], cwd, runs, code: int = 0) -> str:
    env = {
        **os.environ,
        "GAGE_RUNS": str(runs),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }
    p = subprocess.run(
        ["gage", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == code, p.stderr
    return p.stdout


def _open(path, shot) -> dict:
    """Open the page; what it showed."""
    with browser_util.chromium() as driver:
        driver.get("file://" + str(path))
        # On a busy machine the page may still be loading when get()
        # returns: wait (60 s at most) for its body and its ready mark.
        from selenium.webdriver.support.ui import WebDriverWait

        ready = WebDriverWait(driver, 60, poll_frequency=0.1).until(
            lambda d: d.execute_script(
                "return document.body && document.body.dataset.ready"
            )
        )
        errors = browser_util.console_errors(driver)
        charts = browser_util.drawn_charts(driver)
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('#runs tbody tr'))"
            ".map(function (tr) { return tr.dataset.run; })"
        )
        header = driver.execute_script(
            "return Array.from(document.querySelectorAll('#runs th'))"
            ".map(function (th) { return th.textContent; })"
        )
        diffs = driver.execute_script(
            "return document.querySelector('#diffs tbody').innerText"
        )
        driver.save_screenshot(str(shot))
        # Click a column: the table sorts by it.
        driver.execute_script(
            "var th = Array.from(document.querySelectorAll('#runs th'))"
            ".filter(function (h) { return h.textContent === 'lr'; })[0];"
            "if (th) th.click();"
        )
        sorted_lr = driver.execute_script(
            "var i = Array.from(document.querySelectorAll('#runs th'))"
            ".findIndex(function (h) { return h.textContent === 'lr'; });"
            "if (i < 0) return null;"
            "return Array.from(document.querySelectorAll('#runs tbody tr'))"
            ".map(function (tr) { return tr.children[i].textContent; })"
        )
    return {
        "ready": ready,
        "errors": errors,
        "charts": charts,
        "rows": rows,
        "header": header,
        "diffs": diffs,
        "sorted_lr": sorted_lr,
    }


def test_report_of_example_batch(tmp_path):
    """A real batch of the example pipeline's train op, reported."""
    project = tmp_path / "pipeline"
    shutil.copytree(EXAMPLE, project)
    runs = tmp_path / "runs"
    _gage(["run", "prepare", "-y", "-q"], project, runs)
    _gage(
        ["run", "train", "lr=[0.01,0.03,0.1]", "epochs=[20,40]", "-y", "-q"],
        project,
        runs,
    )
    records = json.loads(_gage(["runs", "--json", "--op", "train"], project, runs))
    batch = records[0]["batch"]
    assert batch and len(records) == 6
    out = tmp_path / "report.html"
    said = _gage(["report", "--batch", batch[:8], "-o", str(out)], project, runs)
    assert said == f"Wrote {out}: 6 runs, 2 charts\n"
    seen = _open(out, tmp_path / "report.png")
    assert seen["ready"] == "1"
    assert seen["errors"] == []
    ids = {r["id"] for r in records}
    assert sorted(seen["rows"]) == sorted(ids)
    assert {"lr", "epochs", "loss.min", "loss.last"} <= set(seen["header"])
    charts = {c["id"]: c for c in seen["charts"]}
    assert set(charts) == {"curve-0", "parcoords"}
    assert charts["curve-0"]["lines"] == 6  # a line per run
    assert charts["curve-0"]["paths"] >= 6
    assert charts["parcoords"]["paths"] >= 6
    assert "(first run)" in seen["diffs"] and "lr: 0.01" in seen["diffs"]
    assert seen["sorted_lr"] == sorted(seen["sorted_lr"], key=float)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    # The page holds everything: no script or link loads from elsewhere.
    text = out.read_text()
    assert "<script src" not in text and "<link" not in text


def test_report_of_many_runs(tmp_path):
    """More runs than get a legend (one trace per chart), two scalar
    keys from the default output patterns, a run that failed."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "gage.toml").write_text(
        '[train]\nexec = "python train.py"\nconfig = "train.py#lr,opt"\n'
    )
    (project / "train.py").write_text(
        "import sys\nlr = 0.1\nopt = 'sgd'\nloss = 1.0\n"
        "for step in range(30):\n"
        "    loss *= 1 - lr\n"
        "    print(f'step {step}: loss={loss:.5f} acc={1 - loss:.4f}')\n"
        "if lr > 0.9: sys.exit(3)\n"
    )
    runs = tmp_path / "runs"
    lrs = ",".join(str(round(0.01 * i, 2)) for i in range(1, 22))
    _gage(
        ["run", "train", f"lr=[{lrs}]", "opt=[sgd,adam]", "-y", "-q", "--jobs", "2"],
        project,
        runs,
    )
    _gage(["run", "train", "lr=0.95", "-y", "-q"], project, runs, code=3)
    out = tmp_path / "many.html"
    said = _gage(["report", "-o", str(out)], project, runs)
    assert said == f"Wrote {out}: 43 runs, 3 charts\n"
    seen = _open(out, tmp_path / "many.png")
    assert seen["errors"] == []
    assert len(seen["rows"]) == 43
    charts = {c["id"]: c for c in seen["charts"]}
    assert set(charts) == {"curve-0", "curve-1", "parcoords"}
    for key in ("curve-0", "curve-1"):
        assert charts[key]["lines"] == 1  # all runs in one trace
        assert charts[key]["paths"] >= 43  # a segment per run
    assert charts["parcoords"]["paths"] >= 43
