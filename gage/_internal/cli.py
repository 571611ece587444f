"""The `gage` command: a thin argparse layer over the library.

Each verb parses its arguments, calls the library and formats the result.
Library modules are imported inside the verbs, so `gage --help` and
`gage --version` import nothing heavy.

Exit codes: 0 ok; 1 a run or check failed; 2 a usage or config error;
a run whose command exits with N (1-255) makes `gage run` exit with N.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

_RUN_HELP = """\
Stage and start a run of OP (the default op when OP is omitted).

NAME=VALUE arguments set config values (see the op's `config`).

Staging copies the project's source code, applies config, prepares the
runtime and resolves dependencies into a new run dir, then makes those
files read-only and writes a manifest of their sha256 digests.

--needed: before anything is staged, the inputs the run would have
(the op definition, config, source code digests after config is
applied, dependency digests and the exact upstream runs) are compared
with the completed runs in the runs dir. When one has the same inputs,
the run is not needed: that run is named, nothing is staged and nothing
runs (exit 0).

Runs dir: --runs-dir, else $GAGE_RUNS, else "$runs-dir" in gage.toml
(relative to gage.toml), else .gage/runs beside gage.toml.

When it starts, gage names the run (`Running OP as NAME (ID)`); `gage
show NAME` or `gage show` (the latest run) tells about it later.

--start RUN starts a staged run. Its files are verified against its
manifest first; --no-verify starts it as it is. --start RUN RUN...
starts several, on the engine (--jobs N at once).

--engine dask starts runs on a Dask cluster: the one at --scheduler
ADDRESS or in --scheduler-file FILE, else a local cluster of --jobs
worker processes. Runs are staged here first; each travels to its
worker as bytes and its record comes back (see topic-engine-dask).
Engine and scheduler: the options, else $GAGE_ENGINE and
$GAGE_SCHEDULER (or $GAGE_SCHEDULER_FILE), else $engine and $scheduler
(or $scheduler-file) in gage.toml, else local.

Ctrl-C (SIGINT) is passed to the run: it ends `terminated`, gage says
"interrupted" and exits 130.

Exit status: 0 when the run completes; the run's own exit code when its
command fails with 1-255; 128+N when a signal N ends it (130 for Ctrl-C,
143 for SIGTERM); 1 when it cannot start; 2 for a usage or
gage.toml/config error.
"""


# The same as runs.RUN_STATUSES (a test checks): kept here so building the
# parser for `--help` imports nothing of the library.
_STATUSES = [
    "pending",
    "staged",
    "running",
    "completed",
    "error",
    "terminated",
    "abandoned",
]

_RUNS_PAGE_HELP = "20"

_RUN_ARG_HELP = (
    "a run id or name, or a prefix of one; the # that 'gage runs' shows; "
    "an op name for its latest run; or a path to a run dir"
)


def main(argv: list[str] | None = None) -> int:
    # Names that are not UTF-8 (paths, a project dir) print escaped.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure:
            reconfigure(errors="backslashreplace")
    parser = _parser()
    args = _parse_args(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .types import GageError

    try:
        return args.func(args)
    except GageError as e:
        return _error(str(e), 1 if _is_run_error(e) else 2)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except BrokenPipeError:
        # Output piped to a command that stopped reading (`gage runs | head`).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:
        # A user path that is missing, unreadable, not a dir, disk full...
        return _error(f"{e.strerror}: {e.filename}" if e.filename else str(e), 2)


def _parse_args(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse argv; `NAME=VALUE` words may follow options (`run OP -y a=1`).

    argparse takes positionals only up to the first option: words left
    over that are not options are the op's config assignments.
    """
    args, extra = parser.parse_known_args(_sort_values(argv))
    # `assigns` of gage run, `words` of gage repro.
    dest = "assigns" if hasattr(args, "assigns") else "words"
    if extra and hasattr(args, dest):
        if not any(w.startswith("-") for w in extra):
            setattr(args, dest, list(getattr(args, dest)) + extra)
            extra = []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _sort_values(argv: list[str] | None) -> list[str]:
    """`--sort -loss` as `--sort=-loss`: argparse takes a value that
    starts with '-' for an option."""
    words = list(sys.argv[1:] if argv is None else argv)
    out: list[str] = []
    while words:
        word = words.pop(0)
        if word == "--sort" and words and words[0].startswith("-"):
            word = f"--sort={words.pop(0)}"
        out.append(word)
    return out


def _is_run_error(e: Exception) -> bool:
    from .types import RunError

    return isinstance(e, RunError)


def _error(msg: str, code: int) -> int:
    print(f"gage: {msg}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------------
# Parser


class HelpFormatter(argparse.HelpFormatter):
    """Help that reads the same on every Python version: an option with
    a short and a long name and a value shows the value once
    (`-b, --batch-file FILE`), as Python 3.13 writes it; 3.10-3.12 wrote
    `-b FILE, --batch-file FILE`."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        default = self._get_default_metavar_for_optional(action)
        return ", ".join(action.option_strings) + " " + self._format_args(
            action, default
        )


class RawHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """`HelpFormatter` that keeps a description's line breaks."""


def _parser() -> argparse.ArgumentParser:
    from gage import __version__

    p = argparse.ArgumentParser(
        prog="gage",
        description="Stage and run operations defined in gage.toml reproducibly.",
        epilog="Run 'gage COMMAND --help' for a command's options.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"gage {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="stage and start a run",
        description=_RUN_HELP,
        formatter_class=RawHelpFormatter,
    )
    run.add_argument(
        "op", nargs="?", metavar="OP", help="op to run (default: the default op)"
    )
    run.add_argument("assigns", nargs="*", metavar="NAME=VALUE", help="config values")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--stage", action="store_true", help="stage only; print the run name and dir"
    )
    mode.add_argument(
        "--start", metavar="RUN", help="start a staged run (" + _RUN_ARG_HELP + ")"
    )
    mode.add_argument(
        "--preview",
        action="store_true",
        help="show what would be staged and run; stage nothing",
    )
    run.add_argument(
        "--no-verify",
        action="store_true",
        help="with --start: start a staged run whose files differ from its "
        "manifest, as they are",
    )
    run.add_argument(
        "--needed",
        action="store_true",
        help="skip when a completed run has the same config and inputs",
    )
    run.add_argument(
        "-y", "--yes", action="store_true", help="do not ask for confirmation"
    )
    run.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="do not name the run or show its output",
    )
    run.add_argument(
        "--json", action="store_true", help="print the run record as JSON at the end"
    )
    from . import cli_batch

    cli_batch.add_args(run)
    _runs_dir_arg(run)
    run.set_defaults(func=_cmd_run)

    runs = sub.add_parser(
        "runs",
        help="list runs, newest first",
        description="List runs, newest first: the newest 20 unless -n N or "
        "--all. The # column numbers runs (1 = newest); that number selects a "
        "run wherever a RUN is taken (gage show 2).",
        formatter_class=HelpFormatter,
    )
    runs.add_argument("-o", "--op", help="only runs of this op")
    runs.add_argument(
        "-s",
        "--status",
        choices=_STATUSES,
        metavar="STATUS",
        help="only runs with this status: " + ", ".join(_STATUSES),
    )
    runs.add_argument("--batch", metavar="ID", help="only runs of this batch")
    page = runs.add_mutually_exclusive_group()
    page.add_argument(
        "-n",
        "--limit",
        type=int,
        metavar="N",
        help=f"show the newest N runs (default: {_RUNS_PAGE_HELP})",
    )
    page.add_argument("-a", "--all", action="store_true", help="show all runs")
    runs.add_argument(
        "--json", action="store_true", help="print runs as JSON (all unless -n)"
    )
    _runs_dir_arg(runs)
    runs.set_defaults(func=_cmd_runs)
    from . import cli_runs_manage

    cli_runs_manage.add_parsers(runs)

    show = sub.add_parser(
        "show",
        help="show a run (the latest by default)",
        description="Show a run (the latest when RUN is omitted).",
        formatter_class=HelpFormatter,
    )
    show.add_argument(
        "run", metavar="RUN", nargs="?", help=_RUN_ARG_HELP + " (default: latest)"
    )
    show.add_argument(
        "--files", action="store_true", help="list the files in the manifest"
    )
    show.add_argument(
        "--json", action="store_true", help="print the run record as JSON"
    )
    _runs_dir_arg(show)
    show.set_defaults(func=_cmd_show)

    check = sub.add_parser(
        "check",
        help="verify a run's files against its manifest",
        description="Verify a run's files against its manifest. Exit 1 and list "
        "the differences when files changed.",
        formatter_class=HelpFormatter,
    )
    check.add_argument("run", metavar="RUN", help=_RUN_ARG_HELP)
    check.add_argument(
        "--full",
        action="store_true",
        help="read every file (by default a large file whose stat is what "
        "staging recorded is not read again)",
    )
    _runs_dir_arg(check)
    check.set_defaults(func=_cmd_check)

    from . import cli_cache, cli_compare, cli_dag, cli_diff, cli_ops, cli_repro

    cli_repro.add_parser(sub)
    cli_dag.add_parser(sub)
    cli_compare.add_parser(sub)
    cli_diff.add_parser(sub)
    cli_ops.add_parser(sub)
    cli_cache.add_parser(sub)
    return p


def _runs_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runs-dir", metavar="DIR", help="runs dir (default: see 'gage run --help')"
    )


# ---------------------------------------------------------------------------
# Context


def _project(args, required: bool = True):
    """(gagefile or None, runs home).

    When gage.toml is not required and the runs home is given
    (`--runs-dir`, `GAGE_RUNS`), gage.toml is not read.
    """
    from . import runs

    if args.runs_dir == "":
        raise _usage("--runs-dir is empty: name a directory (e.g. --runs-dir runs)")
    gf = None
    if required or not (args.runs_dir or os.environ.get("GAGE_RUNS")):
        from . import gagefile

        if required:
            gf = gagefile.load_gagefile()
        else:
            path = gagefile.find_gagefile()
            gf = gagefile.read_gagefile(path) if path else None
    home = runs.runs_home(
        args.runs_dir,
        gf.runs_dir if gf else None,
        gf.project_dir if gf else None,
    )
    if os.path.exists(home) and not os.path.isdir(home):
        raise _usage(f"runs dir {home} is not a directory: name a directory")
    return gf, home


def _select_run(args, spec: str | None):
    from . import runs

    _gf, home = _project(args, required=False)
    return runs.select_run(home, spec)


# ---------------------------------------------------------------------------
# gage run


def _cmd_run(args) -> int:
    if args.start == "":
        raise _usage("--start needs a run: give a run id or name (see 'gage runs')")
    if args.no_verify and not args.start:
        raise _usage("--no-verify applies to --start RUN: a new run is verified")
    if args.start:
        more = ([args.op] if args.op else []) + args.assigns
        if any("=" in w for w in more) or args.batch_files or args.random or args.max_trials:
            raise _usage(
                "--start takes staged runs only: config was set when they were staged"
            )
        return _start_runs(args, [args.start] + more)
    from . import gagefile, op_inputs, runs

    op_name, assigns = _split_words(([args.op] if args.op else []) + args.assigns)
    gf, home = _project(args)
    opdef = gf.get_opdef(op_name)
    from . import cli_batch

    code = cli_batch.maybe_batch(args, gf, home, opdef, assigns)
    if code is not None:
        return code
    cmd = gagefile.op_cmd(opdef)
    config = _resolve_config(gf, opdef, assigns)
    if args.preview:
        return _preview(gf, opdef, cmd, config, assigns, home)
    inputs = None
    if args.needed:
        # Decided before anything is staged (see op_inputs).
        inputs = op_inputs.op_inputs(home, gf.project_dir, opdef, config)
        match = op_inputs.find_run(home, inputs) if inputs else None
        if match:
            return _not_needed(args, match)
    # Staging modules only now: a run that is not needed never loads them.
    from . import run_deps, run_util

    if config:
        # Before anything is staged (staging checks it again).
        run_deps.check_config_deps(home, gf.project_dir, opdef)
    if not args.yes and not _confirm(opdef, config, args):
        return _error("cancelled: nothing staged", 1)
    # Connected before anything is staged: a cluster that cannot be
    # reached stages nothing.
    engine = None if args.stage else _engine(args, gf)
    try:
        run = run_util.make_run(home)
        run_util.init_run_meta(run, gagefile.op_ref(gf, opdef), opdef, cmd, config, {})
        run_util.stage_run(
            run, gf.project_dir, warn=_warn, progress=not args.quiet
        )
        match = None
        if args.needed and inputs is None:
            # An op with staging hooks: only the staged run knows its inputs.
            match = op_inputs.find_matching_run(run, runs.list_runs(home))
    except BaseException:
        if engine is not None:
            engine.close()
        raise
    if match:
        if engine is not None:
            engine.close()
        runs.delete_run(run)
        return _not_needed(args, match)
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
    from . import engine

    name, options = engine.engine_settings(
        args.engine, args.scheduler, args.scheduler_file, gf
    )
    if name == "local" and args.jobs == 1:
        return None
    return engine.get_engine(name, args.jobs, **options)


def _start_runs(args, specs: list[str]) -> int:
    """`gage run --start RUN...`: here one at a time, or on an engine."""
    from . import gagefile

    runs = [_select_run(args, spec) for spec in specs]
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
        raise _usage("--no-verify starts a run here only: not with --engine/--jobs")
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
        return _error("interrupted: runs in flight were terminated", 130)
    engine.close()
    first = 0
    for run, code in zip(runs, codes):
        result = _run_result(args, run, code)
        first = first or result
    return first


def _run_result(args, run, code: int) -> int:
    """Exit code for a run an engine ran, with a line when it failed."""
    status = _status(run)
    if status == "staged":
        return 1  # refused or not started: the engine said why
    if code == 0 and status == "completed":
        return _print_json(args, run, 0)
    signal_code = _signal_exit(run) if status == "terminated" else None
    if signal_code is not None:
        print(f"gage: run {run.name} terminated (status {status})", file=sys.stderr)
        return _print_json(args, run, signal_code)
    rc = _exit_code(run)
    print(
        f"gage: run {run.name} failed with exit code {rc} (status {status})",
        file=sys.stderr,
    )
    return _print_json(args, run, rc if rc is not None and 0 < rc < 256 else 1)


def _exit_code(run) -> int | None:
    from . import run_meta

    return run_meta.read_exit_code(run)


def _not_needed(args, match) -> int:
    print(
        f"Run not needed: {match.name} ({match.id}) completed with the "
        "same config and inputs"
    )
    return _print_json(args, match, 0)


def _warn(msg: str) -> None:
    print(f"gage: warning: {msg}", file=sys.stderr)


def _split_words(words: list[str]) -> tuple[str | None, list[str]]:
    if words and "=" not in words[0]:
        op, rest = words[0], words[1:]
    else:
        op, rest = None, words
    for w in rest:
        if "=" not in w:
            raise _usage(f"'{w}' is not NAME=VALUE (the op name goes first)")
    return op, rest


def _usage(msg: str):
    from .types import GageError

    return GageError(msg)


def _resolve_config(gf, opdef, assigns: list[str]) -> dict:
    from . import op_inputs

    from . import gagefile
    from .types import ConfigError

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
        print(f"  {key}: {_fmt_val(val)}")
    try:
        answer = input("Continue? (Y/n) ")
    except EOFError:
        return False
    return answer.strip().lower() in ("", "y", "yes")


def _start(args, run) -> int:
    from . import run_meta, run_util

    run_util.start_run(
        run,
        quiet=args.quiet,
        verify=not args.no_verify,
        on_start=None if args.quiet else lambda: _print_starting(run),
    )
    code = run_meta.read_exit_code(run)
    if code == 0:
        return _print_json(args, run, 0)
    status = _status(run)
    signal_code = _signal_exit(run) if status == "terminated" else None
    if signal_code is not None:
        what = "interrupted" if signal_code == 130 else "terminated by a signal"
        print(f"gage: run {run.name} {what} (status {status})", file=sys.stderr)
        return _print_json(args, run, signal_code)
    print(
        f"gage: run {run.name} failed with exit code {code} (status {status})",
        file=sys.stderr,
    )
    return _print_json(args, run, code if code is not None and 0 < code < 256 else 1)


def _print_starting(run) -> None:
    from . import runs

    op = runs.op_name(run) or "run"
    print(f"Running {op} as {run.name} ({run.id})", flush=True)


def _signal_exit(run) -> int | None:
    """128 + the number of the signal that ended a run, as shells do."""
    import signal

    from . import run_meta

    name = run_meta.read_proc_signal(run)
    code = run_meta.read_exit_code(run)
    if name is not None and name in signal.Signals.__members__:
        return 128 + signal.Signals[name].value
    if code is not None and code < 0:
        return 128 - code
    return None


def _print_json(args, run, code: int) -> int:
    if getattr(args, "json", False):
        import json

        from . import runs

        print(json.dumps(runs.run_record(run), indent=2, sort_keys=True))
    return code


def _status(run) -> str:
    from . import runs

    return runs.run_status(run)


# ---------------------------------------------------------------------------
# gage run --preview


def _preview(gf, opdef, cmd, config: dict, assigns: list[str], home: str) -> int:
    import shlex

    from . import run_util

    print(f"Op: {opdef.name} (project {gf.project_dir})")
    print(f"Command: {shlex.join(cmd.args)}")
    for k, v in sorted(cmd.env.items()):
        print(f"  env {k}={v}")
    _preview_config(gf, opdef, config, assigns)
    sc = run_util.preview_sourcecode(gf.project_dir, opdef, home)
    print(f"Source code ({_count(len(sc.files), 'file')}):")
    for path in sc.files:
        print(f"  {path}")
    limited = [s for s in sc.skipped if s.reason == "limit"]
    if limited:
        print("Skipped by limits:")
        for s in limited:
            print(f"  {s.path}: {s.detail} of rule '{s.rule}'")
    _preview_deps(gf, opdef, home)
    print(f"Runs dir: {home}")
    print("Nothing staged (preview).")
    return 0


def _preview_config(gf, opdef, config: dict, assigns: list[str]) -> None:
    if not config:
        return
    from . import run_config

    defaults = run_config.read_project_config(gf.project_dir, opdef)
    overridden = {a.split("=", 1)[0] for a in assigns}
    print("Config:")
    for key, val in sorted(config.items()):
        line = f"  {key}: {_fmt_val(val)}"
        if key in overridden:
            line += f" (default {_fmt_val(defaults[key].value)})"
        if defaults[key].also:
            # A key several files define is written to each of them.
            line += f" in {', '.join(defaults[key].files)}"
        print(line)


def _preview_deps(gf, opdef, home: str) -> None:
    if not opdef.get_dependencies():
        return
    from . import run_deps
    from .types import DependencyError

    print("Dependencies:")
    try:
        deps = run_deps.preview_dependencies(home, gf.project_dir, opdef)
    except DependencyError as e:
        print(f"  cannot resolve: {e}")
        return
    for dep in deps:
        _print_dep(dep.spec, dep.source, [f.path for f in dep.files])


def _print_dep(spec: dict, source: dict, paths: list[str]) -> None:
    what = spec.get("run-select") or spec.get("files") or ""
    if source.get("type") == "run":
        where = f"run {source.get('name')} ({source.get('op')}, {source.get('id')})"
    else:
        where = f"project {source.get('dir')}"
    print(f"  {spec.get('type')} {_fmt_val(what)} from {where}")
    for path in paths:
        print(f"    {path}")


def _fmt_val(val) -> str:
    import json

    return val if isinstance(val, str) else json.dumps(val)


# ---------------------------------------------------------------------------
# gage runs


def _cmd_runs(args) -> int:
    from . import runs

    _gf, home = _project(args, required=False)
    limit = _runs_limit(args)
    page, total = runs.runs_page(
        home, args.op, args.status, limit, args.batch, args.label
    )
    if args.json:
        import json

        print(json.dumps([r for _n, r in page], indent=2, sort_keys=True))
        return 0
    if not page:
        filtered = args.op or args.status or args.batch or args.label
        print(f"No {'matching ' if filtered else ''}runs in {home}")
        return 0
    from . import cli_compare

    head, cells = cli_compare.runs_columns([r for _n, r in page], args.cols)
    rows = [("#", "name", "op", "status", "started", "time", *head, "config")]
    for (n, r), extra in zip(page, cells):
        rows.append(
            (
                str(n),
                r["name"],
                r["op"] or "?",
                r["status"],
                _local_time(r["started"]),
                _duration(r["duration"]),
                *extra,
                _config_summary(r["config"]),
            )
        )
    _print_table(rows, _RUNS_STYLES)
    if total > len(page):
        more = total - len(page)
        print(f"{more} more {'run' if more == 1 else 'runs'}: use --all or -n N")
    return 0


_RUNS_PAGE = int(_RUNS_PAGE_HELP)

_RUNS_STYLES = ("dim", None, None, "status", None, None, None)


def _runs_limit(args) -> int | None:
    if args.all:
        return None
    if args.limit is not None:
        if args.limit < 1:
            raise _usage(f"-n {args.limit}: show at least 1 run (or --all)")
        return args.limit
    return None if args.json else _RUNS_PAGE


def _print_table(
    rows: Sequence[tuple[str, ...]], styles: Sequence[str | None] | None = None
) -> None:
    from . import cli_table

    cli_table.print_table(rows[0], rows[1:], styles=styles)


def _print_status(label: str, status: str) -> None:
    from . import cli_table

    sys.stdout.flush()
    cli_table.print_status(label, status)


def _local_time(iso: str | None) -> str:
    if not iso:
        return "-"
    import datetime

    dt = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    dt = dt.replace(tzinfo=datetime.timezone.utc).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _config_summary(config: dict) -> str:
    text = " ".join(f"{k}={_fmt_val(v)}" for k, v in sorted(config.items()))
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------
# gage show


def _cmd_show(args) -> int:
    from . import run_meta, runs

    run = _select_run(args, args.run)
    record = runs.run_record(run)
    manifest = run_meta.read_manifest(run)
    if args.json:
        import json

        record["deps"] = run_meta.read_deps(run)
        record["worker"] = run_meta.read_worker(run)
        record["manifest_counts"] = _manifest_counts(manifest)
        if args.files:
            record["manifest"] = [e._asdict() for e in manifest]
        print(json.dumps(record, indent=2, sort_keys=True))
        return 0
    print(f"Run:      {run.name} ({run.id})")
    print(f"Op:       {record['op_ns']}:{record['op']}")
    _print_status("Status:   ", record["status"])
    if record["batch"]:
        print(f"Batch:    {record['batch']}")
    if record["label"]:
        print(f"Label:    {record['label']}")
    print(f"Run dir:  {run.run_dir}")
    print(f"Meta dir: {run.meta_dir}")
    print(f"Started:  {_local_time(record['started'])}")
    print(f"Duration: {_duration(record['duration'])}")
    if record["exit_code"] is not None:
        print(f"Exit:     {record['exit_code']}")
    worker = run_meta.read_worker(run)
    if worker:
        print(f"Worker:   {worker.get('host')} ({worker.get('worker')}, {worker.get('engine')})")
    _show_dict("Config", record["config"])
    if record["config"] and os.path.exists(run_meta.patched_path(run)):
        print(f"  (diff: {run_meta.patched_path(run)})")
    _show_deps(run_meta.read_deps(run))
    _show_manifest(manifest, args.files)
    _show_dict("Summary", record["summary"])
    _show_output(run)
    return 0


def _show_dict(title: str, data: dict) -> None:
    if not data:
        return
    print(f"{title}:")
    for key, val in sorted(data.items()):
        print(f"  {key}: {_fmt_val(val)}")


def _show_deps(deps: list) -> None:
    if not deps:
        return
    print("Dependencies:")
    for dep in deps:
        paths = [f.get("path") for f in dep.get("files") or []]
        _print_dep(dep.get("spec") or {}, dep.get("source") or {}, paths)


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
    from .run_meta import quote_path

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
    from . import run_meta

    tail = run_meta.read_output_tail(run, "run", lines)
    if tail:
        last = "last line" if len(tail) == 1 else f"last {len(tail)} lines"
        print(f"Output ({last}):")
        for line in tail:
            print(f"  {line}")


# ---------------------------------------------------------------------------
# gage check


def _cmd_check(args) -> int:
    from . import objects, run_meta, run_util
    from .types import MetaError, VerifyError

    run = _select_run(args, args.run)
    try:
        progress = objects.terminal_progress("Checking")
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
