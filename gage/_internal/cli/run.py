"""`gage run`: stage and start a run, start staged runs, preview.

The parser lives in `cli`; this module is imported only when a run verb
is called, and imports the library inside its functions.
"""

from __future__ import annotations

import sys

from . import common
from .common import (
    count,
    error,
    fmt_val,
    print_dep,
    project,
    select_run,
    usage,
    warn,
)

# ---------------------------------------------------------------------------
# gage run


def _cmd_run(args) -> int:
    if args.start == "":
        raise usage("--start needs a run: give a run id or name (see 'gage runs')")
    if args.no_verify and not args.start:
        raise usage("--no-verify applies to --start RUN: a new run is verified")
    if args.start:
        return _cmd_start(args)
    from ..project import gagefile

    words = ([args.op] if args.op else []) + args.assigns
    gf, home = project(args)
    op_name, assigns = _split_words(words)
    if args.proto:
        from . import run_proto

        op_name, assigns = run_proto.proto_words(args, words)
    opdef = gf.get_opdef(op_name)
    pins = _pins(args, home, opdef)
    from ..types import ConfigError
    from . import run_args

    try:
        if run_args.batch_asked(args, assigns):
            from . import batch as cli_batch

            code = cli_batch.maybe_batch(args, gf, home, opdef, assigns, pins)
            if code is not None:
                return code
        config = _resolve_config(gf, opdef, assigns)
    except ConfigError as e:
        raise _clash(e, opdef, assigns) from None
    if args.preview:
        cmd = gagefile.op_cmd(opdef)
        return _preview(gf, opdef, cmd, config, assigns, home, pins, args)
    return _run_one(args, gf, home, opdef, config, pins)


def _cmd_start(args) -> int:
    more = ([args.op] if args.op else []) + args.assigns
    config = any("=" in w for w in more)
    if config or args.batch_files or args.random or args.max_trials:
        raise usage("--start takes staged runs only: config was set when staged")
    if args.upstream or args.proto:
        raise usage(
            "--start takes staged runs only: upstream runs were set when staged"
        )
    return _start_runs(args, [args.start] + more)


def _run_one(args, gf, home: str, opdef, config: dict, pins: dict) -> int:
    """Stage a run (unless --needed finds one) and start it."""
    from ..lifecycle import stage_op
    from ..project import gagefile

    # Before anything is staged (staging checks it again): upstream runs
    # that disagree, config files the source rules leave out.
    resolved = stage_op.check_op(gf, home, opdef, config, pins, stats=args.needed)
    found = None
    accept = common.needed_filter(args, gf, home, opdef, gagefile.op_cmd(opdef))
    if args.needed:
        # Decided before anything is staged (see op_inputs).
        found = stage_op.lookup(
            gf, home, opdef, config, pins, accept=accept, resolved=resolved
        )
        if found.match:
            return _not_needed(args, found.match)
        if found.key and args.remote:
            pulled = _pulled_needed(args, gf, home, found.key)
            if pulled is not None:
                return pulled
    fetch_absent(args, gf, home, opdef, pins, resolved)
    if not args.yes and not _confirm(opdef, config, args):
        return error("cancelled: nothing staged", 1)
    # Connected before anything is staged: a cluster that cannot be
    # reached stages nothing.
    engine = None if args.stage else _engine(args, gf)
    try:
        staged = stage_op.stage_op(
            gf,
            home,
            opdef,
            config,
            found,
            upstream=pins,
            warn=warn,
            progress=not args.quiet,
            checked=True,
        )
    except BaseException:
        if engine is not None:
            engine.close()
        raise
    run = staged.run
    if not staged.needed:
        if engine is not None:
            engine.close()
        return _not_needed(args, run)
    if args.stage:
        print(f"Staged run {run.name} ({opdef.name})")
        print(run.run_dir)
        return _print_json(args, run, 0)
    if engine is not None:
        return _run_on(engine, args, [run])
    return _start(args, run)


def _engine(args, gf):
    """The engine the run(s) start on, or None for this process (the
    local engine with one job)."""
    from ..engines import engine
    from .slurm_args import engine_settings

    name, options = engine_settings(args, gf)
    if name == "local" and args.jobs == 1:
        return None
    return engine.get_engine(name, args.jobs, **options)


def _start_runs(args, specs: list[str]) -> int:
    """`gage run --start RUN...`: here one at a time, or on an engine."""
    from ..project import gagefile

    runs = [select_run(args, spec) for spec in specs]
    gf = None
    if args.engine != "local":  # the engine may come from gage.toml
        path = gagefile.find_gagefile()
        gf = gagefile.read_gagefile(path) if path else None
    engine = _engine(args, gf)
    if engine is None:
        code = 0
        for run in runs:
            code = _start(args, run) or code
        return code
    if args.no_verify:
        engine.close()
        raise usage("--no-verify starts a run here only: not with --engine/--jobs")
    return _run_on(engine, args, runs)


def _run_on(engine, args, runs: list) -> int:
    """Submit runs to an engine; the first failure's exit code, else 0.
    Ctrl-C cancels the runs in flight (they end `terminated`)."""
    try:
        futures = [engine.submit(run, quiet=args.quiet) for run in runs]
        codes = [f.result() for f in futures]
    except KeyboardInterrupt:
        engine.cancel()
        engine.close()
        return error("interrupted: runs in flight were terminated", 130)
    engine.close()
    if getattr(args, "detach", False):  # submitted: no result yet
        return next((c for c in codes if c), 0)
    first = 0
    for run, code in zip(runs, codes):
        result = _run_result(args, run, code)
        first = first or result
    return first


def _run_result(args, run, code: int) -> int:
    """Exit code for a run an engine ran, with a line when it failed."""
    from ..lifecycle import run_start

    if _status(run) == "staged":
        return 1  # refused or not started: the engine said why
    result, msg = run_start.run_exit(run)
    if msg:
        print(f"gage: {msg}", file=sys.stderr)
    return _print_json(args, run, result)


def _not_needed(args, match) -> int:
    print(
        f"Run not needed: {match.name} ({match.id}) completed with the "
        "same config and inputs"
    )
    return _print_json(args, match, 0)


def _pins(args, home: str, opdef) -> dict:
    """`--upstream OP=RUN` options as {op: run}."""
    if not args.upstream:
        return {}
    from ..lifecycle import run_lineage

    return run_lineage.pin_runs(home, opdef, args.upstream)


def _clash(e, opdef, assigns: list[str]):
    """A config error for `OP=RUN` given as a config value: say how to
    pin an upstream run."""
    from ..lifecycle import run_lineage
    from ..types import ConfigError

    if e.key not in run_lineage.selected_ops(opdef):
        return e
    word = next((w for w in assigns if w.split("=", 1)[0] == e.key), e.key)
    return ConfigError(
        f"'{word}': '{e.key}' is an upstream op of '{opdef.name}', not one of "
        f"its config keys: pin its run with --upstream {word}",
        key=e.key,
    )


def _pulled_needed(args, gf, home: str, key: str) -> int | None:
    """A run found on the remote is pulled (the exit code); else None:
    the run goes ahead."""
    from ..remote import api

    match = api.pull_needed(home, key, args.remote, gf)
    if match is None:
        return None
    print(
        f"Run not needed: pulled {match.name} ({match.id}) from remote "
        f"'{args.remote}': it completed with the same config and inputs"
    )
    return _print_json(args, match, 0)


def fetch_absent(args, gf, home: str, opdef, pins: dict, resolved=None) -> None:
    """Pinned dependency files missing from the project come from the
    remote (--remote, else "$remote") into the object cache, once for a
    run or a batch; with no remote, the line says what is missing and
    how to fetch it. `resolved`: as `stage_op.check_op` gave them."""
    from ..lifecycle import dep_pins, stage_op
    from ..remote.config import default_remote, resolve_remote

    if args.remote:
        resolve_remote(args.remote, gf)  # a name that is not a remote: say so
    absent = stage_op.absent_files(gf, home, opdef, pins, resolved)
    if not absent:
        return
    remote = args.remote or default_remote(gf)
    if not remote:
        raise dep_pins.absent_error(absent[0])
    from ..remote import api

    out = sys.stderr if args.json else sys.stdout
    api.fetch_files(home, absent, remote, gf, say=lambda line: print(line, file=out))


def _split_words(words: list[str]) -> tuple[str | None, list[str]]:
    if words and "=" not in words[0]:
        op, rest = words[0], words[1:]
    else:
        op, rest = None, words
    for w in rest:
        if "=" not in w:
            raise usage(f"'{w}' is not NAME=VALUE (the op name goes first)")
    return op, rest


def _resolve_config(gf, opdef, assigns: list[str]) -> dict:
    from ..lifecycle import op_inputs
    from ..project import gagefile
    from ..types import ConfigError

    try:
        return op_inputs.op_config(gf.project_dir, opdef, assigns)
    except ConfigError as e:
        if e.key != "config":
            raise
        # The op's `config` names what cannot be read: say where.
        where = gagefile.key_location(gf, opdef.name, "config")
        raise ConfigError(
            f"{where}: op '{opdef.name}': {e}", op=opdef.name, key="config"
        ) from None


def _confirm(opdef, config: dict, args) -> bool:
    if not sys.stdin.isatty():
        return True
    print(f"You are about to run {opdef.name}")
    for key, val in sorted(config.items()):
        print(f"  {key}: {fmt_val(val)}")
    try:
        answer = input("Continue? (Y/n) ")
    except EOFError:
        return False
    return answer.strip().lower() in ("", "y", "yes")


def _start(args, run) -> int:
    from ..engines import child
    from ..lifecycle import run_start

    run_start.start_run(
        run,
        quiet=args.quiet,
        verify=not args.no_verify,
        on_start=None if args.quiet else lambda: child.print_starting(run),
        warn=warn,
    )
    code, msg = run_start.run_exit(run)
    if msg:
        print(f"gage: {msg}", file=sys.stderr)
    return _print_json(args, run, code)


def _print_json(args, run, code: int) -> int:
    if getattr(args, "json", False):
        import json

        from ..home import runs

        print(json.dumps(runs.run_record(run), indent=2, sort_keys=True))
    return code


def _status(run) -> str:
    from ..home import runs

    return runs.run_status(run)


# ---------------------------------------------------------------------------
# gage run --preview


def _preview(
    gf, opdef, cmd, config: dict, assigns: list[str], home: str, pins: dict, args
) -> int:
    import shlex

    from .. import run_util
    from . import slurm_args

    print(f"Op: {opdef.name} (project {gf.project_dir})")
    print(f"Command: {shlex.join(cmd.args)}")
    for k, v in sorted(cmd.env.items()):
        print(f"  env {k}={v}")
    _preview_config(gf, opdef, config, assigns)
    sc = run_util.preview_sourcecode(gf.project_dir, opdef, home)
    print(f"Source code ({count(len(sc.files), 'file')}):")
    for path in sc.files:
        print(f"  {path}")
    limited = [s for s in sc.skipped if s.reason == "limit"]
    if limited:
        print("Skipped by limits:")
        for s in limited:
            print(f"  {s.path}: {s.detail} of rule '{s.rule}'")
    problem = _preview_deps(gf, opdef, home, pins)
    slurm_args.preview(args, gf, opdef, home)
    print(f"Runs dir: {home}")
    print("Nothing staged (preview).")
    if problem:
        return error(problem, 2)
    return 0


def _preview_config(gf, opdef, config: dict, assigns: list[str]) -> None:
    if not config:
        return
    from ..config import run_config

    defaults = run_config.read_project_config(gf.project_dir, opdef)
    overridden = {a.split("=", 1)[0] for a in assigns}
    print("Config:")
    for key, val in sorted(config.items()):
        line = f"  {key}: {fmt_val(val)}"
        if key in overridden:
            line += f" (default {fmt_val(defaults[key].value)})"
        if defaults[key].also:
            # A key several files define is written to each of them.
            line += f" in {', '.join(defaults[key].files)}"
        print(line)


def _preview_deps(gf, opdef, home: str, pins: dict) -> str | None:
    """Print each dependency and the upstream run it uses and why; the
    reason it cannot be resolved, if so (the preview then exits 1)."""
    if not opdef.get_dependencies():
        return None
    from ..lifecycle import run_deps
    from ..types import DependencyError

    print("Dependencies:")
    try:
        deps = run_deps.preview_dependencies(home, gf.project_dir, opdef, pins)
    except DependencyError as e:
        print(f"  cannot resolve: {e}")
        return f"cannot stage: {e}"
    for dep in deps:
        print_dep(dep.spec, dep.source, [f.path for f in dep.files], dep.why)
    return None
