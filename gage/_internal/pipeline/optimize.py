"""Search that learns: trials whose values a sampler chooses from the
results so far (`gage run OP ... --optimize tpe --minimize loss.min`).

The samplers are Optuna's (the `tune` extra, imported only here, when a
search runs): `tpe`, `gp` (Gaussian process), `cmaes` (needs `cmaes`)
and `random`. The space comes from the batch's axes (`pipeline.batch`):
a `Range` is a float (log-scaled when the range is) or an integer
distribution, a list is categorical.

Each trial is an ordinary run of the batch, staged through
`lifecycle.stage_op` and started through an engine with up to `jobs`
in flight: ask `jobs` trials, submit them, tell each as it finishes,
ask again. A trial that fails, or whose run reports no value for the
objective, is told as failed and the search goes on.

The study's state is the batch's runs: `prior_trials(home, batch_id)`
reads their config and objective, and `optimize` tells them to a new
study before asking for more, so a search resumes from its batch id
with nothing else kept. `seed` fixes the sampler's draws.

The objective is a summary metric (`loss`) or a scalar aggregate
(`loss.min`, `acc.last`; `lifecycle.scalars`), the summary first.
"""

from __future__ import annotations

import concurrent.futures
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..home import runs
from ..lifecycle import scalars, stage_op
from ..project import gagefile
from ..store import run_meta
from ..types import GageError, OpDef, Run
from .batch import Axis, Range

__all__ = [
    "SAMPLERS",
    "Spec",
    "Trial",
    "new_study",
    "objective_value",
    "optimize",
    "prior_trials",
]

SAMPLERS = ("tpe", "gp", "cmaes", "random")


@dataclass(frozen=True)
class Spec:
    """What to search: `objective` (a column) minimized unless
    `maximize`, with `sampler` for `max_trials` trials in all (prior
    trials of the batch count), `jobs` at once."""

    sampler: str
    objective: str
    maximize: bool = False
    max_trials: int = 20
    jobs: int = 1
    seed: int | None = None
    needed: bool = False
    quiet: bool = False


@dataclass(frozen=True)
class Trial:
    """A trial's run, its `params` (the searched keys), its objective
    `value` (None: failed) and `result`: `completed`, `failed`, `no
    objective` or `not needed` (an earlier run with the same inputs)."""

    number: int
    run: Run
    params: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    result: str = "completed"


def objective_value(run: Run, col: str) -> float | None:
    """The run's value for `col`: a numeric summary metric, else a scalar
    aggregate (`loss.min`); None when it has neither (or not finite)."""
    try:
        summary = run_meta.read_summary(run)
    except (OSError, ValueError):
        summary = {}
    val = summary.get(col) if isinstance(summary, dict) else None
    if not _number(val):
        val = scalars.aggregates(run).get(col)
    return float(val) if _number(val) and math.isfinite(val) else None


def _number(val: Any) -> bool:
    return isinstance(val, (int, float)) and not isinstance(val, bool)


def prior_trials(home: str, batch_id: str, col: str) -> list[Trial]:
    """The trials a batch has run so far, oldest first, as a search
    resumes them: completed runs with their objective, others failed."""
    found = [r for r in runs.list_runs(home) if run_meta.read_batch(r) == batch_id]
    found.sort(key=lambda r: run_meta.read_timestamp(r, "staged") or 0)
    trials = []
    for i, run in enumerate(found):
        status = runs.run_status(run)
        if status in ("staged", "running", "pending", "queued"):
            continue
        value = objective_value(run, col) if status == "completed" else None
        result = status if value is not None or status != "completed" else "no objective"
        trials.append(Trial(i, run, run_meta.read_config(run), value, result))
    return trials


# ---------------------------------------------------------------------------
# The search


def optimize(
    gf: gagefile.Gagefile,
    home: str,
    opdef: OpDef,
    engine: Any,
    axes: Mapping[str, Axis],
    make_config: Callable[[dict[str, Any]], dict[str, Any]],
    spec: Spec,
    batch_id: str,
    prior: list[Trial] | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Trial]:
    """Run the search; the new trials in the order they finished.
    `make_config(params)` is a trial's whole config. A KeyboardInterrupt
    cancels the trials in flight (they end `terminated`, failed for a
    resumed study) and is raised again."""
    optuna = _optuna()
    study, dists = new_study(spec, axes)
    for t in prior or []:
        _tell_prior(optuna, study, dists, t, spec.objective)
    todo = spec.max_trials - len(prior or [])
    done: list[Trial] = []
    inflight: dict[concurrent.futures.Future[int], tuple[Any, Run]] = {}

    def finish(ot: Any, trial: Trial) -> None:
        state = optuna.trial.TrialState
        if trial.value is None:
            study.tell(ot, state=state.FAIL)
        else:
            study.tell(ot, trial.value)
        done.append(trial)
        if on_trial:
            on_trial(trial)

    try:
        while todo > 0 or inflight:
            while todo > 0 and len(inflight) < spec.jobs:
                todo -= 1
                ot = study.ask(dists)
                config = make_config(dict(ot.params))
                found = stage_op.lookup(gf, home, opdef, config) if spec.needed else None
                one = stage_op.stage_op(
                    gf, home, opdef, config, found, batch=batch_id, warn=warn
                )
                if not one.needed:
                    value = objective_value(one.run, spec.objective)
                    res = "not needed" if value is not None else "no objective"
                    finish(ot, Trial(ot.number, one.run, ot.params, value, res))
                    continue
                inflight[engine.submit(one.run, quiet=spec.quiet)] = (ot, one.run)
            ready, _ = concurrent.futures.wait(
                inflight, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for fut in ready:
                ot, run = inflight.pop(fut)
                finish(ot, _result(ot, run, fut.result(), spec.objective))
    except KeyboardInterrupt:
        engine.cancel()
        raise
    return done


def _result(ot: Any, run: Run, code: int, col: str) -> Trial:
    if code != 0:
        return Trial(ot.number, run, ot.params, None, runs.run_status(run))
    value = objective_value(run, col)
    res = "completed" if value is not None else "no objective"
    return Trial(ot.number, run, ot.params, value, res)


def _tell_prior(optuna: Any, study: Any, dists: dict, t: Trial, col: str) -> None:
    params = {k: t.params.get(k) for k in dists}
    if not all(_contains(d, params[k]) for k, d in dists.items()):
        return  # a run of the batch outside this space: not this study's
    state = optuna.trial.TrialState
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions=dists,
            value=t.value,
            state=state.COMPLETE if t.value is not None else state.FAIL,
        )
    )


def _contains(dist: Any, val: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(val)))
    except (ValueError, TypeError):
        return False


# ---------------------------------------------------------------------------
# Optuna


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise GageError(
            "--optimize needs Optuna: pip install 'gage[tune]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def new_study(spec: Spec, axes: Mapping[str, Axis]) -> tuple[Any, dict[str, Any]]:
    """An Optuna study (in memory) for `spec` and the distributions of
    `axes` to ask it with."""
    optuna = _optuna()
    dists = _distributions(optuna, axes)
    study = optuna.create_study(
        direction="maximize" if spec.maximize else "minimize",
        sampler=_sampler(optuna, spec.sampler, spec.seed),
    )
    return study, dists


def _sampler(optuna: Any, name: str, seed: int | None) -> Any:
    s = optuna.samplers
    if name == "tpe":
        return s.TPESampler(seed=seed, n_startup_trials=5)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "cmaes":
        _needs("cmaes", "cmaes")
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return _gp_sampler(optuna, seed)
    raise GageError(
        f"unknown sampler '{name}' for --optimize (known: {', '.join(SAMPLERS)})"
    )


def _gp_sampler(optuna: Any, seed: int | None) -> Any:
    gp = getattr(optuna.samplers, "GPSampler", None)
    if gp is None:
        raise GageError(
            "--optimize gp needs Optuna 3.6 or later: pip install -U 'gage[tune]'"
        )
    _needs("torch", "torch (Optuna's GP sampler is written with it)")
    return gp(seed=seed)


def _needs(module: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise GageError(f"this sampler needs {what}: pip install {module}")


def _distributions(optuna: Any, axes: Mapping[str, Axis]) -> dict[str, Any]:
    d = optuna.distributions
    out: dict[str, Any] = {}
    for name, axis in axes.items():
        if isinstance(axis, Range):
            if axis.integer:
                out[name] = d.IntDistribution(
                    int(axis.low), int(axis.high), log=axis.log
                )
            else:
                out[name] = d.FloatDistribution(axis.low, axis.high, log=axis.log)
            continue
        bad = [v for v in axis if v is not None and not isinstance(v, (bool, int, float, str))]
        if bad:
            raise GageError(
                f"'{name}': --optimize takes lists of numbers, text or booleans, "
                f"got {bad[0]!r}",
                key=name,
            )
        out[name] = d.CategoricalDistribution(list(dict.fromkeys(axis)))
    if not out:
        raise GageError(
            "--optimize needs a range or list to search "
            "(e.g. lr=[1e-5:1e-1:log] layers=[1:8] act=[relu,tanh])"
        )
    return out
