"""`gage watch`: follow a run's output and latest scalars until it ends."""

from __future__ import annotations

import argparse
import sys

_HELP = """\
Follow RUN (default: the latest run) as it goes: print its output from
the start as the run writes it and, when its scalars change, a line
with the latest value of each:

    -- step 4: acc=0.226 loss=0.7738

A run that is staged waits for its start. The watch ends when the run
does, with a line that says how it ended. Ctrl-C stops watching, not
the run: the run goes on (gage watch RUN follows it again).

Exit status: 0 when the run completed or watching was stopped; 1 when
the run ended otherwise (error, terminated, abandoned); 2 when the run
is not found.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    from . import common

    p = sub.add_parser(
        name, help=help, description=_HELP, formatter_class=common.RawHelpFormatter
    )
    p.add_argument(
        "run", nargs="?", metavar="RUN", help=common.RUN_ARG_HELP + " (default: latest)"
    )
    p.add_argument("--no-scalars", action="store_true", help="print the output only")
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_watch)


def _cmd_watch(args) -> int:
    from ..history import run_watch
    from . import common

    run = common.select_run(args, args.run)
    out = sys.stdout.buffer
    from ..home.runs import run_status

    print(f"Watching {run.name} ({run.id}); Ctrl-C stops watching", file=sys.stderr)
    status = run_status(run)
    if status in ("pending", "staged"):
        print(f"Run {run.name} is {status}: waiting for it to start", file=sys.stderr)
    at_line_start = True
    events = run_watch.watch(run)
    try:
        for event in events:
            if isinstance(event, run_watch.Output):
                out.write(event.data)
                out.flush()
                at_line_start = event.data.endswith(b"\n")
            elif isinstance(event, run_watch.Scalars) and not args.no_scalars:
                sep = b"" if at_line_start else b"\n"
                out.write(sep + scalars_line(event.aggs).encode("utf-8") + b"\n")
                out.flush()
                at_line_start = True
            elif isinstance(event, run_watch.Ended):
                if not at_line_start:
                    out.write(b"\n")
                out.flush()
                print(f"Run {run.name} ended: {event.status}", file=sys.stderr)
                return 0 if event.status == "completed" else 1
    except KeyboardInterrupt:
        events.close()
        sys.stdout.flush()
        print(
            f"\nStopped watching; run {run.name} goes on "
            f"(gage watch {run.name} follows it again)",
            file=sys.stderr,
        )
        return 0
    except BrokenPipeError:
        return 0
    return 0


def scalars_line(aggs: dict) -> str:
    """`-- step N: key=last ...` (the step of the latest point)."""
    steps = [a.get("last_step") for a in aggs.values() if isinstance(a, dict)]
    step = max((s for s in steps if isinstance(s, int)), default=None)
    vals = " ".join(
        f"{key}={_num(agg.get('last'))}"
        for key, agg in sorted(aggs.items())
        if isinstance(agg, dict)
    )
    return f"-- step {step}: {vals}" if step is not None else f"-- {vals}"


def _num(val) -> str:
    return f"{val:.6g}" if isinstance(val, float) else str(val)
