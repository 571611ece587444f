"""gage: stage and run machine-learning operations reproducibly.

The stable public API is re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Public names, imported on first use so `import gage` (and `gage --help`)
# stays light. `from gage import stage_run` works as usual.
_EXPORTS = {
    "GageError": "types",
    "GagefileError": "types",
    "ConfigError": "types",
    "DependencyError": "types",
    "RunError": "types",
    "StageError": "types",
    "VerifyError": "types",
    "RunLockedError": "types",
    "RunSelectError": "types",
    "OpRef": "types",
    "OpDef": "types",
    "OpCmd": "types",
    "Run": "types",
    "make_run": "run_util",
    "init_run_meta": "run_util",
    "stage_run": "run_util",
    "copy_sourcecode": "run_util",
    "apply_config": "run_util",
    "init_runtime": "run_util",
    "resolve_deps": "run_util",
    "finalize_staged_run": "run_util",
    "preview_sourcecode": "run_util",
    "load_run": "run_util",
    "start_run": "run_util",
    "finalize_run": "run_util",
    "run_status": "run_util",
    "verify_run": "run_util",
    "run_meta_dir": "run_util",
    "run_meta_path": "run_util",
    "preview_dependencies": "lifecycle.run_deps",
    "parse_assigns": "config.run_config",
    "read_project_config": "config.run_config",
    "resolve_config": "config.run_config",
    "find_gagefile": "project.gagefile",
    "load_gagefile": "project.gagefile",
    "read_gagefile": "project.gagefile",
    "op_cmd": "project.op_exec",
    "op_ref": "project.gagefile",
    "list_runs": "home.runs",
    "select_run": "home.runs",
    "run_record": "home.runs",
    "find_matching_run": "lifecycle.op_inputs",
    "op_inputs": "lifecycle.op_inputs",
    "find_run": "lifecycle.op_inputs",
    "compare": "history.run_compare",
    "CompareError": "history.run_compare",
    "diff_runs": "history.run_diff",
    "file_diff": "history.run_diff",
    "why_run": "history.run_diff",
    "plan_delete": "history.run_delete",
    "delete_runs": "history.run_delete",
    "describe_ops": "project.op_info",
    "select_runs": "home.runs_select",
    "WhereError": "home.run_where",
    "comment_run": "history.run_comments",
    "list_comments": "history.run_comments",
    "delete_comment": "history.run_comments",
    "archive_runs": "history.runs_archive",
    "restore_runs": "history.runs_archive",
    "plan_archive": "history.runs_archive",
    "plan_restore": "history.runs_archive",
    "archive_home": "history.runs_archive",
    "run_path": "history.run_files",
    "open_run_file": "history.run_files",
    "open_run": "history.run_files",
    "RemoteError": "types",
    "open_remote": "remote.api",
    "push_runs": "remote.api",
    "pull_runs": "remote.api",
    "pull_needed": "remote.api",
    "remote_runs": "remote.api",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    mod_name = _EXPORTS.get(name)
    if mod_name is None:
        raise AttributeError(f"module 'gage' has no attribute '{name}'")
    import importlib

    val = getattr(importlib.import_module(f"gage._internal.{mod_name}"), name)
    globals()[name] = val
    return val


def __dir__() -> list[str]:
    return sorted(__all__)
