"""Compare runs: one row per run, columns for run attributes, config and
summary values.

A column is named `config.KEY`, `summary.KEY`, a scalar aggregate
(`loss.last`, `loss.min`, `loss.max`, `loss.first`, `loss.count`,
`loss.step`: the step of the min; `lifecycle.scalars.aggregates`) or a
run attribute (`id`, `name`, `op`, `status`, `started`, `time`,
`label`, `comments`). A plain name (`lr`, `loss`) resolves to config when a run has
that config key, else to summary, else to a scalar aggregate, else to an
attribute (`config.` and `summary.` name one explicitly). A nested summary (`{"val": {"loss": 1}}`) is flattened
with dots (`summary.val.loss`). Where a run came from is read from its
meta only when a column asks for it: `git.commit`, `git.branch`,
`git.dirty`, `git.remote`, `python`, `host`, `pkg.NAME` (the version of
package NAME its interpreter had).

`compare` selects the columns, sorts (`-loss`: descending; runs without
a value last), keeps the top N rows and drops columns whose values are
the same in every row (`only_changed`). The CLI (`gage compare`, `gage
runs --cols`) formats the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..home import runs, runs_select
from ..home.run_where import ATTRS, record_values
from ..lifecycle import scalars
from ..types import GageError, Run

__all__ = [
    "ATTRS",
    "Column",
    "CompareError",
    "Row",
    "Table",
    "compare",
    "parse_cols",
    "record_values",
    "run_values",
    "sort_rows",
]


MISSING: Any = None
"""The value of a column a run has no value for."""


class CompareError(GageError):
    """A column or sort spec names nothing the runs have."""


@dataclass(frozen=True)
class Column:
    """A column: `kind` is `attr`, `config`, `summary` or `scalar`; `key`
    the name within it (`loss.min` for a scalar aggregate)."""

    kind: str
    key: str

    @property
    def name(self) -> str:
        """The full name (`config.lr`, `summary.loss`, `status`)."""
        if self.kind in ("attr", "scalar"):
            return self.key
        return f"{self.kind}.{self.key}"


PROVENANCE_ATTRS = ("python", "host")
PROVENANCE_KINDS = ("git", "pkg")


@dataclass(frozen=True)
class Row:
    """A run and its values, one per column of the table."""

    run: Run
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Table:
    """What `compare` returns: `columns` and `rows` (a run and its values
    per column); `dicts()` for rows as dicts, `render()` for text."""

    columns: tuple[Column, ...]
    rows: tuple[Row, ...]

    def labels(self) -> list[str]:
        """Column headers: the plain key, or the full name where a key is
        both a config and a summary column."""
        import collections

        counts = collections.Counter(c.key for c in self.columns)
        return [
            c.key if counts[c.key] == 1 and c.kind not in PROVENANCE_KINDS else c.name
            for c in self.columns
        ]

    def dicts(self) -> list[dict[str, Any]]:
        """One dict per row: `id`, `name`, then each column by its full
        name (`config.lr`, `summary.loss`); None for no value."""
        return [
            {
                "id": r.run.id,
                "name": r.run.name,
                **{c.name: v for c, v in zip(self.columns, r.values)},
            }
            for r in self.rows
        ]

    def render(self) -> str:
        """The table as aligned text: name, then the columns (`-` for no
        value), one line per row."""
        import json

        head = ["name"] + [
            n for c, n in zip(self.columns, self.labels()) if c.key != "name"
        ]
        keep = [i for i, c in enumerate(self.columns) if c.key != "name"]
        text = [
            [r.run.name]
            + [
                "-"
                if r.values[i] is None
                else r.values[i]
                if isinstance(r.values[i], str)
                else json.dumps(r.values[i])
                for i in keep
            ]
            for r in self.rows
        ]
        rows = [head] + text
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        return "".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n"
            for row in rows
        )


def compare(
    items: Sequence[Run | dict[str, Any]],
    cols: Sequence[str] | None = None,
    sort: Sequence[str] | None = None,
    top: int | None = None,
    only_changed: bool = False,
) -> Table:
    """A table of runs (order kept unless `sort`): `items` are runs or
    their records (`runs.run_record`, `runs.runs_page`: from the runs
    index, so many runs are compared without reading their meta).

    `cols`: column specs (see the module doc); default: op, status,
    label (when a run has one), every config key, then every summary key.
    `sort`: column specs, `-` before one for descending.
    """
    records = [runs.run_record(i) if isinstance(i, Run) else i for i in items]
    run_list = [Run(r["id"], r["run_dir"], r["name"]) for r in records]
    values = [_values(r) for r in records]
    if _wants_provenance([*(cols or []), *(sort or [])]):
        _add_provenance(run_list, values)
    columns = parse_cols(cols, values) if cols is not None else _default_cols(values)
    sort_cols = [
        (parse_cols([spec.lstrip("-")], values)[0], spec.startswith("-"))
        for spec in sort or []
    ]
    if any(c.name == "comments" for c in columns + [c for c, _d in sort_cols]):
        for vals, r in zip(values, records):
            vals["comments"] = runs_select.comments_text(r["run_dir"])
    rows = [
        (Row(run, tuple(vals.get(c.name, MISSING) for c in columns)), vals)
        for run, vals in zip(run_list, values)
    ]
    for col, desc in reversed(sort_cols):
        rows = sort_rows(rows, lambda r, c=col: r[1].get(c.name, MISSING), desc)
    if top is not None:
        if top < 1:
            raise CompareError(f"--top {top}: show at least 1 run")
        rows = rows[:top]
    table = Table(tuple(columns), tuple(r for r, _vals in rows))
    return _only_changed(table) if only_changed else table


def run_values(run: Run) -> dict[str, Any]:
    """A run's values by full column name (attributes, `config.*`,
    `summary.*`, scalar aggregates)."""
    return _values(runs.run_record(run))


def _values(record: dict[str, Any]) -> dict[str, Any]:
    """A run record's values by full column name: `run_where`'s (attributes,
    config, summary) and the run's scalar aggregates (`loss.min`, ...)."""
    vals = record_values(record)
    run = Run(record["id"], record["run_dir"], record["name"])
    vals.update(scalars.aggregates(run))
    return vals


def _wants_provenance(specs: Sequence[str]) -> bool:
    for spec in specs:
        for name in (s.strip().lstrip("-") for s in spec.split(",")):
            if name in PROVENANCE_ATTRS or name.partition(".")[0] in PROVENANCE_KINDS:
                return True
    return False


def _add_provenance(run_list: list[Run], values: list[dict[str, Any]]) -> None:
    from ..lifecycle import provenance

    for run, vals in zip(run_list, values):
        vals.update(provenance.columns(run))


def _default_cols(values: list[dict[str, Any]]) -> list[Column]:
    cols = [Column("attr", "op"), Column("attr", "status")]
    if any(v.get("label") for v in values):
        cols.append(Column("attr", "label"))
    for kind in ("config", "summary"):
        keys = {n for v in values for n in v if n.startswith(kind + ".")}
        cols.extend(Column(kind, n[len(kind) + 1 :]) for n in sorted(keys))
    return cols


def parse_cols(specs: Sequence[str], values: list[dict[str, Any]]) -> list[Column]:
    """Columns for specs (`lr`, `summary.loss`, `status`; a spec may hold
    several, comma separated). Raises CompareError for a name no run
    has."""
    cols = []
    for spec in specs:
        for name in (s.strip() for s in spec.split(",")):
            if name:
                cols.append(_col(name, values))
    return cols


def _col(name: str, values: list[dict[str, Any]]) -> Column:
    names = {n for v in values for n in v}
    kind, dot, key = name.partition(".")
    if dot and kind in PROVENANCE_KINDS and key:
        if name in names or not values:
            return Column(kind, key)
        raise CompareError(_unknown_msg(name, names), key=name)
    if name in PROVENANCE_ATTRS:
        return Column("attr", name)
    if dot and kind in ("config", "summary") and key:
        if name in names or not values:
            return Column(kind, key)
        raise CompareError(_unknown_msg(name, names), key=name)
    for kind in ("config", "summary"):
        if f"{kind}.{name}" in names:
            return Column(kind, name)
    if dot and name in names:
        return Column("scalar", name)
    if name in ATTRS:
        return Column("attr", name)
    if not values:
        return Column("config", name)
    raise CompareError(_unknown_msg(name, names), key=name)


def _unknown_msg(name: str, names: set[str]) -> str:
    known = sorted(n for n in names if "." in n)
    if name.startswith("pkg."):
        return (
            f"no run recorded package '{name[4:]}' (pkg.NAME: the version of a "
            "package the run's Python had; see gage show RUN --env)"
        )
    known = sorted(n for n in names if "." in n and not n.startswith("pkg."))
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return (
        f"no run has a column '{name}' (columns: {', '.join(ATTRS)}"
        f"{', ' + shown if shown else ''})"
    )


def sort_rows(items: list, value, descending: bool = False) -> list:
    """`items` sorted by `value(item)`: numbers by value, before other
    values (as text); items without a value last either way. Stable."""
    present = [i for i in items if value(i) is not MISSING]
    absent = [i for i in items if value(i) is MISSING]
    present.sort(key=lambda i: _sort_key(value(i)), reverse=descending)
    return present + absent


def _sort_key(val: Any) -> tuple[int, Any]:
    if isinstance(val, bool):
        return (0, int(val))
    if isinstance(val, (int, float)):
        return (0, val)
    return (1, val if isinstance(val, str) else repr(val))


def _only_changed(table: Table) -> Table:
    keep = [
        i
        for i, col in enumerate(table.columns)
        if col.kind == "attr"
        and col.key in ("id", "name")
        or len({_hashable(r.values[i]) for r in table.rows}) > 1
    ]
    return Table(
        tuple(table.columns[i] for i in keep),
        tuple(Row(r.run, tuple(r.values[i] for i in keep)) for r in table.rows),
    )


def _hashable(val: Any) -> Any:
    import json

    if isinstance(val, (dict, list)):
        return json.dumps(val, sort_keys=True)
    # 1 and 1.0 and True are different values to a user comparing runs.
    return (type(val).__name__, val)
