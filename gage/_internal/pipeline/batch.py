"""Batches: many trials of one op from value lists, ranges and files.

`gage run OP NAME=VALUE...` is a batch when a value is a list or a range
for a config key whose default is not a list, or with `--random N`,
`--max-trials N` or a batch file (`-b`). Each trial is an ordinary run;
its meta records the batch id.

Values (decided by the type of the key's default):

- `lr=[0.1,0.01]`: a list of values. For a key whose default is a list
  (or tuple), `[...]` is the value itself, as in a plain run.
- `lr=[1e-4:1e-1]`: a range. `--random N` draws from it: uniformly, or
  log-uniformly when both ends are > 0 and the high end is at least 100
  times the low one (two decades or more); integers when the default and
  both ends are integers (ends included).
- `lr=[1e-5:1e-1:log]`: a range drawn log-uniformly whatever its ends
  (both must be above 0); `--optimize` samples it on a log scale.
- `epochs=[10:50:10]`: a range with a step is the list 10, 20, 30, 40, 50
  (ends included when the step lands on them).
- any other value is the same in every trial.

Trials:

- the grid: every combination of the lists (`--max-trials N` keeps the
  first N), in the order the keys are given, the last key varying
  fastest;
- `--random N [--seed S]`: N trials, each value drawn from its list or
  range; a range with no step needs `--random`;
- batch files (`-b trials.csv`, `-b trials.json`, repeatable): a CSV file
  has a header row of names and a trial per row (an empty cell leaves the
  key at its default); a JSON file is a list of objects (or one object).
  Command-line values apply to each trial of the files (a command-line
  value wins over the file's), and lists multiply them.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re
from dataclasses import dataclass
from typing import Any

from ..types import ConfigError, GageError

__all__ = [
    "Range",
    "is_batch_value",
    "make_trials",
    "parse_axis",
    "read_batch_file",
]


@dataclass(frozen=True)
class Range:
    """Values from `low` to `high` (inclusive), drawn at random."""

    low: float
    high: float
    integer: bool = False
    log_scale: bool | None = None  # `[LOW:HIGH:log]`; None: by the ends

    @property
    def log(self) -> bool:
        if self.log_scale is not None:
            return self.log_scale
        return self.low > 0 and self.high >= 100 * self.low

    def draw(self, rng: random.Random) -> float | int:
        if self.integer:
            return rng.randint(int(self.low), int(self.high))
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def __str__(self) -> str:
        how = "integers" if self.integer else "log-uniform" if self.log else "uniform"
        return f"[{self.low}:{self.high}] ({how})"


Axis = Any  # list[Any] | Range

_RANGE = re.compile(
    r"^\[\s*([^:\[\],]+?)\s*:\s*([^:\[\],]+?)\s*(?::\s*([^:\[\],]+?)\s*)?\]$"
)


def is_batch_value(text: str, default: Any) -> bool:
    """Whether NAME=`text` is a list or range of values (not a value)."""
    text = text.strip()
    return (
        text.startswith("[")
        and text.endswith("]")
        and not isinstance(default, (list, tuple))
    )


def parse_axis(name: str, text: str, default: Any) -> Axis:
    """The list of values or the Range that `text` (`[...]`) stands for."""
    from ..config.run_config import parse_value

    m = _RANGE.match(text.strip())
    if m:
        log = m.group(3) == "log"
        low, high, step = (
            _number(name, text, g) if g and not (i == 2 and log) else None
            for i, g in enumerate(m.groups())
        )
        assert low is not None and high is not None
        if high < low:
            raise ConfigError(
                f"'{name}={text}': the range's low end is above its high end"
            )
        integer = (
            all(isinstance(v, int) for v in (low, high))
            and isinstance(default, int)
            and not isinstance(default, bool)
        )
        if log and low <= 0:
            raise ConfigError(f"'{name}={text}': a log range needs both ends above 0")
        if step is None:
            return Range(low, high, integer, True if log else None)
        return _steps(name, text, low, high, step)
    try:
        val = parse_value(text)
    except ConfigError as e:
        raise ConfigError(f"Invalid value in '{name}={text}': {e}") from None
    if not isinstance(val, list) or not val:
        raise ConfigError(f"'{name}={text}': a list of values must not be empty")
    return val


def _number(name: str, text: str, part: str) -> float | int:
    from ..config.run_config import parse_value

    val = parse_value(part)
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise ConfigError(
            f"'{name}={text}': a range is [LOW:HIGH] or [LOW:HIGH:STEP] with "
            f"numbers, got {part!r}"
        )
    return val


def _steps(name: str, text: str, low: Any, high: Any, step: Any) -> list[Any]:
    if step <= 0:
        raise ConfigError(f"'{name}={text}': the step must be above 0")
    n = int(math.floor((high - low) / step + 1e-9)) + 1
    if n > 100_000:
        raise ConfigError(f"'{name}={text}': {n} values is too many")
    if all(isinstance(v, int) for v in (low, high, step)):
        return [low + i * step for i in range(n)]
    return [round(low + i * step, 12) for i in range(n)]


# ---------------------------------------------------------------------------
# Trials


def make_trials(
    axes: dict[str, Axis],
    file_trials: list[dict[str, Any]] | None = None,
    random_n: int | None = None,
    seed: int | None = None,
    max_trials: int | None = None,
) -> list[dict[str, Any]]:
    """The trials: file trials (or one empty trial) times the grid of
    `axes`, or `random_n` draws; each a dict name -> value."""
    base = file_trials or [{}]
    if random_n is not None:
        if random_n < 1:
            raise GageError(f"--random must be 1 or more, got {random_n}")
        rng = random.Random(seed)
        trials = [
            {**base[i % len(base)], **{k: _draw(a, rng) for k, a in axes.items()}}
            for i in range(random_n)
        ]
    else:
        ranges = [k for k, a in axes.items() if isinstance(a, Range)]
        if ranges:
            raise GageError(
                f"'{ranges[0]}' is a range: use --random N to draw N trials "
                "from it, or give a step ([LOW:HIGH:STEP]) for a grid"
            )
        names = list(axes)
        grid = [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]
        trials = [{**b, **g} for b in base for g in grid]
    if max_trials is not None:
        if max_trials < 1:
            raise GageError(f"--max-trials must be 1 or more, got {max_trials}")
        trials = trials[:max_trials]
    return trials


def _draw(axis: Axis, rng: random.Random) -> Any:
    return axis.draw(rng) if isinstance(axis, Range) else rng.choice(axis)


# ---------------------------------------------------------------------------
# Batch files


def read_batch_file(path: str) -> list[dict[str, Any]]:
    """Trials from a CSV or JSON batch file (by extension)."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        raise GageError(
            f"cannot read batch file {path}: {e.strerror}", path=path
        ) from None
    except UnicodeDecodeError:
        raise GageError(f"batch file {path} is not UTF-8 text", path=path) from None
    if ext == ".csv":
        return _read_csv(path, text)
    if ext == ".json":
        return _read_json(path, text)
    raise GageError(
        f"batch file {path}: use a .csv file (a header row of names, a trial "
        "per row) or a .json file (a list of objects)",
        path=path,
    )


def _read_csv(path: str, text: str) -> list[dict[str, Any]]:
    import csv

    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise GageError(
            f"batch file {path} is empty: give a header row of names", path=path
        )
    names = [n.strip() for n in rows[0]]
    if not all(names):
        raise GageError(
            f"batch file {path}: the header row has an empty name", path=path
        )
    trials = []
    for i, row in enumerate(rows[1:], 2):
        if len(row) > len(names):
            raise GageError(
                f"batch file {path} line {i}: {len(row)} values for {len(names)} names",
                path=path,
            )
        trials.append({n: v for n, v in zip(names, row) if v.strip() != ""})
    return trials


def _read_json(path: str, text: str) -> list[dict[str, Any]]:
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise GageError(f"batch file {path}: invalid JSON: {e}", path=path) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise GageError(
            f"batch file {path}: expected a list of objects (name -> value)",
            path=path,
        )
    return data
