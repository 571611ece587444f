"""Dependency specs: the one table of types and keys, the one validator.

A dependency is a table in an op's `depends` (see `run_deps` for what
each type does):

    { type = "project-files", files = "data/*.csv", target-path = "inputs" }
    { type = "run-files", run-select = "prepare", files = "model/**" }

`check_dependency` checks everything that can be known without looking
at files or runs: the type, the keys, the value of each key, that
patterns and target paths stay inside their root, the form of sha256
pins. gage.toml is checked with it when it is loaded (so `gage run
--preview` refuses a bad dependency before any run exists), and
`run_deps` checks an op def built by hand with `check_dependencies`, so
what it resolves is always a valid spec.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from ..types import DependencyError, OpDef, describe
from ..util.file_util import path_problem

__all__ = [
    "DEPENDENCY_KEYS",
    "DEPENDENCY_TYPES",
    "check_dependencies",
    "check_dependency",
    "dependency_where",
]

DEPENDENCY_KEYS = {
    "project-files": ("type", "files", "target-path", "link", "sha256"),
    "run-files": ("type", "run-select", "files", "target-path", "link", "sha256"),
}

DEPENDENCY_TYPES = tuple(DEPENDENCY_KEYS)

_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_dependencies(opdef: OpDef) -> None:
    """Raise DependencyError, naming the op and dependency, for the first
    dependency of `opdef` that `check_dependency` refuses."""
    val = opdef.data.get("depends")
    specs = [] if val is None else val if isinstance(val, list) else [val]
    for i, spec in enumerate(specs):
        try:
            check_dependency(spec)
        except DependencyError as e:
            raise DependencyError(
                f"{dependency_where(opdef.name, i, spec)}: {e}",
                op=opdef.name,
                key=e.key,
            ) from None


def dependency_where(op: str, i: int, spec: Any) -> str:
    """How messages name a dependency: `op 'train' depends[0] (run-files 'prepare')`."""
    if isinstance(spec, dict):
        what = spec.get("files") if spec.get("type") == "project-files" else None
        what = what or spec.get("run-select")
        if what is not None:
            return f"op '{op}' depends[{i}] ({spec.get('type')} {what!r})"
    return f"op '{op}' depends[{i}]"


def check_dependency(spec: Any) -> None:
    """Raise DependencyError (its message names the key and what to do)
    when `spec` is not a valid dependency table."""
    if not isinstance(spec, dict):
        _fail(
            "'depends' must be a table or a list of tables "
            '(e.g. { type = "project-files", files = "data/*" }), '
            f"got {describe(spec)}",
        )
    dep_type = spec.get("type")
    if dep_type is None:
        _fail(
            f"dependency {_inline(spec)} has no 'type' "
            f"(one of {', '.join(DEPENDENCY_TYPES)})",
            "type",
        )
    if dep_type not in DEPENDENCY_KEYS:
        _fail(
            f"unknown dependency type {dep_type!r} "
            f"(known types: {', '.join(DEPENDENCY_TYPES)})",
            "type",
        )
    known = DEPENDENCY_KEYS[dep_type]
    for key in spec:
        if key not in known:
            _fail(
                f"unknown key '{key}' in {dep_type} dependency "
                f"(known keys: {', '.join(known)})",
                key,
            )
    if dep_type == "project-files" and "files" not in spec:
        _fail("project-files needs 'files' (a glob or a list of globs)", "files")
    if dep_type == "run-files":
        select = spec.get("run-select")
        if not isinstance(select, str) or not select.strip():
            _fail(
                "run-files needs 'run-select' (an op name or a run id/name)",
                "run-select",
            )
    if "files" in spec:
        _check_files(spec["files"])
    _check_target_path(spec.get("target-path", ""))
    if not isinstance(spec.get("link", False), bool):
        _fail(f"'link' must be true or false, got {describe(spec['link'])}", "link")
    if "sha256" in spec:
        _check_pins(spec["sha256"])


def _fail(msg: str, key: str | None = None) -> NoReturn:
    raise DependencyError(msg, key=key)


def _check_files(val: Any) -> None:
    pats = [val] if isinstance(val, str) else val
    if (
        not isinstance(pats, list)
        or not pats
        or not all(isinstance(p, str) and p for p in pats)
    ):
        _fail(
            f"'files' must be a glob or a list of globs, got {describe(val)}", "files"
        )
    for pat in pats:
        _check_relpath(pat, "file pattern", "files")


def _check_target_path(val: Any) -> None:
    if not isinstance(val, str):
        _fail(f"'target-path' must be a string, got {describe(val)}", "target-path")
    if val not in ("", "."):
        _check_relpath(val, "target-path", "target-path")


def _check_relpath(path: str, what: str, key: str) -> None:
    """Refuse a path that is absolute, has a `..` part or a NUL."""
    problem = path_problem(path)
    if problem:
        _fail(f"{what} {path!r} {problem}{_REMEDY.get(problem, '')}", key)


_REMEDY = {
    "is absolute": ": use a path relative to its root",
    "uses '..'": " and would leave its root",
}


def _check_pins(val: Any) -> None:
    if isinstance(val, str):
        pins = {"": val}
    elif isinstance(val, dict):
        pins = val
    else:
        _fail(
            f"'sha256' must be a digest or a table path -> digest, got {describe(val)}",
            "sha256",
        )
    for path, digest in pins.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            what = f"sha256 pin for '{path}'" if path else "sha256 pin"
            _fail(
                f"{what} is not a sha256 hex digest (64 lowercase hex digits)", "sha256"
            )


def _inline(d: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {v!r}" for k, v in d.items()) + " }"
