"""A run's summary: metrics and attributes the run reports.

Read when a run is finalized, from two places, the file last:

- the output: a JSON object after the last line matching the op's
  `output-summary` regex (default `--- summary ---`). The output is read
  backwards a block at a time, so finding the block costs one read of
  the end of the output whatever its size; the JSON after the marker is
  read up to `MAX_SUMMARY_BYTES`;
- the op's `summary` file in the run dir (default `summary.json`; a
  `.toml` file is read as TOML).

Both start from the last value of each of the run's scalars (`scalars`),
so a run that logs `loss` per step has its last loss in the summary
unless it reports one itself.

The result is written to `summary.json` in meta.
"""

from __future__ import annotations

import json
import os
import re
from typing import IO, Any

from ..store import run_meta
from ..types import OpDef, Run
from ..util import file_util
from . import scalars

__all__ = ["SUMMARY_MARKER", "read_run_summary"]

SUMMARY_MARKER = r"^--- summary ---[ \t]*$"


def read_run_summary(run: Run, opdef: OpDef, log: Any) -> None:
    """Summary from the output block and the run's summary file, file last."""
    summary: dict[str, Any] = dict(scalars.last_values(run))
    marker = opdef.data.get("output-summary", SUMMARY_MARKER)
    if marker is not False:
        summary.update(_output_summary(run, str(marker), log))
    summary.update(_file_summary(run, opdef.data.get("summary"), log))
    if summary:
        run_meta.write_summary(run, summary)


def _output_summary(run: Run, marker: str, log: Any) -> dict[str, Any]:

    try:
        pattern = re.compile(marker, re.MULTILINE)
    except re.error as e:
        log.info(f"WARNING: output-summary {marker!r} is not a valid regex: {e}")
        return {}
    output, _index = run_meta.output_paths(run, "run")
    try:
        with file_util.open_regular(output) as f:
            end = _last_match_end(f, pattern)
            if end is None:
                return {}
            f.seek(end)
            block = f.read(MAX_SUMMARY_BYTES + 1)
    except FileNotFoundError:
        return {}
    rest = block[:MAX_SUMMARY_BYTES].decode("utf-8", errors="replace").lstrip()
    try:
        data, _end = json.JSONDecoder().raw_decode(rest)
    except (ValueError, RecursionError) as e:
        if len(block) > MAX_SUMMARY_BYTES:
            log.info(
                "WARNING: summary block in output is not valid JSON within "
                f"{MAX_SUMMARY_BYTES} bytes: ignored"
            )
        else:
            log.info(f"WARNING: summary block in output is not valid JSON: {e}")
        return {}
    if not isinstance(data, dict):
        log.info("WARNING: summary block in output is not a JSON object")
        return {}
    log.info(f"Read summary from output ({len(data)} keys)")
    return data


MAX_SUMMARY_BYTES = 1 << 20
"""The most of the output read after the summary marker."""

_BLOCK = 1 << 20
_MAX_LINE = 1 << 20


def _last_match_end(f: IO[bytes], pattern: re.Pattern[str]) -> int | None:
    """File offset just after the last match of `pattern` (MULTILINE).

    The file is read backwards a block at a time, whole lines at a time,
    so memory stays bounded whatever the output's size, and a summary at
    the end is found after reading one block. A match must lie within one
    line; lines longer than `_MAX_LINE` bytes are not searched.
    """
    pos = f.seek(0, os.SEEK_END)
    carry = b""  # the end of a line that began before `pos`
    overlong = False  # that line is too long to search
    while pos > 0:
        start = max(0, pos - _BLOCK)
        f.seek(start)
        block = f.read(pos - start)
        pos = start
        first = block.find(b"\n") + 1 if start else 0
        if start and not first:
            if overlong or len(block) + len(carry) > _MAX_LINE:
                carry, overlong = b"", True
            else:
                carry = block + carry
            continue
        if overlong:
            region = block[first : block.rfind(b"\n") + 1]
        else:
            region = block[first:] + carry
        end = _region_match_end(region, pattern)
        if end is not None:
            return start + first + end
        carry, overlong = block[:first], False
    return None


def _region_match_end(region: bytes, pattern: re.Pattern[str]) -> int | None:
    text = region.decode("utf-8", errors="surrogateescape")
    match = None
    for match in pattern.finditer(text):
        pass
    if match is None:
        return None
    return len(text[: match.end()].encode("utf-8", errors="surrogateescape"))


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
        data = f.read(MAX_SUMMARY_BYTES + 1)
    if len(data) > MAX_SUMMARY_BYTES:
        raise ValueError(f"larger than {MAX_SUMMARY_BYTES} bytes")
    if path.endswith(".toml"):
        return file_util.tomllib().loads(data.decode("utf-8"))

    return json.loads(data.decode("utf-8"))
