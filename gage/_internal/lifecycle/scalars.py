"""A run's scalars: values per step (loss per epoch, accuracy per step).

Scalars come from a run's output (default patterns, or the op's
`output-scalars` regexes) and from the JSON lines of its `scalars-file`
(`scalars_capture` reads both as the run goes). They are kept in meta
(`run_meta`: `scalars/keys`, `scalars/points`, `scalars/aggs.json`).

Reading: `aggregates(run)` gives the per-key figures that compare, sort
and search use (`loss.last`, `loss.min`, `loss.step`, ...) from the
small aggregate file only; `series(run)` reads every point.

Writing: a `Recorder` takes points, keeps the aggregates, and appends
what it took on `flush()`. It is bounded: at most `MAX_KEYS` keys and
`MAX_POINTS` points per run; beyond that points are counted and dropped.
"""

from __future__ import annotations

import math
from typing import Any

from ..store import run_records
from ..types import Run

__all__ = [
    "AGG_NAMES",
    "MAX_KEYS",
    "MAX_POINTS",
    "Recorder",
    "aggregates",
    "last_values",
    "read_aggs",
    "series",
]

AGG_NAMES = ("first", "last", "min", "max", "step", "count")
"""The aggregate names a key has in `aggregates`: `loss.min`; `step` is
the step of the min (the best step when lower is better)."""

MAX_KEYS = 1000
MAX_POINTS = 10_000_000


def aggregates(run: Run) -> dict[str, float]:
    """A run's scalar aggregates by column name: `loss.first`,
    `loss.last`, `loss.min`, `loss.max`, `loss.step` (step of the min)
    and `loss.count`, for every scalar key `loss`. Reads only the small
    aggregate file; {} for a run without scalars (or whose file cannot
    be read)."""
    try:
        aggs = run_records.read_scalar_aggs(run)
    except (OSError, ValueError):
        return {}
    return flat_aggs(aggs)


def flat_aggs(aggs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Aggregates as `aggregates` names them, from `read_aggs` records."""
    out: dict[str, float] = {}
    for key, agg in aggs.items():
        if not isinstance(agg, dict):
            continue
        for name, src in _FLAT:
            val = agg.get(src)
            if isinstance(val, (int, float)) and not isinstance(val, bool):
                out[f"{key}.{name}"] = val
    return out


_FLAT = (
    ("first", "first"),
    ("last", "last"),
    ("min", "min"),
    ("max", "max"),
    ("step", "min_step"),
    ("count", "count"),
)


def read_aggs(run: Run) -> dict[str, dict[str, Any]]:
    """Per key: first, last, last_step, min, min_step, max, max_step,
    count ({} when the run has none or they cannot be read)."""
    try:
        return run_records.read_scalar_aggs(run)
    except (OSError, ValueError):
        return {}


def last_values(run: Run) -> dict[str, float]:
    """The last value of each scalar key (what the summary starts from)."""
    return {
        key: agg["last"]
        for key, agg in read_aggs(run).items()
        if isinstance(agg, dict) and isinstance(agg.get("last"), (int, float))
    }


def series(
    run: Run, max_points: int | None = None
) -> dict[str, tuple[list[int], list[float]]]:
    """A run's points: key -> (steps, values), in recorded order. With
    `max_points`, about that many of all points, evenly spread (read by
    seeking: for a sparkline or a chart of a long run)."""
    keys = run_records.read_scalar_keys(run)
    out: dict[str, tuple[list[int], list[float]]] = {k: ([], []) for k in keys}
    if max_points is None:
        points, _end = run_records.read_scalar_points(run)
    else:
        points = run_records.sample_scalar_points(run, max_points)
    for n, step, val in points:
        if n < len(keys):
            steps, vals = out[keys[n]]
            steps.append(step)
            vals.append(val)
    return out


class Recorder:
    """Points of one run, appended to its meta on `flush`.

    `add(key, step, value)` with `step` None uses the key's own count
    (0, 1, 2, ...) as its step. Keys and aggregates already in meta are
    read first, so a recorder can continue a run's scalars.
    """

    def __init__(self, run: Run):
        self.run = run
        self.keys: dict[str, int] = {
            k: i for i, k in enumerate(run_records.read_scalar_keys(run))
        }
        self.aggs: dict[str, dict[str, Any]] = read_aggs(run)
        self.points = sum(int(a.get("count", 0)) for a in self.aggs.values())
        self.dropped = 0
        self._new_keys: list[str] = []
        self._pending: list[tuple[int, int, float]] = []
        self._changed = False

    def add(self, key: str, step: int | None, value: float) -> None:
        key = key[: run_records.SCALARS_MAX_KEY]
        n = self.keys.get(key)
        if n is None:
            if len(self.keys) >= MAX_KEYS:
                self.dropped += 1
                return
            n = self.keys[key] = len(self.keys)
            self._new_keys.append(key)
        if self.points >= MAX_POINTS:
            self.dropped += 1
            return
        agg = self.aggs.get(key)
        if step is None:
            step = int(agg["count"]) if agg else 0
        step = max(min(step, _I64), -_I64)
        self._pending.append((n, step, value))
        self.points += 1
        self._changed = True
        if agg is None:
            self.aggs[key] = _new_agg(step, value)
        else:
            _update_agg(agg, step, value)

    def flush(self) -> bool:
        """Append new keys and points, rewrite the aggregates; True when
        anything was written."""
        if not self._changed:
            return False
        run_records.append_scalar_keys(self.run, self._new_keys)
        run_records.append_scalar_points(self.run, self._pending)
        run_records.write_scalar_aggs(self.run, self.aggs)
        self._new_keys.clear()
        self._pending.clear()
        self._changed = False
        return True


_I64 = (1 << 63) - 1


def _new_agg(step: int, value: float) -> dict[str, Any]:
    agg: dict[str, Any] = {
        "first": value,
        "last": value,
        "last_step": step,
        "count": 1,
    }
    if not math.isnan(value):
        agg.update(min=value, min_step=step, max=value, max_step=step)
    return agg


def _update_agg(agg: dict[str, Any], step: int, value: float) -> None:
    agg["last"] = value
    agg["last_step"] = step
    agg["count"] += 1
    if math.isnan(value):
        return
    if "min" not in agg or value < agg["min"]:
        agg["min"], agg["min_step"] = value, step
    if "max" not in agg or value > agg["max"]:
        agg["max"], agg["max_step"] = value, step
