"""Slurm options of `gage run` and `gage repro` (`--engine slurm`):
`--slurm KEY=VALUE`, `--slurm-partition`, `--slurm-time`, `--detach`,
and the job script `--preview` shows."""

from __future__ import annotations

import argparse
from typing import Any


def add_args(p: argparse.ArgumentParser, detach: bool = False) -> None:
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


def overrides(args) -> dict[str, Any] | None:
    """The command line's Slurm settings (checked), or None."""
    from ..project import slurm_settings
    from ..types import GageError

    words = list(getattr(args, "slurm", None) or [])
    if getattr(args, "slurm_partition", None):
        words.append(f"partition={args.slurm_partition}")
    if getattr(args, "slurm_time", None):
        words.append(f"time={args.slurm_time}")
    if not words:
        return None
    try:
        return slurm_settings.from_assigns(words)
    except GageError as e:
        raise GageError(str(e), key="--slurm") from None


def engine_settings(args, gf) -> tuple[str, dict[str, Any]]:
    """engine.engine_settings for a command's args."""
    from ..engines import engine

    return engine.engine_settings(
        args.engine,
        args.scheduler,
        args.scheduler_file,
        gf,
        slurm=overrides(args),
        detach=getattr(args, "detach", False),
    )


def preview(args, gf, opdef, home: str) -> None:
    """With the slurm engine: the sbatch command and job script a run of
    `opdef` would be submitted with (its id and name are not made yet)."""
    import os
    import shlex

    name, options = engine_settings(args, gf)
    if name != "slurm":
        return
    from ..engines import engine_slurm
    from ..project import slurm_settings
    from ..types import Run

    run = Run("RUN_ID", os.path.join(home, "RUN_ID"), "RUN_NAME")
    settings = slurm_settings.merge(
        options["project"], opdef.data.get("slurm"), options["cli"]
    )
    cmd = ["sbatch", "--parsable"] + engine_slurm.sbatch_args(run, settings)
    print(f"Slurm job: {shlex.join(cmd)} <<SCRIPT")
    for line in engine_slurm.job_script(run, settings).splitlines():
        print(f"  {line}")
    print("SCRIPT")
