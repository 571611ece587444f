"""Batch runs for `gage run` (see batch.py for the syntax)."""

from __future__ import annotations

import sys
from typing import Any

from . import common, run_args


def maybe_batch(
    args, gf, home: str, opdef, assigns: list[str], pins: dict | None = None
) -> int | None:
    """Run the batch that `assigns` and the batch options ask for; None
    when they ask for a single run."""
    if not run_args.batch_asked(args, assigns):
        return None
    from ..config import run_config
    from ..lifecycle import op_inputs
    from ..pipeline import batch

    defaults = run_config.read_project_config(gf.project_dir, opdef)
    fixed: list[str] = []
    axes: dict[str, Any] = {}
    for word in assigns:
        name, text = word.split("=", 1)
        cv = defaults.get(name)
        if cv is not None and batch.is_batch_value(text, cv.value):
            axes[name] = batch.parse_axis(name, text, cv.value)
        else:
            fixed.append(word)
    if not axes and not (args.batch_files or args.random or args.max_trials):
        return None
    base = op_inputs.op_config(gf.project_dir, opdef, fixed)
    if not args.preview:
        from .run import fetch_absent

        # Once for every trial (dependencies do not depend on config).
        fetch_absent(args, gf, home, opdef, pins or {})
    if args.optimize:
        from . import optimize

        return optimize.run(args, gf, home, opdef, axes, base, defaults)
    fixed_names = {w.split("=", 1)[0] for w in fixed}
    file_trials = [
        {k: v for k, v in t.items() if k not in fixed_names}
        for path in args.batch_files
        for t in batch.read_batch_file(path)
    ]
    trials = batch.make_trials(
        axes, file_trials, args.random, args.seed, args.max_trials
    )
    configs = [_config(base, t, defaults, opdef) for t in trials]
    # The keys a user set, in the order given: what tells trials apart.
    names = list(dict.fromkeys([k for t in trials for k in t] + sorted(fixed_names)))
    if args.preview:
        from . import slurm_args

        slurm_args.preview(args, gf, opdef, home)  # the job of each trial
        return _preview(opdef, names, configs, bool(args.random))
    return _run(args, gf, home, opdef, configs, names, pins or {})


def _config(base: dict, trial: dict, defaults: dict, opdef) -> dict:
    from ..config import run_config
    from ..types import ConfigError

    config = dict(base)
    for name, val in trial.items():
        cv = defaults.get(name)
        if cv is None:
            known = ", ".join(sorted(defaults)) or "none"
            raise ConfigError(
                f"Unknown config key '{name}' in a trial for op '{opdef.name}': "
                f"valid keys are {known}",
                key=name,
            )
        config[name] = run_config.coerce(val, cv.value, name, cv.file)
    return config


# ---------------------------------------------------------------------------
# Preview


def _preview(opdef, names: list[str], configs: list[dict], drawn: bool) -> int:

    print(f"Batch of {common.count(len(configs), 'trial')} of {opdef.name}:")
    rows = [
        [str(i)] + [_fmt(config.get(n), drawn) for n in names]
        for i, config in enumerate(configs, 1)
    ]
    from . import table as cli_table

    cli_table.print_table(["#"] + names, rows, indent="  ")
    print("Nothing staged (preview).")
    return 0


# ---------------------------------------------------------------------------
# Run


def config_for(base: dict, trial: dict, defaults: dict, opdef) -> dict:
    """A trial's whole config: `base` with the trial's values, typed."""
    return _config(base, trial, defaults, opdef)


def _fmt(val, drawn: bool) -> str:
    """A value as the batch tables print it: a float drawn by --random
    to 4 significant digits (the run keeps the full value)."""

    if drawn and isinstance(val, float):
        return f"{val:.4g}"
    return common.fmt_val(val)


def _run(
    args, gf, home: str, opdef, configs: list[dict], names: list[str], pins: dict
) -> int:
    from . import repro as cli_repro

    n = len(configs)
    if not args.yes and not _confirm(opdef, n):
        return common.error("cancelled: nothing staged", 1)
    # Connected before anything is staged: a cluster that cannot be
    # reached stages nothing.
    engine = None if args.stage else cli_repro.make_engine(args, gf)
    try:
        return _stage_and_run(args, gf, home, opdef, configs, names, engine, pins)
    finally:
        if engine is not None:
            engine.close()


def _stage_and_run(
    args, gf, home: str, opdef, configs: list[dict], names: list[str], engine, pins
) -> int:
    from ..lifecycle import stage_op

    n = len(configs)
    batch_id = _batch_id()
    print(f"Batch {batch_id}: {common.count(n, 'trial')} of {opdef.name}")
    rows: list[list[str]] = []
    staged = []
    known: dict = {}
    from ..project import gagefile

    accept = common.needed_filter(args, gf, home, opdef, gagefile.op_cmd(opdef))
    for i, config in enumerate(configs, 1):
        found = (
            stage_op.lookup(gf, home, opdef, config, pins, accept=accept)
            if args.needed
            else None
        )
        one = stage_op.stage_op(
            gf,
            home,
            opdef,
            config,
            found,
            upstream=pins,
            batch=batch_id,
            warn=common.warn,
        )
        if not one.needed:
            _not_needed(i, one.run, _summ(config, names, bool(args.random)), rows)
            known[one.run.name] = one.run
            continue
        staged.append((i, one.run, config))
        known[one.run.name] = one.run
    if args.stage:
        for i, run, _config in staged:
            print(f"Staged run {run.name} ({opdef.name}) trial {i}")
        return 0
    codes = _start_all(args, engine, staged, rows, names)
    rows.sort(key=lambda r: int(r[0]))
    print()
    head, body = _with_metrics(known, rows)
    from . import table as cli_table

    cli_table.print_table(head, body)
    if codes is None:
        return _interrupted(batch_id, [run for _i, run, _c in staged])
    failed = [c for c in codes if c != 0]
    return (failed[0] if 0 < failed[0] < 256 else 1) if failed else 0


def _with_metrics(
    known: dict, rows: list[list[str]]
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The result table: trial, run, result, config, then each trial's
    summary metrics (a column per key any trial reported)."""
    from ..store import run_meta
    from ..types import MetaError

    summaries = []
    for r in rows:
        try:
            summ = run_meta.read_summary(known[r[1]])
        except (OSError, MetaError):
            summ = {}
        summaries.append({k: v for k, v in summ.items() if not isinstance(v, dict)})
    keys = sorted({k for s in summaries for k in s})
    head = ("trial", "run", "result", "config", *keys)
    body = [
        tuple(r) + tuple(_metric(s.get(k), common) for k in keys)
        for r, s in zip(rows, summaries)
    ]
    return head, body


def _metric(val, common) -> str:
    if val is None:
        return "-"
    return f"{val:.4g}" if isinstance(val, float) else common.fmt_val(val)


def _interrupted(batch_id: str, trials: list) -> int:
    """Exit 130 with how to go on: start the trials still staged, or
    remove what the batch left."""
    from ..home import runs

    left = [r for r in trials if runs.run_status(r) == "staged"]
    ended = [r for r in trials if runs.run_status(r) == "terminated"]
    common.error("interrupted: runs in flight were terminated", 130)
    if left:
        names = " ".join(r.name for r in left)
        n = common.count(len(left), "staged trial")
        common.error(f"to go on, start the {n}: gage run --start {names}", 130)
    if left or ended:
        names = " ".join(r.name for r in ended + left)
        common.error(f"or remove what batch {batch_id} left: gage runs rm {names}", 130)
    return 130


def _not_needed(i: int, match, summ: str, rows: list) -> None:
    print(f"Trial {i} not needed: {match.name} completed with the same inputs")
    rows.append([str(i), match.name, "not needed", summ])


def _start_all(
    args, engine, staged: list, rows: list[list[str]], names: list[str]
) -> list[int] | None:
    """Start the staged trials through the engine; exit codes, or None
    when interrupted."""
    from ..home import runs

    futures = [
        (i, run, config, engine.submit(run, quiet=args.quiet))
        for i, run, config in staged
    ]
    try:
        codes = [fut.result() for _i, _run, _config, fut in futures]
    except KeyboardInterrupt:
        engine.cancel()
        for i, run, config, _fut in futures:
            summ = _summ(config, names, bool(args.random))
            rows.append([str(i), run.name, runs.run_status(run), summ])
        return None
    for (i, run, config, _fut), code in zip(futures, codes):
        status = runs.run_status(run)
        result = status if code == 0 else f"{status} ({code})"
        summ = _summ(config, names, bool(args.random))
        rows.append([str(i), run.name, result, summ])
    return codes


def _summ(config: dict, names: list[str], drawn: bool = False) -> str:
    return " ".join(f"{n}={_fmt(config.get(n), drawn)}" for n in names)


def _confirm(opdef, n: int) -> bool:
    if not sys.stdin.isatty():
        return True
    try:
        answer = input(
            f"You are about to run {n} trials of {opdef.name}\nContinue? (Y/n) "
        )
    except EOFError:
        return False
    return answer.strip().lower() in ("", "y", "yes")


def _batch_id() -> str:
    import secrets

    return secrets.token_hex(4)
