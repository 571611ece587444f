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
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..engines.engine import LocalEngine
from ..home import runs
from ..lifecycle import scalars, stage_op
from ..project import gagefile
from ..store import run_meta, run_records
from ..types import GageError, OpDef, Run
from ..util import run_exec
from .batch import Axis, Range

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Spec",
    "Trial",
    "new_study",
    "objective_value",
    "optimize",
    "prior_trials",
    "scalar_key",
]

SAMPLERS = ("tpe", "gp", "cmaes", "random")
PRUNERS = ("median", "halving", "hyperband")


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
    prune: str | None = None


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
    if isinstance(val, (int, float)) and not isinstance(val, bool):
        return float(val) if math.isfinite(val) else None
    return None


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
        result = (
            status if value is not None or status != "completed" else "no objective"
        )
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
    if spec.prune and not isinstance(engine, LocalEngine):
        raise GageError("--prune needs the local engine (it signals a run's process)")
    optuna = _optuna()
    study, dists = new_study(spec, axes)
    for t in prior or []:
        _tell_prior(optuna, study, dists, t, spec.objective)
    s = _Search(optuna, study, spec, on_trial)
    todo = spec.max_trials - len(prior or [])
    try:
        while todo > 0 or s.inflight:
            while todo > 0 and len(s.inflight) < spec.jobs:
                todo -= 1
                ot = study.ask(dists)
                config = make_config(dict(ot.params))
                found = (
                    stage_op.lookup(gf, home, opdef, config) if spec.needed else None
                )
                one = stage_op.stage_op(
                    gf, home, opdef, config, found, batch=batch_id, warn=warn
                )
                if not one.needed:
                    value = objective_value(one.run, spec.objective)
                    res = "not needed" if value is not None else "no objective"
                    s.finish(ot, Trial(ot.number, one.run, ot.params, value, res))
                    continue
                fut = engine.submit(one.run, quiet=spec.quiet)
                s.inflight[fut] = _Flight(ot, one.run)
            s.wait()
    except KeyboardInterrupt:
        engine.cancel()
        raise
    return s.done


POLL = 0.25
"""Seconds between reads of the scalars of trials in flight (--prune)."""


class _Flight:
    """A trial in flight: its Optuna trial, its run, where its points
    file was read to, and whether the search pruned it."""

    def __init__(self, ot: Any, run: Run) -> None:
        self.ot = ot
        self.run = run
        self.offset = 0
        self.key_n: int | None = None
        self.step = -1
        self.pruned = False


class _Search:
    def __init__(self, optuna: Any, study: Any, spec: Spec, on_trial: Any) -> None:
        self.optuna = optuna
        self.study = study
        self.spec = spec
        self.on_trial = on_trial
        self.key = scalar_key(spec.objective)
        self.inflight: dict[concurrent.futures.Future[int], _Flight] = {}
        self.done: list[Trial] = []

    def wait(self) -> None:
        ready, _ = concurrent.futures.wait(
            self.inflight,
            timeout=POLL if self.spec.prune else None,
            return_when=concurrent.futures.FIRST_COMPLETED,
        )
        for fut in ready:
            f = self.inflight.pop(fut)
            if f.pruned:
                value = objective_value(f.run, self.spec.objective)
                self.finish(
                    f.ot, Trial(f.ot.number, f.run, f.ot.params, value, "pruned")
                )
            else:
                self.finish(
                    f.ot, _result(f.ot, f.run, fut.result(), self.spec.objective)
                )
        if self.spec.prune:
            for f in self.inflight.values():
                self._check(f)

    def finish(self, ot: Any, trial: Trial) -> None:
        state = self.optuna.trial.TrialState
        if trial.result == "pruned":
            self.study.tell(ot, state=state.PRUNED)
        elif trial.value is None:
            self.study.tell(ot, state=state.FAIL)
        else:
            self.study.tell(ot, trial.value)
        self.done.append(trial)
        if self.on_trial:
            self.on_trial(trial)

    def _check(self, f: _Flight) -> None:
        """Report the trial's new points of the objective's key; stop its
        run when the pruner says so (`pruned` written first)."""
        if f.pruned:
            return
        if f.key_n is None:
            keys = run_records.read_scalar_keys(f.run)
            if self.key not in keys:
                return
            f.key_n = keys.index(self.key)
        points, f.offset = run_records.read_scalar_points(f.run, f.offset)
        new = [(step, val) for n, step, val in points if n == f.key_n]
        for step, val in new:
            if step > f.step:  # Optuna takes one value a step
                f.ot.report(val, step)
                f.step = step
        if not new or not f.ot.should_prune():
            return
        lock = run_records.read_proc_lock(f.run)
        if lock is None:
            return  # not started yet, or already stopped
        f.pruned = True
        run_records.write_pruned(f.run, f"{self.spec.prune} at step {new[-1][0]}")
        run_exec.killpg(lock.pid, signal.SIGTERM)  # the runner leads its group


def scalar_key(col: str) -> str:
    """The scalar key of an objective column: `loss` for `loss.min`."""
    key, _, agg = col.rpartition(".")
    return key if key and agg in scalars.AGG_NAMES else col


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
        raise GageError("--optimize needs Optuna: pip install 'gage-runs[tune]'") from None
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
        pruner=_pruner(optuna, spec.prune),
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


def _pruner(optuna: Any, name: str | None) -> Any:
    p = optuna.pruners
    if name is None:
        return p.NopPruner()
    if name == "median":
        return p.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "halving":
        return p.SuccessiveHalvingPruner()
    if name == "hyperband":
        return p.HyperbandPruner()
    raise GageError(f"unknown rule '{name}' for --prune (known: {', '.join(PRUNERS)})")


def _gp_sampler(optuna: Any, seed: int | None) -> Any:
    gp = getattr(optuna.samplers, "GPSampler", None)
    if gp is None:
        raise GageError(
            "--optimize gp needs Optuna 3.6 or later: pip install -U 'gage-runs[tune]'"
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
        bad = [
            v
            for v in axis
            if v is not None and not isinstance(v, (bool, int, float, str))
        ]
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
