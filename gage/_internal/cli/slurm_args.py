"""Slurm options of `gage run` and `gage repro` (`--engine slurm`, defined
in `run_args`):
`--slurm KEY=VALUE`, `--slurm-partition`, `--slurm-time`, `--detach`,
and the job script `--preview` shows."""

from __future__ import annotations

from typing import Any


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
