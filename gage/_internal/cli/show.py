"""`gage runs` (the listing), `gage show` and `gage check`.

The parsers live in `cli`; the library is imported inside each verb.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from .common import (
    RUNS_PAGE_HELP,
)
from .common import (
    duration as _duration,
)
from .common import (
    fmt_val as _fmt_val,
)
from .common import (
    local_time as _local_time,
)
from .common import (
    print_dep as _print_dep,
)
from .common import (
    project as _project,
)
from .common import (
    select_run as _select_run,
)
from .common import (
    usage as _usage,
)

# ---------------------------------------------------------------------------
# gage runs


def _cmd_runs(args) -> int:
    from ..home import runs

    if getattr(args, "remote", None):
        from . import remote as cli_remote

        return cli_remote.cmd_remote_runs(args)

    _gf, home = _project(args, required=False)
    limit = _runs_limit(args)
    page, total = runs.runs_page(
        home, args.op, args.status, limit, args.batch, args.label
    )
    if args.json:
        import json

        print(json.dumps([r for _n, r in page], indent=2, sort_keys=True))
        return 0
    if not page:
        filtered = args.op or args.status or args.batch or args.label
        print(f"No {'matching ' if filtered else ''}runs in {home}")
        return 0
    from . import compare as cli_compare

    head, cells = cli_compare.runs_columns([r for _n, r in page], args.cols)
    rows = [("#", "name", "op", "status", "started", "time", *head, "config")]
    for (n, r), extra in zip(page, cells):
        rows.append(
            (
                str(n),
                r["name"],
                r["op"] or "?",
                r["status"],
                _local_time(r["started"]),
                _duration(r["duration"]),
                *extra,
                _config_summary(r["config"]),
            )
        )
    _print_table(rows, _RUNS_STYLES)
    if total > len(page):
        more = total - len(page)
        print(f"{more} more {'run' if more == 1 else 'runs'}: use --all or -n N")
    return 0


_RUNS_PAGE = int(RUNS_PAGE_HELP)

_RUNS_STYLES = ("dim", None, None, "status", None, None, None)


def _runs_limit(args) -> int | None:
    if args.all:
        return None
    if args.limit is not None:
        if args.limit < 1:
            raise _usage(f"-n {args.limit}: show at least 1 run (or --all)")
        return args.limit
    return None if args.json else _RUNS_PAGE


def _print_table(
    rows: Sequence[tuple[str, ...]], styles: Sequence[str | None] | None = None
) -> None:
    from . import table as cli_table

    cli_table.print_table(rows[0], rows[1:], styles=styles)


def _print_status(label: str, status: str) -> None:
    from . import table as cli_table

    sys.stdout.flush()
    cli_table.print_status(label, status)


def _config_summary(config: dict) -> str:
    text = " ".join(f"{k}={_fmt_val(v)}" for k, v in sorted(config.items()))
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------
# gage show


def _cmd_show(args) -> int:
    from ..home import runs
    from ..store import run_meta

    run = _select_run(args, args.run)
    record = runs.run_record(run)
    manifest = run_meta.read_manifest(run)
    if args.json:
        import json

        record["deps"] = run_meta.read_deps(run)
        record["worker"] = run_meta.read_worker(run)
        record["remote"] = run_meta.read_remote(run)
        record["manifest_counts"] = _manifest_counts(manifest)
        if args.files:
            record["manifest"] = [e._asdict() for e in manifest]
        print(json.dumps(record, indent=2, sort_keys=True))
        return 0
    print(f"Run:      {run.name} ({run.id})")
    print(f"Op:       {record['op_ns']}:{record['op']}")
    _print_status("Status:   ", record["status"])
    if record["batch"]:
        print(f"Batch:    {record['batch']}")
    if record["label"]:
        print(f"Label:    {record['label']}")
    print(f"Run dir:  {run.run_dir}")
    print(f"Meta dir: {run.meta_dir}")
    print(f"Started:  {_local_time(record['started'])}")
    print(f"Duration: {_duration(record['duration'])}")
    if record["exit_code"] is not None:
        print(f"Exit:     {record['exit_code']}")
    worker = run_meta.read_worker(run)
    if worker:
        print(
            f"Worker:   {worker.get('host')} ({worker.get('worker')}, {worker.get('engine')})"
        )
    origin = run_meta.read_remote(run)
    if origin:
        print(
            f"Remote:   pulled from '{origin.get('remote')}' ({origin.get('url')}) "
            f"{_local_time(origin.get('pulled'))}, pushed from {origin.get('pushed_from')}"
        )
    _show_dict("Config", record["config"])
    if record["config"] and os.path.exists(run_meta.patched_path(run)):
        print(f"  (diff: {run_meta.patched_path(run)})")
    _show_deps(run_meta.read_deps(run))
    _show_manifest(manifest, args.files)
    _show_dict("Summary", record["summary"])
    _show_output(run)
    return 0


def _show_dict(title: str, data: dict) -> None:
    if not data:
        return
    print(f"{title}:")
    for key, val in sorted(data.items()):
        print(f"  {key}: {_fmt_val(val)}")


def _show_deps(deps: list) -> None:
    if not deps:
        return
    print("Dependencies:")
    for dep in deps:
        paths = [f.get("path") for f in dep.get("files") or []]
        _print_dep(dep.get("spec") or {}, dep.get("source") or {}, paths)


_TYPE_NAMES = {"s": "source code", "d": "dependency", "r": "runtime", "g": "generated"}


def _type_count(n: int, type: str) -> str:
    name = _TYPE_NAMES.get(type, type)
    if n != 1 and name == "dependency":
        name = "dependencies"
    return f"{n} {name}"


def _manifest_counts(manifest) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in manifest:
        counts[e.type] = counts.get(e.type, 0) + 1
    return counts


def _show_manifest(manifest, files: bool) -> None:
    from ..store.run_meta import quote_path

    counts = _manifest_counts(manifest)
    parts = [_type_count(counts[t], t) for t in "sdrg" if t in counts]
    print(f"Manifest: {', '.join(parts) if parts else 'empty'}")
    if files and manifest:
        for e in sorted(manifest, key=lambda e: e.path):
            print(f"  {e.type} {e.sha256} {quote_path(e.path)}")
        print(f"  ({_FILES_LEGEND})")


_FILES_LEGEND = (
    "type: s source code, d dependency, r runtime, g generated; "
    "sha256 digest; path in the run dir"
)


def _show_output(run, lines: int = 10) -> None:
    from ..store import run_meta

    tail = run_meta.read_output_tail(run, "run", lines)
    if tail:
        last = "last line" if len(tail) == 1 else f"last {len(tail)} lines"
        print(f"Output ({last}):")
        for line in tail:
            print(f"  {line}")


# ---------------------------------------------------------------------------
# gage check


def _cmd_check(args) -> int:
    from .. import run_util
    from ..store import objects, run_meta
    from ..types import MetaError, VerifyError

    run = _select_run(args, args.run)
    try:
        progress = objects.terminal_progress("Checking")
        try:
            problems = run_util.verify_run(run, full=args.full, progress=progress)
        finally:
            progress.done()
    except MetaError as e:
        print(f"Run {run.name} cannot be checked: {e}")
        return 1
    except VerifyError as e:
        print(f"Run {run.name} differs from its manifest:")
        print(str(e))
        return 1
    if problems:
        print(f"Run {run.name} differs from its manifest:")
        for p in problems:
            print(f"  {p}")
        return 1
    print(
        f"Run {run.name}: {len(run_meta.read_manifest(run))} files match the manifest"
    )
    return 0
