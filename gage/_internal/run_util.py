"""The run lifecycle, in one import: the seed's API.

    make_run -> init_run_meta -> stage_run -> start_run -> finalize_run

`from gage._internal.run_util import *` gives every phase. Each lives in
the module that owns it:

- `run_stage`: `make_run`, `init_run_meta`, `stage_run` and its phases
  (`copy_sourcecode`, `apply_config`, `init_runtime`, `resolve_deps`,
  `finalize_staged_run`), `preview_sourcecode`
- `run_start`: `start_run`, `finalize_run`
- `run_verify`: `verify_run`
- `runs`: `load_run`, `run_status`
- `run_meta`: `run_meta_dir`, `run_meta_path`
"""

from __future__ import annotations

from .home.runs import RUN_STATUSES, load_run, run_status
from .lifecycle.run_stage import (
    SourcecodePreview,
    apply_config,
    copy_sourcecode,
    finalize_staged_run,
    init_run_meta,
    init_runtime,
    make_run,
    preview_sourcecode,
    resolve_deps,
    sourcecode_rules,
    stage_run,
)
from .lifecycle.run_start import finalize_run, start_run
from .lifecycle.run_verify import Difference, verify_run
from .store.run_meta import run_meta_dir, run_meta_path

__all__ = [
    "Difference",
    "RUN_STATUSES",
    "SourcecodePreview",
    "apply_config",
    "copy_sourcecode",
    "finalize_run",
    "finalize_staged_run",
    "init_run_meta",
    "init_runtime",
    "load_run",
    "make_run",
    "preview_sourcecode",
    "resolve_deps",
    "run_meta_dir",
    "run_meta_path",
    "run_status",
    "sourcecode_rules",
    "stage_run",
    "start_run",
    "verify_run",
]
