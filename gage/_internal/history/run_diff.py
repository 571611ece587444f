"""What differs between two runs, and why a run ran.

`diff_runs(a, b)` compares, from meta only (nothing in the run dirs is
read or hashed): the op (name, definition digest, command), config,
dependencies (the upstream run each `run-files` dependency used, and
each dependency file by digest, from the manifests), source code,
runtime and generated files (by digest, from the manifests: changed,
added, removed) and summaries. `file_diff` gives a unified diff of one
file that differs, for text files (read only when asked).

`why_run(home, run)` answers "why did this run?": the completed run of
the same op, made before it, whose inputs differ least (the run it
would have matched with `--needed`), and what differs, per input
(`op_inputs.describe_changes`, the explanation `repro --dry` gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..home import runs
from ..store import run_meta, run_records
from ..types import Run

__all__ = [
    "Change",
    "RunDiff",
    "Why",
    "diff_runs",
    "file_diff",
    "why_run",
]

_MAX_TEXT = 1_000_000
_FILE_SECTIONS = (("sources", "s"), ("runtime", "r"), ("generated", "g"))


@dataclass(frozen=True)
class Change:
    """One difference: `key` (a config key, path or name) from `old` to
    `new`; None for a side that does not have it."""

    key: str
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"


@dataclass(frozen=True)
class RunDiff:
    """Differences from run `a` to run `b`, by section."""

    a: Run
    b: Run
    op: tuple[Change, ...]
    config: tuple[Change, ...]
    upstream: tuple[Change, ...]
    deps: tuple[Change, ...]
    sources: tuple[Change, ...]
    runtime: tuple[Change, ...]
    generated: tuple[Change, ...]
    summary: tuple[Change, ...]
    git: tuple[Change, ...] = ()
    environment: tuple[Change, ...] = ()
    packages: tuple[Change, ...] = ()

    def same(self) -> bool:
        return not any(
            getattr(self, name)
            for name in (
                "op",
                "config",
                "upstream",
                "deps",
                "sources",
                "runtime",
                "generated",
                "summary",
                "git",
                "environment",
                "packages",
            )
        )


def diff_runs(a: Run, b: Run) -> RunDiff:
    """What differs from run `a` to run `b` (see the module doc)."""
    ma, mb = _manifest(a), _manifest(b)
    files = {
        name: _dict_changes(ma.get(t, {}), mb.get(t, {})) for name, t in _FILE_SECTIONS
    }
    return RunDiff(
        a,
        b,
        _op_changes(a, b),
        _dict_changes(run_meta.read_config(a), run_meta.read_config(b)),
        _upstream_changes(a, b),
        _dict_changes(ma.get("d", {}), mb.get("d", {})),
        files["sources"],
        files["runtime"],
        files["generated"],
        _dict_changes(run_meta.read_summary(a), run_meta.read_summary(b)),
        *_provenance_changes(a, b),
    )


def _manifest(run: Run) -> dict[str, dict[str, str]]:
    by_type: dict[str, dict[str, str]] = {}
    for e in run_meta.read_manifest(run):
        by_type.setdefault(e.type, {})[e.path] = e.sha256
    return by_type


_NONE = object()


def _dict_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[Change, ...]:
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _NONE), new.get(key, _NONE)
        if a is _NONE or b is _NONE or a != b or type(a) is not type(b):
            changes.append(
                Change(key, None if a is _NONE else a, None if b is _NONE else b)
            )
    return tuple(changes)


def _op_changes(a: Run, b: Run) -> tuple[Change, ...]:
    from ..lifecycle import op_inputs

    def facts(run: Run) -> dict[str, Any]:
        out: dict[str, Any] = {"op": runs.op_name(run)}
        try:
            out["definition"] = op_inputs.opdef_digest(run_meta.read_opdef(run))
        except (OSError, ValueError, KeyError):
            pass
        try:
            out["command"] = " ".join(run_meta.read_proc_cmd(run))
        except (OSError, ValueError):
            pass
        return out

    return _dict_changes(facts(a), facts(b))


def _provenance_changes(
    a: Run, b: Run
) -> tuple[tuple[Change, ...], tuple[Change, ...], tuple[Change, ...]]:
    """Git (commit, branch, dirty, diff digest), environment (python,
    host) and package (name -> version) changes."""
    fa, fb = _provenance(a), _provenance(b)
    return (
        _dict_changes(fa[0], fb[0]),
        _dict_changes(fa[1], fb[1]),
        _dict_changes(fa[2], fb[2]),
    )


def _provenance(run: Run) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    def read(f: Any) -> dict[str, Any]:
        try:
            data = f(run)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    git_data, env_data = read(run_records.read_git), read(run_records.read_environment)
    keys = ("status", "commit", "branch", "dirty")
    git = {k: v for k, v in git_data.items() if k in keys}
    if git_data.get("dirty"):
        git["diff"] = (git_data.get("diff") or {}).get("sha256")
    python = env_data.get("python") or {}
    env = {
        "python": python.get("version"),
        "host": (env_data.get("host") or {}).get("host"),
    }
    packages = python.get("packages") or {}
    return git, {k: v for k, v in env.items() if v is not None}, packages


def _upstream_changes(a: Run, b: Run) -> tuple[Change, ...]:
    """Per dependency (by its place in the op), the upstream run it used
    when either side used one."""
    da, db = run_meta.read_deps(a), run_meta.read_deps(b)
    changes = []
    for i in range(max(len(da), len(db))):
        sa = _upstream(da[i]) if i < len(da) else None
        sb = _upstream(db[i]) if i < len(db) else None
        if (sa or sb) and (sa or {}).get("id") != (sb or {}).get("id"):
            dep = da[i] if i < len(da) else db[i]
            spec = dep.get("spec") or {}
            key = str(spec.get("run-select") or (sa or sb or {}).get("op") or i)
            changes.append(Change(key, sa, sb))
    return tuple(changes)


def _upstream(dep: dict[str, Any]) -> dict[str, Any] | None:
    source = dep.get("source") or {}
    if source.get("type") != "run":
        return None
    return {k: source.get(k) for k in ("id", "name", "op")}


# ---------------------------------------------------------------------------
# File diffs


def file_diff(a: Run, b: Run, path: str) -> str | None:
    """A unified diff of `path` from run `a` to run `b` (a side without
    the file is empty), or None when either side is binary, too big or
    unreadable."""
    import difflib
    import os

    texts = []
    for run in (a, b):
        full = os.path.join(run.run_dir, path)
        if not os.path.lexists(full):
            texts.append("")
            continue
        text = _read_text(full)
        if text is None:
            return None
        texts.append(text)
    lines = difflib.unified_diff(
        texts[0].splitlines(keepends=True),
        texts[1].splitlines(keepends=True),
        f"a/{path}",
        f"b/{path}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _read_text(path: str) -> str | None:
    import os
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_TEXT:
            return None
        with open(path, "rb") as f:
            data = f.read(_MAX_TEXT + 1)
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------
# Why a run ran


@dataclass(frozen=True)
class Why:
    """`run` and the completed run it would have matched (`match`, None
    when no completed run of its op came before it), with what differs
    (empty when the inputs are the same)."""

    run: Run
    match: Run | None
    changes: tuple[str, ...]


def why_run(home: str, run: Run, limit: int = 50) -> Why:
    """The closest completed run of `run`'s op made before it (among the
    newest `limit`), and what differs in their inputs."""
    from ..lifecycle import op_inputs

    inputs = _inputs(run)
    op = runs.op_name(run)
    before = []
    for other in runs.list_runs(home):
        if other.id == run.id:
            break
        before.append(other)
    best: tuple[int, Run, list[str]] | None = None
    seen = 0
    for other in reversed(before):
        if runs.op_name(other) != op or runs.run_status(other) != "completed":
            continue
        other_inputs = _inputs(other)
        if inputs is None or other_inputs is None:
            continue
        changes = op_inputs.describe_changes(other_inputs, inputs)
        if best is None or len(changes) < best[0]:
            best = (len(changes), other, changes)
        seen += 1
        if seen >= limit or not changes:
            break
    if best is None:
        return Why(run, None, ())
    return Why(run, best[1], tuple(best[2]))


def _inputs(run: Run):
    from ..lifecycle import op_inputs

    found = op_inputs.read_inputs(run)
    if found is not None:
        return found
    if run_meta.read_timestamp(run, "staged") is None:
        return None
    try:
        return op_inputs.staged_inputs(run)
    except (OSError, ValueError, KeyError):
        return None
