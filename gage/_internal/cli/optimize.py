"""`gage run OP ... --optimize NAME --minimize COL`: a batch whose trials
a sampler chooses (see pipeline/optimize.py)."""

from __future__ import annotations

import argparse
from typing import Any

from . import common


def add_args(p: argparse.ArgumentParser) -> None:
    """Search options of `gage run`."""
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


def run(args, gf, home: str, opdef, axes: dict, base: dict, defaults: dict) -> int:
    from ..pipeline import optimize
    from . import batch as cli_batch
    from . import repro as cli_repro

    spec = _spec(args)
    batch_id, prior = _prior(args, home, spec.objective)
    print(
        f"Batch {batch_id}: search of {common.count(spec.max_trials, 'trial')} of "
        f"{opdef.name} ({spec.sampler}, "
        f"{'maximize' if spec.maximize else 'minimize'} {spec.objective})"
    )
    if prior:
        print(f"Resuming from {common.count(len(prior), 'trial')} of the batch")
    rows: list[list[str]] = []
    best: list[Any] = []
    on_trial = _reporter(spec, list(axes), rows, best)
    engine = cli_repro.make_engine(args, gf)
    try:
        optimize.optimize(
            gf,
            home,
            opdef,
            engine,
            axes,
            lambda params: cli_batch.config_for(base, params, defaults, opdef),
            spec,
            batch_id,
            prior,
            on_trial,
            common.warn,
        )
    except KeyboardInterrupt:
        return common.error(
            f"interrupted: trials in flight were terminated; resume with "
            f"--batch {batch_id}",
            130,
        )
    finally:
        engine.close()
    print()
    rows.sort(key=lambda r: int(r[0]))
    from . import table as cli_table

    cli_table.print_table(("trial", "run", "result", spec.objective, "params"), rows)
    if not best:
        return common.error(
            f"no trial of batch {batch_id} reported {spec.objective}", 1
        )
    b = best[0]
    print(f"Best: trial {b.number + 1} {b.run.name} {spec.objective}={b.value:g}")
    return 0


def _reporter(spec, names: list[str], rows: list, best: list):
    """A callback that prints each trial as it ends, adds its row and
    keeps the best completed trial in `best`."""

    def on_trial(t) -> None:
        if t.result == "pruned" or t.value is None:
            pass
        elif not best or _better(spec, t.value, best[0].value):
            best[:] = [t]
        val = "-" if t.value is None else common.fmt_val(t.value)
        params = " ".join(f"{n}={common.fmt_val(t.params.get(n))}" for n in names)
        print(f"Trial {t.number + 1} {t.run.name} {t.result}: {spec.objective}={val}")
        rows.append([str(t.number + 1), t.run.name, t.result, val, params])

    return on_trial


def _better(spec, a: float, b: float) -> bool:
    return a > b if spec.maximize else a < b


def _spec(args):
    from ..pipeline import optimize
    from ..types import GageError

    if args.optimize not in optimize.SAMPLERS:
        raise GageError(
            f"unknown sampler '{args.optimize}' for --optimize "
            f"(known: {', '.join(optimize.SAMPLERS)})"
        )
    col = args.minimize or args.maximize
    if not col:
        raise GageError("--optimize needs --minimize COL or --maximize COL")
    for opt, val in (
        ("--random", args.random),
        ("--batch-file", args.batch_files),
        ("--stage", args.stage),
        ("--preview", args.preview),
    ):
        if val:
            raise GageError(f"{opt} does not apply to --optimize")
    trials = 20 if args.max_trials is None else args.max_trials
    if trials < 1:
        raise GageError(f"--max-trials must be 1 or more, got {trials}")
    return optimize.Spec(
        args.optimize,
        col,
        maximize=bool(args.maximize),
        max_trials=trials,
        jobs=args.jobs,
        seed=args.seed,
        needed=args.needed,
        quiet=args.quiet,
        prune=_prune(args.prune),
    )


def _prune(name: str | None) -> str | None:
    from ..pipeline import optimize
    from ..types import GageError

    if name is not None and name not in optimize.PRUNERS:
        raise GageError(
            f"unknown rule '{name}' for --prune (known: {', '.join(optimize.PRUNERS)})"
        )
    return name


def _prior(args, home: str, col: str) -> tuple[str, list]:
    from ..pipeline import optimize
    from ..types import GageError

    if not args.batch_id:
        import secrets

        return secrets.token_hex(4), []
    prior = optimize.prior_trials(home, args.batch_id, col)
    if not prior:
        raise GageError(
            f"no finished runs of batch '{args.batch_id}' in {home}: give the "
            "full batch id that `gage runs` shows"
        )
    return args.batch_id, prior
