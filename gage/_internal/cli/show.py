"""`gage runs` (the listing), `gage show` and `gage check`.

The parsers live in `cli`; the library is imported inside each verb.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from .common import (
    RUNS_PAGE_HELP,
    duration,
    fmt_val,
    local_time,
    print_dep,
    project,
    select_run,
    usage,
)

# ---------------------------------------------------------------------------
# gage runs


def _cmd_runs(args) -> int:
    from ..home import runs

    if getattr(args, "remote", None):
        from . import remote as cli_remote

        return cli_remote.cmd_remote_runs(args)
    _gf, home = project(args, required=False)
    if args.archive is not None:
        from ..history import runs_archive

        home = runs_archive.archive_home(home, args.archive)
    limit = _runs_limit(args)
    page, total = runs.runs_page(
        home, args.op, args.status, limit, args.batch, args.label, args.where
    )
    if args.json:
        import json

        print(json.dumps([r for _n, r in page], indent=2, sort_keys=True))
        return 0
    if not page:
        filtered = args.op or args.status or args.batch or args.label or args.where
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
                local_time(r["started"]),
                duration(r["duration"]),
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
            raise usage(f"-n {args.limit}: show at least 1 run (or --all)")
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
    text = " ".join(f"{k}={fmt_val(v)}" for k, v in sorted(config.items()))
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------
# gage show


def _cmd_show(args) -> int:
    from ..home import runs
    from ..lifecycle import scalars
    from ..store import run_meta, run_records

    run = select_run(args, args.run)
    if args.output:
        return _page_output(run)
    record = runs.run_record(run)
    manifest = run_meta.read_manifest(run)
    if args.json:
        return _show_json(run, record, manifest, args.files)
    print(f"Run:      {run.name} ({run.id})")
    print(f"Op:       {record['op_ns']}:{record['op']}")
    _print_status("Status:   ", record["status"])
    if record["batch"]:
        print(f"Batch:    {record['batch']}")
    if record["label"]:
        print(f"Label:    {record['label']}")
    print(f"Run dir:  {run.run_dir}")
    print(f"Meta dir: {run.meta_dir}")
    print(f"Started:  {local_time(record['started'])}")
    print(f"Duration: {duration(record['duration'])}")
    if record["exit_code"] is not None:
        # The code gage exits with for the run (130 for Ctrl-C, not -2).
        print(f"Exit:     {runs.run_exit(run)[0]}")
    worker = run_records.read_worker(run)
    if worker:
        print(
            f"Worker:   {worker.get('host')} ({worker.get('worker')}, {worker.get('engine')})"
        )
    _show_slurm(run_records.read_slurm(run))
    origin = run_records.read_remote(run)
    if origin:
        print(
            f"Remote:   pulled from '{origin.get('remote')}' ({origin.get('url')}) "
            f"{local_time(origin.get('pulled'))}, pushed from {origin.get('pushed_from')}"
        )
    _show_dict("Config", record["config"])
    if record["config"] and os.path.exists(run_meta.patched_path(run)):
        print(f"  (diff: {run_meta.patched_path(run)})")
    _show_deps(run.runs_home, run_meta.read_deps(run))
    _show_manifest(manifest, args.files)
    _show_dict("Summary", record["summary"])
    _show_scalars(run, scalars.read_aggs(run))
    from . import provenance as cli_provenance

    cli_provenance.print_environment(run, args.env)
    _show_comments(run_records.read_comments(run))
    _show_output(run)
    return 0


def _show_json(run, record: dict, manifest: list, files: bool) -> int:
    """`gage show --json`: the run record with what its meta adds."""
    import json

    from ..lifecycle import scalars
    from ..store import run_meta, run_records

    record["deps"] = run_meta.read_deps(run)
    record["comments"] = run_records.read_comments(run)
    record["worker"] = run_records.read_worker(run)
    record["slurm"] = run_records.read_slurm(run)
    record["remote"] = run_records.read_remote(run)
    record["manifest_counts"] = _manifest_counts(manifest)
    record["scalars"] = scalars.read_aggs(run)
    record["git"] = run_records.read_git(run)
    record["environment"] = run_records.read_environment(run)
    if files:
        record["manifest"] = [e._asdict() for e in manifest]
    print(json.dumps(record, indent=2, sort_keys=True))
    return 0


def _show_comments(comments: list) -> None:
    if comments:
        from .comment import print_comments

        print("Comments:")
        print_comments(comments)


def _show_scalars(run, aggs: dict) -> None:
    """`key  first  last  min (step)  max  count`, and a sparkline of the
    curve on a terminal."""
    if not aggs:
        return
    from ..lifecycle import scalars
    from .table import table_text

    spark = sys.stdout.isatty() and os.getenv("TERM") != "dumb"
    curves = scalars.series(run, max_points=20000) if spark else {}
    rows = [["key", "first", "last", "min", "step", "max", "count"]]
    for key, agg in sorted(aggs.items()):
        row = [key] + [
            _num(agg.get(name))
            for name in ("first", "last", "min", "min_step", "max", "count")
        ]
        if spark:
            row.append(sparkline(curves.get(key, ([], []))[1]))
        rows.append(row)
    if spark:
        rows[0].append("")
    print("Scalars:")
    for line in table_text(rows[0], rows[1:]).splitlines():
        print(f"  {line}".rstrip())


def _num(val) -> str:
    if isinstance(val, float):
        return f"{val:.6g}"
    return "-" if val is None else str(val)


_BARS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def sparkline(values: list[float], width: int = 24) -> str:
    """Values as a line of block characters, `width` wide at most (the
    mean of each bucket; NaN and inf left out)."""
    vals = [v for v in values if v == v and abs(v) != float("inf")]
    if not vals:
        return ""
    n = min(width, len(vals))
    buckets = [vals[i * len(vals) // n : (i + 1) * len(vals) // n] for i in range(n)]
    means = [sum(b) / len(b) for b in buckets]
    lo, hi = min(means), max(means)
    span = (hi - lo) or 1.0
    return "".join(_BARS[int((m - lo) / span * (len(_BARS) - 1))] for m in means)


def _show_slurm(job: dict | None) -> None:
    if job and job.get("job_id"):
        end = ": ".join(str(job[k]) for k in ("state", "reason") if job.get(k))
        print(f"Slurm:    job {job['job_id']}" + (f" ({end})" if end else ""))


def _show_dict(title: str, data: dict) -> None:
    if not data:
        return
    print(f"{title}:")
    for key, val in sorted(data.items()):
        print(f"  {key}: {fmt_val(val)}")


def _show_deps(home: str, deps: list) -> None:
    if not deps:
        return
    from ..types import META_SUFFIX

    print("Dependencies:")
    for dep in deps:
        paths = [f.get("path") for f in dep.get("files") or []]
        source = dep.get("source") or {}
        note = ""
        if source.get("type") == "run":
            path = os.path.join(home, str(source.get("id")))
            if not os.path.isdir(path + META_SUFFIX):
                note = "deleted: the run no longer exists"
        print_dep(dep.get("spec") or {}, source, paths, note)


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


def _page_output(run) -> int:
    """`gage show --output`: the run's whole output; on a terminal
    through $PAGER (else `less -FRX`), else as it is."""
    import shutil
    import subprocess

    from ..store import run_meta

    f = run_meta.open_output(run, "run")
    if f is None:
        print(f"Run {run.name} has no output", file=sys.stderr)
        return 0
    pager = os.environ.get("PAGER") or "less -FRX"
    argv = pager.split()
    sys.stdout.flush()
    with f:
        if sys.stdout.isatty() and argv and shutil.which(argv[0]):
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE)
            assert proc.stdin is not None
            try:
                shutil.copyfileobj(f, proc.stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the pager was quit before the end
            proc.wait()
        else:
            shutil.copyfileobj(f, sys.stdout.buffer)
    return 0


# ---------------------------------------------------------------------------
# gage check


def _cmd_check(args) -> int:
    from .. import run_util
    from ..store import run_meta
    from ..types import MetaError, VerifyError
    from ..util import console

    run = select_run(args, args.run)
    try:
        progress = console.terminal_progress("Checking")
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
