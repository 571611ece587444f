"""The `gage` command: a thin argparse layer over the library.

Each verb parses its arguments, calls the library and formats the result.
Library modules are imported inside the verbs, so `gage --help` and
`gage --version` import nothing heavy.

Exit codes: 0 ok; 1 a run or check failed, or the environment (a path
gone, permission denied, a full disk); 2 a usage or config error;
a run whose command exits with N (1-255) makes `gage run` exit with N.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

from . import common

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
runs (exit 0). The Python and packages the run had are not part of its
inputs; --strict-env (or `provenance = { strict-env = true }`) asks for
them too.

Runs dir: --runs-dir, else $GAGE_RUNS, else "$runs-dir" in gage.toml
(relative to gage.toml), else .gage/runs beside gage.toml.

When it starts, gage names the run (`Running OP as NAME (ID)`); `gage
show NAME` or `gage show` (the latest run) tells about it later.

Upstream runs: a run-files dependency that selects an op uses the
latest completed run of it, except when another upstream run chosen for
this run used a run of that op: then that same run (the lineage is
followed), so a run never mixes lineages. --upstream OP=RUN pins one
(config is NAME=VALUE, so pins take the option); --preview says which
run each dependency uses and why. Pins that disagree are refused.

--proto RUN: a new run of RUN's op with RUN's config; NAME=VALUE
changes it.

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

--engine slurm submits each staged run as a Slurm job (the runs home
must be on a filesystem the nodes share): settings from "$slurm" and
the op's `slurm` in gage.toml, then --slurm KEY=VALUE, --slurm-partition,
--slurm-time; --detach submits and returns (see topic-engine-slurm).

Ctrl-C (SIGINT) is passed to the run: it ends `terminated`, gage says
"interrupted" and exits 130. SIGTERM and SIGHUP are passed on too. A
run that does not end gets SIGKILL on a second Ctrl-C, or after
$GAGE_KILL_GRACE seconds (10).

Exit status: 0 when the run completes; the run's own exit code when its
command fails with 1-255; 128+N when a signal N ends it (130 for Ctrl-C,
143 for SIGTERM); 1 when it cannot start; 2 for a usage or
gage.toml/config error.
"""


def _lazy_inspect() -> None:
    """`inspect` loaded on first use: the `dataclasses` module imports it
    (ast, dis, tokenize: a fifth of what `gage runs` imports) and uses
    it only for a class without a docstring (every gage dataclass has
    one; tests/test_import_budget.py checks that `inspect` stays out).
    Until an attribute is asked for, `sys.modules["inspect"]` is a
    stand-in that then imports the real module and puts it there."""
    if "inspect" not in sys.modules:
        sys.modules["inspect"] = _Deferred("inspect")


class _Deferred(ModuleType):
    __spec__ = None  # read by `import`: no load for that

    def __getattr__(self, attr: str):
        import importlib

        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def main(argv: list[str] | None = None) -> int:
    # Names that are not UTF-8 (paths, a project dir) print escaped.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure:
            reconfigure(errors="backslashreplace")
    _lazy_inspect()
    words = _sort_values(argv)
    parser = _parser(_verb_word(words))
    args = _parse_args(parser, words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..types import GageError

    common.install_notices()
    try:
        return args.func(args)
    except GageError as e:
        return common.error(str(e), 1 if _is_run_error(e) else 2)
    except KeyboardInterrupt:
        return common.error("interrupted", 130)
    except BrokenPipeError:
        # Output piped to a command that stopped reading (`gage runs | head`).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:
        # The environment, not the command line: a path that went missing,
        # permission denied, a full disk... (exit 2 is for usage and
        # gage.toml/config errors).
        return common.error(f"{e.strerror}: {e.filename}" if e.filename else str(e), 1)


def _parse_args(parser: argparse.ArgumentParser, words: list[str]):
    """Parse words; `NAME=VALUE` words may follow options (`run OP -y a=1`).

    argparse takes positionals only up to the first option: words left
    over that are not options are the op's config assignments.
    """
    args, extra = parser.parse_known_args(words)
    # `assigns` of gage run, `words` of gage repro.
    dest = "assigns" if hasattr(args, "assigns") else "words"
    if extra and hasattr(args, dest):
        if not any(w.startswith("-") for w in extra):
            setattr(args, dest, list(getattr(args, dest)) + extra)
            extra = []
    if extra:
        verb = _verb_word(words)
        where = f"gage {verb}" if verb in _VERBS else "gage"
        if verb == "runs" and getattr(args, "verb", None):
            where += f" {args.verb}"
        print(
            f"gage: unrecognized arguments: {' '.join(extra)} (see '{where} --help')",
            file=sys.stderr,
        )
        sys.exit(2)
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
    from ..types import RunError

    return isinstance(e, RunError)


# ---------------------------------------------------------------------------
# Parser


def _verb_word(words: list[str]) -> str | None:
    """The verb in `words`: the first word that is not an option (gage's
    own options, -h and --version, take no value)."""
    for word in words:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def _parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the options of `verb` only: the other verbs are a
    name and a line of help, all that `gage --help` or an unknown verb's
    error shows; a known verb needs no other (argparse reads the verb
    first and hands the rest to its parser). A command builds (and
    imports) one verb's parser."""
    from gage import __version__

    p = common.Parser(
        prog="gage",
        description="Stage and run operations defined in gage.toml reproducibly.",
        epilog="Run 'gage COMMAND --help' for a command's options.",
        formatter_class=common.HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"gage {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    for name, (help, add) in _VERBS.items():
        if name != verb:
            if verb in _VERBS:
                continue
            sub.add_parser(name, help=help, formatter_class=common.HelpFormatter)
        elif callable(add):
            add(sub, name, help)
        else:
            import importlib

            importlib.import_module(f"gage._internal.cli.{add}").add_parser(
                sub, name, help
            )
    return p


def _add_run(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    run = sub.add_parser(
        name, help=help, description=_RUN_HELP, formatter_class=common.RawHelpFormatter
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
        "--start",
        metavar="RUN",
        help="start a staged run (" + common.RUN_ARG_HELP + ")",
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
    _add_inputs_args(run)
    _add_needed_args(run)
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
    from . import run_args

    run_args.add_batch_args(run)
    common.runs_dir_arg(run)
    run.set_defaults(func=_verb("run", "_cmd_run"))


def _add_needed_args(run: argparse.ArgumentParser) -> None:
    """--needed and what else it may compare or where else it may look."""
    run.add_argument(
        "--needed",
        action="store_true",
        help="skip when a completed run has the same config and inputs",
    )
    run.add_argument(
        "--strict-env",
        action="store_true",
        help="with --needed: the completed run must also have had the same "
        "Python and packages as the op's command has now",
    )
    run.add_argument(
        "--remote",
        metavar="NAME",
        help="with --needed: also look on this remote, and pull a completed "
        "run found there with the same inputs; pinned dependency files "
        "missing from the project are fetched from it (without --remote: "
        'from "$remote")',
    )


def _add_inputs_args(run: argparse.ArgumentParser) -> None:
    """What a new run starts from besides config: upstream pins, a proto."""
    run.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="OP=RUN",
        help="use RUN for the run-files dependencies on OP (repeatable); "
        "other upstream runs follow its lineage",
    )
    run.add_argument(
        "--proto",
        metavar="RUN",
        help="a new run of RUN's op with RUN's config, changed by NAME=VALUE",
    )


def _add_runs(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    runs = sub.add_parser(
        name,
        help=help,
        description="List runs, newest first: the newest 20 unless -n N or "
        "--all. The # column numbers runs (1 = newest); that number selects a "
        "run wherever a RUN is taken (gage show 2).",
        formatter_class=common.HelpFormatter,
    )
    runs.add_argument("-o", "--op", help="only runs of this op")
    runs.add_argument(
        "-s",
        "--status",
        choices=common.STATUSES,
        metavar="STATUS",
        help="only runs with this status: " + ", ".join(common.STATUSES),
    )
    runs.add_argument("--batch", metavar="ID", help="only runs of this batch")
    page = runs.add_mutually_exclusive_group()
    page.add_argument(
        "-n",
        "--limit",
        type=int,
        metavar="N",
        help=f"show the newest N runs (default: {common.RUNS_PAGE_HELP})",
    )
    page.add_argument("-a", "--all", action="store_true", help="show all runs")
    runs.add_argument(
        "--json", action="store_true", help="print runs as JSON (all unless -n)"
    )
    runs.add_argument(
        "--remote", metavar="NAME", help="list the runs a remote holds (pulls nothing)"
    )
    common.runs_dir_arg(runs)
    runs.set_defaults(func=_verb("show", "_cmd_runs"))
    from . import runs_manage as cli_runs_manage

    cli_runs_manage.add_parsers(runs)


def _add_show(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    show = sub.add_parser(
        name,
        help=help,
        description="Show a run (the latest when RUN is omitted).",
        formatter_class=common.HelpFormatter,
    )
    show.add_argument(
        "run", metavar="RUN", nargs="?", help=common.RUN_ARG_HELP + " (default: latest)"
    )
    show.add_argument(
        "--files", action="store_true", help="list the files in the manifest"
    )
    show.add_argument(
        "--env",
        action="store_true",
        help="show the whole environment: git state, interpreter, every "
        "package, machine, GPUs, env vars",
    )
    show.add_argument(
        "--json", action="store_true", help="print the run record as JSON"
    )
    show.add_argument(
        "--output",
        action="store_true",
        help="print the run's whole output (through $PAGER on a terminal)",
    )
    common.runs_dir_arg(show)
    show.set_defaults(func=_verb("show", "_cmd_show"))


def _add_check(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    check = sub.add_parser(
        name,
        help=help,
        description="Verify a run's files against its manifest. Exit 1 and list "
        "the differences when files changed.",
        formatter_class=common.HelpFormatter,
    )
    check.add_argument("run", metavar="RUN", help=common.RUN_ARG_HELP)
    check.add_argument(
        "--full",
        action="store_true",
        help="read every file (by default a large file whose stat is what "
        "staging recorded is not read again)",
    )
    common.runs_dir_arg(check)
    check.set_defaults(func=_verb("show", "_cmd_check"))


# Every verb, in the order `gage --help` lists them: its line of help and
# what adds its parser (a function here, or a module's `add_parser`).
_VERBS: dict[str, tuple[str, object]] = {
    "run": ("stage and start a run", _add_run),
    "runs": ("list runs, newest first", _add_runs),
    "show": ("show a run (the latest by default)", _add_show),
    "check": ("verify a run's files against its manifest", _add_check),
    "repro": ("bring ops and everything upstream up to date", "repro"),
    "dag": ("show the op graph and what is stale", "dag"),
    "compare": ("compare runs: config and summary columns", "compare"),
    "diff": ("what differs between two runs, or why a run ran", "diff"),
    "ops": ("list the ops of gage.toml", "ops"),
    "cache": ("show or prune the object cache", "cache"),
    "watch": ("follow a run's output and scalars until it ends", "watch"),
    "report": ("write an HTML report of runs: table, curves, config", "report"),
    "cat": ("print a file of a run", "cat"),
    "open": ("open a run dir or file with a program", "cat"),
    "comment": ("add, list or delete comments on runs", "comment"),
    "archive": ("move runs out of the listing into an archive", "archive"),
    "restore": ("bring runs back from an archive", "archive"),
    "select": ("print the ids of selected runs (for scripts)", "select"),
    "push": ("copy runs and their files to a remote", "remote"),
    "pull": ("bring runs from a remote into the runs dir", "remote"),
}


def _verb(module: str, name: str):
    """The function `name` of `module`, imported when the verb runs, so
    building the parser (and `gage --help`) imports no verb's code."""

    def call(args) -> int:
        import importlib

        return getattr(importlib.import_module(f"gage._internal.cli.{module}"), name)(
            args
        )

    return call


# ---------------------------------------------------------------------------
# Context
