"""gage.toml: find it, parse it, validate it, return op definitions.

A gage.toml holds one table per operation:

    [train]
    exec = "python train.py"
    config = "train.py#lr,epochs"

Top-level keys that start with `$` are project settings: `$runs-dir` (a
path relative to the gage.toml directory), `$engine` (where runs start:
`local` or `dask`), `$scheduler` (a Dask scheduler address) and
`$scheduler-file` (a Dask scheduler file, relative to the gage.toml
directory), `$slurm` (a table: see slurm_settings), `$remotes` (tables of
remotes, see remote_spec) and `$remote` (the default remote's name).
Every other top-level key names an op.

Validation happens here, at the boundary, so the rest of the library can
trust an `OpDef`. Every error is a `GagefileError` whose message names
the file (with the line where it can be found), the op and key, and what
is expected.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from ..types import (
    DependencyError,
    GagefileError,
    OpDef,
    OpRef,
    StageError,
    describe,
)
from ..util import file_util
from . import graph, remote_spec, scalars_spec, toml_lines
from .dep_spec import DEPENDENCY_TYPES, check_dependency
from .op_exec import PHASES, exec_size_problem, op_cmd, split_exec
from .slurm_settings import problem as slurm_problem

__all__ = [
    "DEPENDENCY_TYPES",
    "EXEC_PHASES",
    "FILENAME",
    "OP_KEYS",
    "Gagefile",
    "find_gagefile",
    "key_location",
    "load_gagefile",
    "op_cmd",
    "op_ref",
    "read_gagefile",
]

FILENAME = "gage.toml"

OP_KEYS = [
    "config",
    "default",
    "depends",
    "description",
    "env",
    "exec",
    "listing",
    "output-scalars",
    "output-summary",
    "provenance",
    "scalars-file",
    "slurm",
    "sourcecode",
    "summary",
    "version",
]

PROJECT_KEYS = ["$runs-dir", "$engine", "$scheduler", "$scheduler-file", "$slurm"]
PROJECT_KEYS += remote_spec.PROJECT_KEYS

ENGINES = ("local", "dask", "slurm")
"""Engine names (`$engine`, `--engine`): see engine.get_engine."""

EXEC_PHASES = list(PHASES)


@dataclass(frozen=True)
class Gagefile:
    """A loaded gage.toml: its path, ops in file order and settings."""

    path: str
    opdefs: dict[str, OpDef]
    runs_dir: str | None = None
    engine: str | None = None
    scheduler: str | None = None
    scheduler_file: str | None = None
    slurm: dict[str, Any] | None = None
    remote: str | None = None
    remotes: dict[str, Any] | None = None

    @property
    def project_dir(self) -> str:
        return os.path.dirname(self.path)

    def get_opdef(self, name: str | None) -> OpDef:
        """The op named `name`, or the default op when `name` is None."""
        if name is None:
            return self.default_opdef()
        try:
            return self.opdefs[name]
        except KeyError:
            raise GagefileError(
                f"{_display_path(self.path)}: no operation '{name}' "
                f"(defined: {_names(self.opdefs)})"
            ) from None

    def default_opdef(self) -> OpDef:
        """The op marked `default = true`, or the only op."""
        marked = [d for d in self.opdefs.values() if d.data.get("default")]
        if marked:
            return marked[0]
        if len(self.opdefs) == 1:
            return next(iter(self.opdefs.values()))
        if not self.opdefs:
            raise GagefileError(f"{_display_path(self.path)}: no operations defined")
        raise GagefileError(
            f"{_display_path(self.path)}: no default operation: name one of "
            f"{_names(self.opdefs)}, or mark one with 'default = true'"
        )


def _names(opdefs: dict[str, OpDef]) -> str:
    return ", ".join(opdefs) or "none"


# ---------------------------------------------------------------------------
# Find and load


def find_gagefile(start_dir: str | None = None) -> str | None:
    """Path of gage.toml in `start_dir` (default cwd) or its nearest parent."""
    path = os.path.abspath(start_dir or os.getcwd())
    while True:
        candidate = os.path.join(path, FILENAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def load_gagefile(start_dir: str | None = None) -> Gagefile:
    """Find and read gage.toml; a clear error when there is none."""
    path = find_gagefile(start_dir)
    if path is None:
        where = os.path.abspath(start_dir or os.getcwd())
        raise GagefileError(
            f"no {FILENAME} in {where} or a parent directory: "
            f"create one that defines an operation, e.g. "
            f'[train] exec = "python train.py"'
        )
    return read_gagefile(path)


def read_gagefile(path: str) -> Gagefile:
    """Parse and validate gage.toml at `path`."""
    path = os.path.abspath(path)
    try:
        with file_util.open_regular(path) as f:
            raw = f.read()
    except OSError as e:
        raise GagefileError(f"cannot read {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise GagefileError(
            f"{_display_path(path)}:{line}: not UTF-8 text ({e.reason}): "
            "save the file as UTF-8"
        ) from None
    toml = file_util.tomllib()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise GagefileError(f"{_display_path(path)}: TOML syntax error: {e}") from None
    except ValueError as e:  # an integer over 4,300 digits
        raise GagefileError(f"{_display_path(path)}: cannot read: {e}") from None
    except RecursionError:
        raise GagefileError(
            f"{_display_path(path)}: values are nested too deeply to read"
        ) from None
    return _Validator(path, text).gagefile(data)


def key_location(gf: Gagefile, op: str, key: str) -> str:
    """`gage.toml:LINE` of `key` in op `op` (`gage.toml` when not found)."""
    try:
        with open(gf.path, encoding="utf-8") as f:
            line = toml_lines.key_line(f.read().splitlines(), op, key)
    except (OSError, ValueError):
        line = None
    path = _display_path(gf.path)
    return f"{path}:{line}" if line else path


def _display_path(path: str) -> str:
    """`path` relative to the cwd when it is under it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


# ---------------------------------------------------------------------------
# Validation


class _Validator:
    def __init__(self, path: str, text: str):
        self.path = path
        self.lines = text.splitlines()

    def gagefile(self, data: dict[str, Any]) -> Gagefile:
        settings: dict[str, Any] = {}
        opdefs: dict[str, OpDef] = {}
        for name, val in data.items():
            if name.startswith("$"):
                settings[name[1:].replace("-", "_")] = self._setting(name, val)
                continue
            if not isinstance(val, dict):
                self.fail(
                    name,
                    None,
                    f"'{name}' must be a table that defines an operation "
                    f'(e.g. [{name}] with exec = "..."), got {describe(val)}',
                )
            self._op_name(name)
            opdefs[name] = OpDef(name, self.opdef(name, val))
        defaults = [n for n, d in opdefs.items() if d.data.get("default")]
        if len(defaults) > 1:
            self.fail(
                defaults[1],
                "default",
                f"more than one operation is marked default "
                f"({', '.join(defaults)}): mark only one",
            )
        self._check_graph(opdefs)
        return Gagefile(self.path, opdefs, **settings)

    def _check_graph(self, opdefs: dict[str, OpDef]) -> None:
        self._check_run_selects(opdefs)
        cycle = graph.find_cycle(graph.op_graph(opdefs))
        if cycle:
            self.fail(
                cycle[0],
                "depends",
                "run-files dependencies make a cycle: "
                + " -> ".join(reversed(cycle))
                + " (each op would need a run of the next first): "
                "remove one of these run-select dependencies",
            )

    def _check_run_selects(self, opdefs: dict[str, OpDef]) -> None:
        """A misspelt op in a run-select is an error here, not at staging."""
        for name, sel in graph.unknown_selects(opdefs):
            self.fail(
                name,
                "depends",
                f"run-select '{sel}' names no op in this file (ops: "
                f"{', '.join(opdefs)}) and is not a run id or name: "
                "name one of the ops",
            )

    def _op_name(self, name: str) -> None:
        """Refuse a name the command line or a run's record cannot hold."""
        problem = _op_name_problem(name)
        if problem:
            self.fail(
                None,
                None,
                f"op name {name!r} {problem}: rename the op's table (e.g. [train])",
                line=toml_lines.find(self.lines, toml_lines.table_header(name), 0),
            )

    def _setting(self, name: str, val: Any) -> Any:
        if name not in PROJECT_KEYS:
            self.fail(
                None,
                name,
                f"unknown setting '{name}' (known settings: {', '.join(PROJECT_KEYS)})",
            )
        if name == "$slurm":
            return self._slurm(None, name, val)
        if name in remote_spec.PROJECT_KEYS:
            return remote_spec.check_setting(name, val, self.path, self.lines)
        what = "an address string" if name == "$scheduler" else "a path string"
        if name == "$engine":
            what = f"one of {', '.join(ENGINES)}"
        if not isinstance(val, str) or not val:
            self.fail(None, name, f"'{name}' must be {what}, got {describe(val)}")
        if name == "$engine" and val not in ENGINES:
            self.fail(None, name, f"'{name}' must be {what}, got '{val}'")
        if name in ("$runs-dir", "$scheduler-file"):
            return os.path.join(os.path.dirname(self.path), os.path.expanduser(val))
        return val

    def opdef(self, op: str, data: dict[str, Any]) -> dict[str, Any]:
        for key, val in data.items():
            check = _CHECKS.get(key)
            if check is None:
                self.fail(
                    op,
                    key,
                    f"unknown key '{key}' (known keys: {', '.join(OP_KEYS)})",
                )
            check(self, op, key, val)
        return data

    # -- per key

    def _str(self, op: str, key: str, val: Any) -> None:
        if not isinstance(val, str):
            self.fail(op, key, f"'{key}' must be a string, got {describe(val)}")

    def _bool(self, op: str, key: str, val: Any) -> None:
        if not isinstance(val, bool):
            self.fail(op, key, f"'{key}' must be true or false, got {describe(val)}")

    def _slurm(self, op: str | None, key: str, val: Any) -> Any:
        bad = slurm_problem(val)
        if bad:
            self.fail(op, key, f"'{key}' {bad[1]}")
        return val

    def _version(self, op: str, key: str, val: Any) -> None:
        if not isinstance(val, (str, int)) or isinstance(val, bool):
            self.fail(
                op, key, f"'{key}' must be a string or an integer, got {describe(val)}"
            )

    def _exec(self, op: str, key: str, val: Any) -> None:
        if isinstance(val, dict):
            for phase, cmd in val.items():
                if phase not in EXEC_PHASES:
                    self.fail(
                        op,
                        key,
                        f"unknown exec phase '{phase}' "
                        f"(known phases: {', '.join(EXEC_PHASES)})",
                    )
                self._cmd(op, f"{key}.{phase}", cmd)
        else:
            self._cmd(op, key, val)

    def _cmd(self, op: str, key: str, val: Any) -> None:
        too_big = exec_size_problem(val)
        if too_big:
            self.fail(op, key, f"'{key}' {too_big}")
        if isinstance(val, str):
            try:
                args, _env = split_exec(val)
            except ValueError as e:
                self.fail(op, key, f"'{key}' cannot be split like a shell line: {e}")
            if not args:
                self.fail(op, key, f"'{key}' has no command (only NAME=VALUE words)")
            self._argv(op, key, args)
            for name, v in _env.items():
                self._env_item(op, key, name, v)
        elif isinstance(val, list):
            if not val or not all(isinstance(a, str) for a in val):
                self.fail(
                    op, key, f"'{key}' as a list must be a non-empty list of strings"
                )
            self._argv(op, key, val)
        else:
            self.fail(
                op,
                key,
                f"'{key}' must be a command string, a list of strings"
                + (" or a table of phases" if "." not in key else "")
                + f", got {describe(val)}",
            )

    def _argv(self, op: str, key: str, args: list[str]) -> None:
        if not args[0].strip():
            self.fail(
                op,
                key,
                f"'{key}' has an empty command name: give the program to run "
                '(e.g. exec = "python train.py")',
            )
        for arg in args:
            if "\0" in arg:
                self.fail(op, key, f"'{key}' has a NUL character in {arg!r}")

    def _env(self, op: str, key: str, val: Any) -> None:
        if not isinstance(val, dict):
            self.fail(
                op, key, f"'env' must be a table of NAME = value, got {describe(val)}"
            )
        for name, v in val.items():
            if not isinstance(v, (str, int, float, bool)):
                self.fail(
                    op,
                    key,
                    f"env '{name}' must be a string, number or boolean, got {describe(v)}",
                )
            self._env_item(op, key, name, v)

    def _env_item(self, op: str, key: str, name: str, val: Any) -> None:
        if not name or "=" in name or "\0" in name:
            self.fail(
                op,
                key,
                f"env name {name!r} is not valid: a name is not empty and has "
                "no '=' or NUL character (e.g. PYTHONPATH)",
            )
        if isinstance(val, str) and "\0" in val:
            self.fail(op, key, f"env '{name}' has a NUL character in its value")

    def _config(self, op: str, key: str, val: Any) -> None:
        items = val if isinstance(val, list) else [val]
        for item in items:
            if isinstance(item, str):
                if not item.strip():
                    self.fail(op, key, "'config' has an empty pattern")
                self._config_file(op, key, item)
            elif isinstance(item, dict):
                keys = item.get("keys", item.get("file", ""))
                if not isinstance(keys, (str, list)):
                    self.fail(
                        op, key, "'config' table: 'keys' must be a string or list"
                    )
                for spec in [keys] if isinstance(keys, str) else keys:
                    if isinstance(spec, str):
                        self._config_file(op, key, spec)
            else:
                self.fail(
                    op,
                    key,
                    f"'config' must be a pattern string (FILE#KEYS), a table "
                    f"or a list of these, got {describe(item)}",
                )

    def _config_file(self, op: str, key: str, spec: str) -> None:
        """A config file is patched in the run dir: its path must stay there."""
        path = spec.strip().lstrip("-").strip().partition("#")[0].strip()
        problem = file_util.path_problem(path)
        if problem:
            self.fail(
                op,
                key,
                f"config file '{path}' {problem}: config files are patched in "
                "the run dir, so use a path relative to the project dir, "
                "inside it (e.g. train.py#lr)",
            )

    def _sourcecode(self, op: str, key: str, val: Any) -> None:
        from . import file_select

        if isinstance(val, str):
            rules = [val]
        elif isinstance(val, list):
            rules = val
        else:
            self.fail(
                op,
                key,
                f"'sourcecode' must be a rule string or a list of rules, got {describe(val)}",
            )
        for rule in rules:
            try:
                file_select.parse_rule(rule)
            except StageError as e:
                self.fail(op, key, f"bad {e}")

    def _depends(self, op: str, key: str, val: Any) -> None:
        for item in val if isinstance(val, list) else [val]:
            try:
                check_dependency(item)
            except DependencyError as e:
                self.fail(op, key, str(e))

    def _summary(self, op: str, key: str, val: Any) -> None:
        if isinstance(val, dict):
            unknown = [k for k in val if k != "filename"]
            if unknown:
                self.fail(
                    op, key, f"unknown 'summary' key '{unknown[0]}' (known: filename)"
                )
            val = val.get("filename")
        if not isinstance(val, str) or not val:
            self.fail(
                op,
                key,
                f"'summary' must be a file name or a table with 'filename', "
                f"got {describe(val)}",
            )

    def _output_summary(self, op: str, key: str, val: Any) -> None:
        if val is False:
            return
        if not isinstance(val, str):
            self.fail(
                op,
                key,
                f"'{key}' must be a regular expression or false, got {describe(val)}",
            )
        try:
            re.compile(val)
        except re.error as e:
            self.fail(op, key, f"'{key}' is not a valid regular expression: {e}")

    def _output_scalars(self, op: str, key: str, val: Any) -> None:
        problem = scalars_spec.output_scalars_problem(val)
        if problem:
            self.fail(op, key, f"'{key}' {problem}")

    def _scalars_file(self, op: str, key: str, val: Any) -> None:
        problem = scalars_spec.scalars_file_problem(val)
        if problem:
            self.fail(op, key, f"'{key}' {problem}")

    def _provenance(self, op: str, key: str, val: Any) -> None:
        from .provenance_spec import check_setting

        problem = check_setting(val)
        if problem:
            self.fail(op, key, f"'{key}' {problem}")

    def _listing(self, op: str, key: str, val: Any) -> None:
        if not isinstance(val, (bool, str, list, dict)):
            self.fail(
                op,
                key,
                f"'listing' must be a boolean, string, list or table, got {describe(val)}",
            )

    # -- error

    def fail(
        self, op: str | None, key: str | None, msg: str, line: int | None = None
    ) -> NoReturn:
        line = toml_lines.key_line(self.lines, op, key) if line is None else line + 1
        path = _display_path(self.path)
        where = f"{path}:{line}" if line else path
        prefix = f"op '{op}': " if op else ""
        raise GagefileError(f"{where}: {prefix}{msg}")


_CHECKS = {
    "config": _Validator._config,
    "default": _Validator._bool,
    "depends": _Validator._depends,
    "description": _Validator._str,
    "env": _Validator._env,
    "exec": _Validator._exec,
    "listing": _Validator._listing,
    "output-scalars": _Validator._output_scalars,
    "output-summary": _Validator._output_summary,
    "provenance": _Validator._provenance,
    "scalars-file": _Validator._scalars_file,
    "slurm": _Validator._slurm,
    "sourcecode": _Validator._sourcecode,
    "summary": _Validator._summary,
    "version": _Validator._version,
}


def _op_name_problem(name: str) -> str | None:
    if not name.strip():
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "has a control character (newline, tab, ...)"
    if "=" in name:
        return "has '=' (the command line reads NAME=VALUE as config)"
    return None


# ---------------------------------------------------------------------------
# Op command


def op_ref(gagefile: Gagefile, opdef: OpDef) -> OpRef:
    """OpRef of an op: namespace is the project dir name."""
    version = opdef.data.get("version")
    return OpRef(
        os.path.basename(gagefile.project_dir),
        opdef.name,
        str(version) if version is not None else None,
    )
