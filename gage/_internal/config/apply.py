"""Apply a run's config: write its values into the staged copies of the
config files in the run dir (each format's `patch`), record the diff in
`log/patched` and the modified files in `log/files`. `patched_texts`
gives the same texts in memory (inputs are decided before staging).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from typing import Any

from ..store.run_meta import (
    FileEvent,
    append_files_log,
    read_config,
    read_opdef,
    runner_log,
    write_patched,
)
from ..types import ConfigError, OpDef, Run
from ..util.file_util import is_inside, write_atomic
from .run_config import (
    ConfigValue,
    coerce,
    file_format,
    read_file_config,
    read_file_text,
)

__all__ = ["apply_run_config", "patched_texts", "same_value"]


def apply_run_config(run: Run, opdef: OpDef | None = None) -> None:
    """Write the run config (`config.json`) into the staged files.

    Files are patched in the run dir (never in the project). The unified
    diff goes to `log/patched`; modified files are logged in `log/files`
    so the manifest has the digests of the patched files.
    """
    config = read_config(run)
    if not config:
        return
    log = runner_log(run)
    log.info("Applying config (see log/patched in the meta dir for details)")
    opdef = opdef or read_opdef(run)
    diffs = []
    events = []
    for path, changes, old, new in _patches(run.run_dir, opdef, config):
        full = os.path.join(run.run_dir, path)
        if not is_inside(run.run_dir, full):
            raise ConfigError(
                f"Cannot apply config to {path}: it is outside the run dir "
                f"{run.run_dir} (an absolute path, '..' or a link to a "
                "directory outside): config files must be in the run dir",
                op=opdef.name,
                path=path,
            )
        mode = stat.S_IMODE(os.stat(full).st_mode)
        write_atomic(full, new.encode("utf-8"), mode)
        diffs.append(_diff(path, old, new))
        events.append(FileEvent("m", "s", os.stat(full).st_mtime_ns, path))
        log.info(f"Patched {path}: {', '.join(sorted(changes))}")
    write_patched(run, "".join(diffs))
    append_files_log(run, events)
    if not events:
        log.info("Config is the same as the source code: nothing patched")


def patched_texts(root: str, opdef: OpDef, config: dict[str, Any]) -> dict[str, str]:
    """Path -> text of each config file under `root` that `config` changes,
    as applying it would write it (nothing is written)."""
    return {path: new for path, _c, _old, new in _patches(root, opdef, config)}


def _patches(
    root: str, opdef: OpDef, config: dict[str, Any]
) -> list[tuple[str, dict[str, Any], str, str]]:
    """(path, changes, old text, new text) per file that config changes."""
    by_file = _changes_by_file(config, read_file_config(root, opdef), opdef)
    result = []
    for path, changes in sorted(by_file.items()):
        old = read_file_text(root, path)
        new = _patch_text(old, changes, path)
        if new != old:
            result.append((path, changes, old, new))
    return result


def _changes_by_file(
    config: dict[str, Any], keys: dict[str, ConfigValue], opdef: OpDef
) -> dict[str, dict[str, Any]]:
    """File -> {file key: new value} for values that differ from the file."""
    by_file: dict[str, dict[str, Any]] = {}
    for name, val in config.items():
        cv = keys.get(name)
        if cv is None:
            raise ConfigError(
                f"Cannot apply config key '{name}': it is not in the staged "
                f"source code of op '{opdef.name}' (check its sourcecode and "
                "config rules)"
            )
        for loc in cv.locations():
            loc_val = coerce(val, loc.value, name, loc.file)
            if not same_value(loc_val, loc.value):
                by_file.setdefault(loc.file, {})[loc.file_key] = loc_val
    return by_file


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same types throughout (`1 != 1.0 != True`)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    return a == b


def _patch_text(text: str, changes: dict[str, Any], path: str) -> str:
    try:
        return file_format(path).patch(text, changes)
    except ConfigError as e:
        raise ConfigError(f"Cannot apply config to {path}: {e}") from None


def _diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        _lines(old),
        _lines(new),
        fromfile=path,
        tofile=path,
        n=0,
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        for line in lines
    )


def _lines(text: str) -> list[str]:
    return re.findall(r"[^\n]*\n|[^\n]+$", text)
