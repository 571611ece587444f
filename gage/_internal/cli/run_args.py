"""The options of `gage run` and `gage repro` that start batches or pick
an engine: defined here, apart from the modules that act on them
(`cli.batch`, `cli.optimize`, `cli.slurm_args`, `cli.repro`), so that
parsing a plain `gage run` imports none of those."""

from __future__ import annotations

import argparse


def add_batch_args(p: argparse.ArgumentParser) -> None:
    """Batch options of `gage run` (`cli.batch`), with --jobs, --engine
    and the search options."""
    p.add_argument(
        "-b",
        "--batch-file",
        dest="batch_files",
        action="append",
        default=[],
        metavar="FILE",
        help="trials from a .csv or .json file (repeatable)",
    )
    p.add_argument(
        "--random", type=int, metavar="N", help="draw N trials from lists and ranges"
    )
    p.add_argument("--seed", type=int, metavar="S", help="seed for --random")
    p.add_argument(
        "--max-trials", type=int, metavar="N", help="run at most N trials of a batch"
    )
    add_jobs_args(p, detach=True)
    add_optimize_args(p)


def add_jobs_args(p: argparse.ArgumentParser, detach: bool = False) -> None:
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run up to N runs at once (default 1)",
    )
    p.add_argument(
        "--engine",
        metavar="NAME",
        help="where runs start: local (default), dask or slurm (else $GAGE_ENGINE, "
        "else $engine in gage.toml)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --engine dask: the Dask scheduler (default: a local "
        "cluster of --jobs workers)",
    )
    p.add_argument(
        "--scheduler-file",
        metavar="FILE",
        help="with --engine dask: the scheduler's file (dask scheduler "
        "--scheduler-file FILE)",
    )
    add_slurm_args(p, detach)


def add_slurm_args(p: argparse.ArgumentParser, detach: bool = False) -> None:
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --engine slurm: a Slurm setting (partition, time, cpus, "
        "mem, gres, account, qos, args, setup) over $slurm and the op's "
        "(repeatable)",
    )
    p.add_argument(
        "--slurm-partition", metavar="NAME", help="with --engine slurm: the partition"
    )
    p.add_argument(
        "--slurm-time",
        metavar="TIME",
        help="with --engine slurm: the time limit (minutes or [D-]HH:MM:SS)",
    )
    if detach:
        p.add_argument(
            "--detach",
            action="store_true",
            help="with --engine slurm: submit the runs and return (see gage runs)",
        )


def add_optimize_args(p: argparse.ArgumentParser) -> None:
    """Search options of `gage run` (`cli.optimize`)."""
    p.add_argument(
        "--optimize",
        metavar="NAME",
        help="choose each trial's values from the results so far: tpe, gp, "
        "cmaes or random (needs gage-runs[tune])",
    )
    goal = p.add_mutually_exclusive_group()
    goal.add_argument(
        "--minimize",
        metavar="COL",
        help="with --optimize: the objective, a summary metric or a scalar "
        "aggregate (loss, loss.min, acc.last)",
    )
    goal.add_argument(
        "--maximize", metavar="COL", help="with --optimize: the objective to maximize"
    )
    p.add_argument(
        "--prune",
        metavar="RULE",
        help="with --optimize: stop a trial whose objective per step is worse "
        "than RULE allows: median, halving or hyperband (local engine)",
    )
    p.add_argument(
        "--batch",
        dest="batch_id",
        metavar="ID",
        help="with --optimize: continue the search of this batch up to "
        "--max-trials trials in all",
    )


def batch_asked(args, assigns: list[str]) -> bool:
    """Whether the options or `assigns` (a value `[...]`) may ask for a
    batch (`batch.maybe_batch` decides): else `gage run` does without
    importing `cli.batch`."""
    if (
        args.optimize
        or args.batch_files
        or args.random is not None
        or args.max_trials is not None
    ):
        return True
    return any(w.split("=", 1)[1].strip().startswith("[") for w in assigns)
