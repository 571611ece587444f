"""`gage report`: one self-contained HTML page about a set of runs.

The page holds, for the runs given (newest first, as `gage compare`
lists them):

- the runs table (name, op, status, started, batch, config, metrics:
  summary values and scalar `.min`/`.last`), sortable by any column;
- a curve per scalar key overlaying the runs (steps on x);
- parallel coordinates of the config keys that vary against a metric
  (`metric`, default the first scalar's `.min`), when two or more runs
  have that metric;
- each run's config diff against the first run.

The charts are drawn by plotly.js, embedded in the page (the `report`
extra installs plotly, whose Python package carries the bundle), so the
file opens with no network. Curves are thinned to about
`CURVE_BUDGET` points per chart, at least 50 per run (each run keeps
its first and last point, and the point of its min), so a report of
1,000 runs of 1,000 points is written and drawn in seconds.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any, Sequence

from ..home import runs
from ..lifecycle import scalars
from ..types import GageError, Run
from ..util import file_util
from . import report_page

__all__ = ["CURVE_BUDGET", "ReportError", "report_data", "write_report"]

CURVE_BUDGET = 30_000
"""The most points drawn in one curve chart (split among its runs)."""

MAX_RUN_POINTS = 100_000
"""Points read from one run (a longer run is sampled evenly)."""

MANY_RUNS = 40
"""From this many runs on, a chart's curves are one trace (no legend)."""


class ReportError(GageError):
    """A report cannot be written (no plotly, no runs, bad metric)."""


def write_report(
    items: Sequence[Run | dict[str, Any]],
    path: str,
    metric: str | None = None,
    title: str = "gage report",
) -> dict[str, Any]:
    """Write the report of `items` (runs or run records) to `path`;
    returns the data drawn (`report_data`)."""
    plotly_js = _plotly_js()
    data = report_data(items, metric, title)
    html = report_page.page(data, plotly_js)
    file_util.write_atomic(path, html.encode("utf-8"), 0o644)
    return data


def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ReportError(
            "gage report needs plotly: install the report extra "
            "(pip install 'gage-runs[report]')"
        ) from None
    return get_plotlyjs()


def report_data(
    items: Sequence[Run | dict[str, Any]],
    metric: str | None = None,
    title: str = "gage report",
) -> dict[str, Any]:
    """What the page shows, as JSON-able data: `runs` (rows), `columns`,
    `curves` (key -> traces), `parcoords` (or None), `diffs`."""
    if not items:
        raise ReportError("no runs to report: run something, or select other runs")
    records = [runs.run_record(i) if isinstance(i, Run) else i for i in items]
    rows = [_row(r) for r in records]
    curves = _curves(records)
    metric = _metric(rows, metric)
    return {
        "title": title,
        "generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "columns": _columns(rows),
        "runs": rows,
        "curves": curves,
        "metric": metric,
        "parcoords": _parcoords(rows, metric),
        "diffs": _diffs(rows),
    }


def _row(record: dict[str, Any]) -> dict[str, Any]:
    run = Run(record["id"], record["run_dir"], record["name"])
    metrics: dict[str, Any] = {}
    for key, val in sorted(_flat(record.get("summary") or {})):
        if _number(val) is not None:
            metrics[key] = val
    aggs = scalars.aggregates(run)
    for name in sorted(aggs):
        if name.endswith((".min", ".last")) and _number(aggs[name]) is not None:
            metrics[name] = aggs[name]
    return {
        "id": run.id,
        "name": run.name,
        "op": record.get("op"),
        "status": record.get("status"),
        "started": record.get("started"),
        "batch": record.get("batch"),
        "config": _finite(record.get("config") or {}),
        "metrics": metrics,
    }


def _finite(val: Any) -> Any:
    """`val` with floats that JSON cannot hold (NaN, inf) as text."""
    if isinstance(val, float) and not math.isfinite(val):
        return str(val)
    if isinstance(val, dict):
        return {k: _finite(v) for k, v in val.items()}
    if isinstance(val, list):
        return [_finite(v) for v in val]
    return val


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, val in data.items():
        if isinstance(val, dict):
            out.extend(_flat(val, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", val))
    return out


def _number(val: Any) -> float | None:
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        return None
    return float(val) if math.isfinite(val) else None


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    config = sorted({k for r in rows for k in r["config"]})
    metrics = sorted({k for r in rows for k in r["metrics"]})
    return {"config": config, "metrics": metrics}


# Curves


def _curves(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    per_run = []
    for r in records:
        run = Run(r["id"], r["run_dir"], r["name"])
        try:
            points = scalars.series(run, max_points=MAX_RUN_POINTS)
        except (OSError, ValueError):
            points = {}
        per_run.append((run.name, points))
    keys = sorted({k for _name, pts in per_run for k, (s, _v) in pts.items() if s})
    curves: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        traces = [(name, pts[key]) for name, pts in per_run if pts.get(key, ([],))[0]]
        budget = max(50, CURVE_BUDGET // max(1, len(traces)))
        curves[key] = [
            {"run": name, "x": xs, "y": ys}
            for name, (steps, vals) in traces
            for xs, ys in [_thin(steps, vals, budget)]
        ]
    return curves


def _thin(steps: list[int], vals: list[float], n: int) -> tuple[list, list]:
    """At most about `n` points: evenly spaced, plus the first, last and
    min point; values that are not finite become None (a gap)."""
    if len(steps) > n:
        keep = {int(i * len(steps) / n) for i in range(n)}
        keep.add(len(steps) - 1)
        finite = [i for i, v in enumerate(vals) if math.isfinite(v)]
        if finite:
            keep.add(min(finite, key=vals.__getitem__))
        idx = sorted(keep)
        steps = [steps[i] for i in idx]
        vals = [vals[i] for i in idx]
    return steps, [float(f"{v:.6g}") if math.isfinite(v) else None for v in vals]


# Parallel coordinates


def _metric(rows: list[dict[str, Any]], metric: str | None) -> str | None:
    names = {k for r in rows for k in r["metrics"]}
    if metric is not None:
        if metric not in names:
            shown = ", ".join(sorted(names)[:12]) or "none"
            raise ReportError(
                f"--metric {metric}: no run has it (metrics: {shown})", key=metric
            )
        return metric
    mins = sorted(n for n in names if n.endswith(".min"))
    return mins[0] if mins else (sorted(names)[0] if names else None)


def _parcoords(rows: list[dict[str, Any]], metric: str | None) -> dict | None:
    """Axes: each config key whose value varies (numbers as they are,
    other values as categories), then the metric."""
    if metric is None:
        return None
    with_metric = [r for r in rows if _number(r["metrics"].get(metric)) is not None]
    if len(with_metric) < 2:
        return None
    dims = []
    for key in sorted({k for r in with_metric for k in r["config"]}):
        vals = [r["config"].get(key) for r in with_metric]
        if len({json.dumps(v, sort_keys=True) for v in vals}) < 2:
            continue
        dims.append(_dimension(key, vals))
    values = [_number(r["metrics"][metric]) for r in with_metric]
    dims.append({"label": metric, "values": values})
    return {
        "dimensions": dims,
        "color": values,
        "runs": [r["name"] for r in with_metric],
    }


def _dimension(key: str, vals: list[Any]) -> dict[str, Any]:
    nums = [_number(v) for v in vals]
    if all(n is not None for n in nums):
        return {"label": key, "values": nums}
    labels = sorted({json.dumps(v, sort_keys=True) for v in vals})
    index = {label: i for i, label in enumerate(labels)}
    return {
        "label": key,
        "values": [index[json.dumps(v, sort_keys=True)] for v in vals],
        "tickvals": list(range(len(labels))),
        "ticktext": labels,
    }


# Config diffs


def _diffs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's config against the first run's: changed, added and
    removed keys ([] for a run with the same config)."""
    if not rows:
        return []
    base = rows[0]["config"]
    out = []
    for r in rows:
        config = r["config"]
        changes = [
            {"key": k, "from": base.get(k), "to": config.get(k)}
            for k in sorted(set(base) | set(config))
            if base.get(k, _ABSENT) != config.get(k, _ABSENT)
        ]
        out.append({"run": r["name"], "changes": changes})
    return out


_ABSENT = object()
