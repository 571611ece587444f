"""A run's summary: metrics and attributes the run reports.

Read when a run is finalized, from two places, the file last:

- the output: a JSON object after the last line matching the op's
  `output-summary` regex (default `--- summary ---`);
- the op's `summary` file in the run dir (default `summary.json`; a
  `.toml` file is read as TOML).

The result is written to `summary.json` in meta.
"""

from __future__ import annotations

import os
from typing import Any

from . import file_util, run_meta
from .types import OpDef, Run

__all__ = ["SUMMARY_MARKER", "read_run_summary"]

SUMMARY_MARKER = r"^--- summary ---[ \t]*$"


def read_run_summary(run: Run, opdef: OpDef, log: Any) -> None:
    """Summary from the output block and the run's summary file, file last."""
    summary: dict[str, Any] = {}
    marker = opdef.data.get("output-summary", SUMMARY_MARKER)
    if marker is not False:
        summary.update(_output_summary(run, str(marker), log))
    summary.update(_file_summary(run, opdef.data.get("summary"), log))
    if summary:
        run_meta.write_summary(run, summary)


def _output_summary(run: Run, marker: str, log: Any) -> dict[str, Any]:
    import json
    import re

    output, _index = run_meta.output_paths(run, "run")
    try:
        with open(output, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    try:
        pattern = re.compile(marker, re.MULTILINE)
    except re.error as e:
        log.info(f"WARNING: output-summary {marker!r} is not a valid regex: {e}")
        return {}
    match = None
    for match in pattern.finditer(text):
        pass
    if match is None:
        return {}
    rest = text[match.end() :].lstrip()
    try:
        data, _end = json.JSONDecoder().raw_decode(rest)
    except (ValueError, RecursionError) as e:
        log.info(f"WARNING: summary block in output is not valid JSON: {e}")
        return {}
    if not isinstance(data, dict):
        log.info("WARNING: summary block in output is not a JSON object")
        return {}
    log.info(f"Read summary from output ({len(data)} keys)")
    return data


def _file_summary(run: Run, filename: Any, log: Any) -> dict[str, Any]:
    name = str(filename or "summary.json")
    path = os.path.normpath(os.path.join(run.run_dir, name))
    if not path.startswith(run.run_dir + os.sep):
        log.info(f"WARNING: summary file {name} is outside the run dir: ignored")
        return {}
    try:
        data = _load_summary_file(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as e:
        log.info(f"WARNING: cannot read summary file {name}: {e}")
        return {}
    if not isinstance(data, dict):
        log.info(f"WARNING: summary file {name} does not hold an object: ignored")
        return {}
    log.info(f"Read summary from {name} ({len(data)} keys)")
    return data


def _load_summary_file(path: str) -> Any:
    # The op made this file: it may be a FIFO or a link to a device.
    with file_util.open_regular(path) as f:
        data = f.read()
    if path.endswith(".toml"):
        return file_util.tomllib().loads(data.decode("utf-8"))
    import json

    return json.loads(data.decode("utf-8"))
