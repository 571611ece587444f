"""Several runs from words: the one rule every verb that selects runs
uses (`runs`, `compare`, `runs rm|purge|label`, `select`, `archive`,
`restore`).

`select_runs(home, specs, op=, status=, batch=, label=, where=)`:

- RUN specs, each through `runs.select_run` (the one rule for a RUN),
  in the order given, each run once; no specs: every run in the home,
  newest first;
- then the filters, all of them: op name, statuses, batch id (or
  prefix), label text it contains, and a `--where` expression
  (`run_where`);
- a status filter matches the status `gage runs` shows, and `pending`
  also matches a run whose staging died before it was staged (it lists
  as `abandoned`): a run that never finished staging.

Without specs the runs index serves the filters (SQL), and only a page
(`limit`) of runs is read; a filter the index cannot serve exactly
(running, pending and abandoned depend on a process; `started`, `time`
and `comments` in `--where`) is tested on every candidate's record.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

from ..store import run_records
from ..types import GageError, Run
from . import runs, runs_index

if TYPE_CHECKING:
    from . import run_where

__all__ = ["Numbered", "resolve_where", "select_runs"]

Numbered = tuple["int | None", dict[str, Any]]
"""A run record with its # in `gage runs` (None: not in the runs home)."""

_INDEX_STATES = {
    "pending": ["pending"],
    "staged": ["staged"],
    "running": ["started"],
    "completed": ["completed"],
    "error": ["error"],
    "terminated": ["terminated"],
    "abandoned": ["started", "pending"],
    "queued": ["staged"],  # a staged run whose Slurm job waits
}


def select_runs(
    home: str,
    specs: Sequence[str] = (),
    op: str | None = None,
    status: str | Sequence[str] | None = None,
    batch: str | None = None,
    label: str | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> tuple[list[Numbered], int]:
    """Run records (see the module doc) with their # in `gage runs`, up
    to `limit`; and how many match in all. Raises RunSelectError for a
    spec that selects no run, WhereError for a bad `where`."""
    statuses = [status] if isinstance(status, str) else status
    for s in statuses or ():
        if s not in runs.RUN_STATUSES:
            raise GageError(
                f"no status '{s}' (use {', '.join(runs.RUN_STATUSES)})", key=s
            )
    filt = _Filter(op, statuses, batch, label, *resolve_where(home, where))
    if specs:
        found = [nr for nr in _from_specs(home, specs) if filt.keep(nr[1])]
        total = len(found)
        return (found if limit is None else found[:limit]), total
    conds, params, exact = filt.sql()
    numbered, total = runs_index.numbered(
        home, " AND ".join(conds), tuple(params), limit if exact else None
    )
    page: list[Numbered] = []
    for n, entry in numbered:
        record = runs.entry_record(home, entry, runs.entry_status(home, entry))
        if exact or filt.keep(_with_comments(record, filt)):
            page.append((n, record))
    if not exact:
        total = len(page)
        page = page if limit is None else page[:limit]
    return page, total


def resolve_where(
    home: str, where: str | None
) -> tuple[run_where.Expr | None, dict[str, str]]:
    """The parsed `where` and the full name of each column it uses,
    resolved against the runs of `home` (as `gage compare --cols`
    resolves names). Raises WhereError."""
    if where is None:
        return None, {}
    from . import run_where

    expr = run_where.parse(where)
    cols = run_where.columns(expr)
    has = _has_keys(home, cols)
    names = {
        col: run_where.resolve(
            col, lambda kind, key: has[(kind, key)], lambda: _known(home)
        )
        for col in cols
    }
    return expr, names


def _has_keys(home: str, cols: list[str]) -> dict[tuple[str, str], bool]:
    """Whether a run has each config and summary key the columns may
    name, asked of the index at once (keys it cannot ask about: of the
    runs' records)."""
    from . import run_where

    keys: dict[tuple[str, str], None] = {}
    for col in cols:
        kind, dot, key = col.partition(".")
        if dot and kind in ("config", "summary") and key:
            keys[(kind, key)] = None
        else:
            keys.update({("config", col): None, ("summary", col): None})
    safe = [k for k in keys if run_where.SAFE_KEY.fullmatch(k[1])]
    found = dict(zip(safe, runs_index.exists(home, [_key_sql(*k) for k in safe])))
    others = [k for k in keys if k not in found]
    if others:
        known = _known(home)
        found.update({k: f"{k[0]}.{k[1]}" in known for k in others})
    return found


def _key_sql(kind: str, key: str) -> str:
    """Whether a row has a config or summary key (`SAFE_KEY`): instr
    first, so a row without the key's name is not parsed."""
    from . import run_where

    paths = run_where.json_paths(kind, key)
    if kind == "config":
        tests = [f"json_type(config, '{p}') IS NOT NULL" for p in paths]
    else:  # a table with keys is flattened: its keys are the columns
        tests = [
            f"(coalesce(json_type(summary, '{p}') != 'object', 0) "
            f"OR json_extract(summary, '{p}') = '{{}}')"
            for p in paths
        ]
    names = ['"' + p.rsplit('"', 2)[-2] + '"' for p in paths]
    return " OR ".join(
        f"(instr({kind}, '{n}') > 0 AND {t})" for n, t in zip(names, tests)
    )


def _known(home: str) -> set[str]:
    from . import run_where

    names: set[str] = set()
    for entry in runs_index.entries(home):
        names.update(run_where.record_values(runs.entry_record(home, entry, "")))
    return names


class _Filter:
    def __init__(self, op, statuses, batch, label, expr, names):
        self.op = op
        self.statuses = list(statuses) if statuses is not None else None
        self.batch = batch
        self.label = label
        self.expr = expr
        self.names = names
        self.comments = "comments" in names.values()

    def sql(self) -> tuple[list[str], list[Any], bool]:
        """Conditions for the runs index, and whether they are exact."""
        conds: list[str] = []
        params: list[Any] = []
        exact = True
        if self.op is not None:
            conds.append("op = ?")
            params.append(self.op)
        if self.batch is not None:
            conds.append("substr(batch, 1, ?) = ?")
            params.extend((len(self.batch), self.batch))
        if self.label is not None:
            conds.append("instr(label, ?) > 0")
            params.append(self.label)
        if self.statuses is not None:
            states = sorted({s for st in self.statuses for s in _INDEX_STATES[st]})
            conds.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
            exact = not any(s in ("pending", "started", "staged") for s in states)
        if self.expr is not None:
            from . import run_where

            where = run_where.to_sql(self.expr, self.names)
            if where is None:
                exact = False
            else:
                conds.append(where[0])
                params.extend(where[1])
        return conds, params, exact

    def keep(self, record: dict[str, Any]) -> bool:
        if self.op is not None and record["op"] != self.op:
            return False
        if self.batch is not None and not (record["batch"] or "").startswith(
            self.batch
        ):
            return False
        if self.label is not None and self.label not in (record["label"] or ""):
            return False
        if self.statuses is not None and not status_matches(record, self.statuses):
            return False
        if self.expr is None:
            return True
        from . import run_where  # on use: a plain `gage runs` needs none

        values = run_where.record_values(_with_comments(record, self))
        return run_where.matches(self.expr, values, self.names)


def status_matches(record: dict[str, Any], statuses: Sequence[str]) -> bool:
    """A run record has one of `statuses`; `pending` also matches a run
    whose staging died before it was staged (it lists as `abandoned`)."""
    if record["status"] in statuses:
        return True
    return (
        "pending" in statuses
        and record["status"] == "abandoned"
        and record["staged"] is None
        and record["started"] is None
    )


def _with_comments(record: dict[str, Any], filt: _Filter) -> dict[str, Any]:
    if filt.comments and "comments" not in record:
        record["comments"] = comments_text(record["run_dir"])
    return record


def comments_text(run_dir: str) -> str | None:
    """A run's comments as one value (texts joined by '; '), None when
    it has none: the `comments` column."""
    run = Run("", run_dir, "")
    try:
        texts = [c["text"] for c in run_records.read_comments(run)]
    except (OSError, ValueError):
        return None
    return "; ".join(texts) or None


def _from_specs(home: str, specs: Sequence[str]) -> list[Numbered]:
    picked: dict[str, Run] = {}
    for spec in specs:
        run = runs.select_run(home, spec)
        picked.setdefault(run.id, run)
    ids = tuple(picked)
    marks = ",".join("?" * len(ids))
    indexed = {
        e.id: (n, e) for n, e in runs_index.numbered(home, f"id IN ({marks})", ids)[0]
    }
    found: list[Numbered] = []
    for run in picked.values():
        n_entry = indexed.get(run.id)
        if n_entry and os.path.join(home, n_entry[1].dir) == run.run_dir:
            n, entry = n_entry
            found.append(
                (n, runs.entry_record(home, entry, runs.entry_status(home, entry)))
            )
        else:
            found.append((None, runs.run_record(run)))
    return found
