"""Capture a run's scalars as it goes: from its output and its JSON lines.

While a run's command runs, a thread reads what was added to the run's
output file (`output/40_run`, written by `run_exec`) and to the op's
`scalars-file` every `INTERVAL` seconds, finds scalars in whole lines
and appends them to meta (`scalars.Recorder`). It reads the files the
output capture wrote, so it never sits between the run and its output:
a run that prints a lot is not held up by a pattern (a block of lines
is searched at a time, in C), and when it stops the rest is read.

Output patterns, per op (`output-scalars` in gage.toml):

- not set: the default patterns. A line that starts with `step N` or
  `epoch N` (any case, `step: N`, `Epoch 3/10` too) sets the step, and
  the `KEY=VALUE` or `KEY: VALUE` pairs in the rest of that line are
  scalars at that step (`step 10: loss=0.31 acc=0.9`). A line that is
  only `KEY: VALUE` (`loss: 0.31`) is a scalar at the last step set.
- a regex or a list of them: each match's named groups are scalars
  (`(?P<loss>...)`), and a group named `step` sets the step.
- `false`: no scalars from the output.

A scalar whose run has set no step yet takes its own count as its step
(0, 1, 2, ...). `scalars-file` lines are JSON objects
(`{"step": 10, "loss": 0.31}`): numbers are scalars, `step` their step.

Bounds: a line longer than `MAX_LINE` bytes is not searched; at most
`scalars.MAX_KEYS` keys and `scalars.MAX_POINTS` points are kept (the
runner log says how many were dropped).
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Iterable

from ..store import run_meta
from ..types import OpDef, Run
from ..util import file_util
from .scalars import Recorder

__all__ = [
    "DEFAULT_PATTERN",
    "Capture",
    "compile_patterns",
    "start_capture",
]

INTERVAL = 0.5
MAX_LINE = 65536
_READ = 1 << 18  # a block is searched holding the GIL: keep it short

NUMBER = (
    r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])"
    r"|[-+]?(?i:nan|inf)\b"
)
KEY = r"[A-Za-z_][\w.\-/]*"

DEFAULT_PATTERN = re.compile(
    rf"\n[ \t]*(?:(?P<_sw>(?i:step|epoch))\b[ \t:=#]*(?P<_sn>\d+)\b(?P<_rest>[^\n]*)"
    # (?=(...))(?P=_k): the key as an atomic group, so a line that
    # starts with a long word is scanned once, never backtracked.
    rf"|(?=(?P<_k>{KEY}))(?P=_k)[ \t]*:[ \t]*(?P<_v>{NUMBER})[ \t]*\r?(?=\n))"
)
"""The default patterns, searched over a block of lines with a newline
before and after it (each match starts at a line's newline, which lets
the search skip to the next line in C)."""

_PAIR = re.compile(rf"(?<![\w.\-/])(?P<k>{KEY})[ \t]*[=:][ \t]*(?P<v>{NUMBER})")


def compile_patterns(spec: Any) -> list[re.Pattern[str]] | None:
    """The op's `output-scalars` as compiled patterns: None for the
    defaults, [] for none (`false`). Raises re.error or ValueError for a
    pattern that does not compile or has no named group (gage.toml is
    checked at load with this)."""
    if spec is None:
        return None
    if spec is False:
        return []
    specs = [spec] if isinstance(spec, str) else list(spec)
    compiled = []
    for s in specs:
        if not isinstance(s, str):
            raise ValueError(f"{s!r} is not a string")
        p = re.compile(s, re.M)
        if not p.groupindex:
            raise ValueError(
                f"{s!r} has no named group: name the value, as in (?P<loss>\\S+)"
            )
        compiled.append(p)
    return compiled


def start_capture(run: Run, opdef: OpDef, log: Any) -> Capture | None:
    """A started capture thread for the run, or None when the op turns
    off both sources (`output-scalars = false`, no `scalars-file`)."""
    try:
        patterns = compile_patterns(opdef.data.get("output-scalars"))
    except (re.error, ValueError) as e:
        log.info(f"WARNING: output-scalars: {e}: no scalars from the output")
        patterns = []
    scalars_file = opdef.data.get("scalars-file")
    if patterns == [] and not scalars_file:
        return None
    output, _index = run_meta.output_paths(run, "run")
    try:
        cap = Capture(run, output, patterns, scalars_file, log)
    except (OSError, ValueError) as e:  # scalars meta that cannot be read
        log.info(f"WARNING: scalars: {e}: none recorded")
        return None
    cap.start()
    return cap


class Capture:
    """The thread that reads a run's output and scalars file."""

    def __init__(
        self,
        run: Run,
        output: str,
        patterns: list[re.Pattern[str]] | None,
        scalars_file: str | None,
        log: Any,
    ):
        self.run = run
        self.log = log
        self.recorder = Recorder(run)
        self.patterns = patterns
        self.step: int | None = None
        self.output = _Tail(output) if patterns != [] else None
        self.jsonl = _jsonl_tail(run, scalars_file, log)
        self.bad_lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Read what is left, write it, and end the thread."""
        self._stop.set()
        self._thread.join()
        self._pass(final=True)
        rec = self.recorder
        if rec.dropped:
            self.log.info(
                f"WARNING: scalars: {rec.dropped} points dropped (a run keeps "
                "at most 1000 keys and 10000000 points)"
            )
        if self.bad_lines:
            self.log.info(
                f"WARNING: scalars-file: {self.bad_lines} lines that are not "
                "JSON objects were ignored"
            )

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                self._pass()
            except OSError as e:  # a full disk: the run goes on
                self.log.info(f"WARNING: scalars: {e}")
                return

    def _pass(self, final: bool = False) -> None:
        if self.output:
            for data in self.output.read(final):
                self._parse_output(data)
        if self.jsonl:
            for data in self.jsonl.read(final):
                self._parse_jsonl(data.decode("utf-8", errors="replace"))
        self.recorder.flush()

    def _parse_output(self, data: bytes) -> None:
        if self.patterns is None:
            self._parse_default(data)
        else:
            self._parse_custom(data.decode("utf-8", errors="replace"), self.patterns)

    def _parse_default(self, data: bytes) -> None:
        for m in _default_matches(data):
            if m.end() - m.start() > MAX_LINE:
                continue
            sn = m.group("_sn")
            if sn is not None:
                self.step = int(sn)
                for pair in _PAIR.finditer(m.group("_rest")):
                    self.recorder.add(
                        pair.group("k"), self.step, float(pair.group("v"))
                    )
            else:
                self.recorder.add(m.group("_k"), self.step, float(m.group("_v")))

    def _parse_custom(self, text: str, patterns: list[re.Pattern[str]]) -> None:
        if len(text) > MAX_LINE:
            lines = text.split("\n")
            if any(len(line) > MAX_LINE for line in lines):
                text = "\n".join(line for line in lines if len(line) <= MAX_LINE)
        matches = sorted(
            (m.start(), i, m) for i, p in enumerate(patterns) for m in p.finditer(text)
        )
        for _start, _i, m in matches:
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            step = _to_int(groups.pop("step", None))
            if step is not None:
                self.step = step
            for key, val in groups.items():
                num = _to_float(val)
                if num is not None:
                    self.recorder.add(key, self.step, num)

    def _parse_jsonl(self, text: str) -> None:
        for line in text.splitlines():
            if not line.strip() or len(line) > MAX_LINE:
                continue
            try:
                data = json.loads(line)
            except (ValueError, RecursionError):
                data = None
            if not isinstance(data, dict):
                self.bad_lines += 1
                continue
            step = data.get("step")
            step = (
                step if isinstance(step, int) and not isinstance(step, bool) else None
            )
            for key, val in data.items():
                if key == "step" or isinstance(val, bool):
                    continue
                if isinstance(val, (int, float)):
                    self.recorder.add(str(key), step, float(val))


def _default_matches(data: bytes) -> Iterable[re.Match[str]]:
    """Matches of the default patterns in a block of lines, in order.

    Where few lines could match, those lines are found in C (a `:` with
    bytes.find, a line starting with step/epoch with one regex search)
    and matched one by one; where many lines hold a `:` (one in 8), the
    block is searched whole. Either way the lines between are skipped
    in C, never visited in Python."""
    lines = _candidate_lines(data)
    if lines is None:
        yield from DEFAULT_PATTERN.finditer(
            "\n" + data.decode("utf-8", errors="replace") + "\n"
        )
        return
    for start, end in lines:
        line = data[start:end].decode("utf-8", errors="replace")
        m = DEFAULT_PATTERN.match("\n" + line + "\n")
        if m:
            yield m


_STEP_LINE = re.compile(rb"\n[ \t]*(?i:step|epoch)")


def _candidate_lines(data: bytes) -> list[tuple[int, int]] | None:
    """(start, end) of each line that holds a `:` or starts with step or
    epoch, in order; None when more than one line in 8 holds a `:`."""
    size = len(data)
    limit = size // 800 + 8  # 100-byte lines: one in 8
    found: set[tuple[int, int]] = set()
    pos = data.find(b":")
    while pos >= 0:
        if len(found) > limit:
            return None
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        end = size if end < 0 else end
        found.add((start, end))
        pos = data.find(b":", end)
    for m in _STEP_LINE.finditer(b"\n" + data):
        start = m.start()  # in `data`: the newline before is not there
        end = data.find(b"\n", start)
        found.add((start, size if end < 0 else end))
    return sorted(found)


def _to_int(val: str | None) -> int | None:
    try:
        return int(float(val)) if val is not None else None
    except (ValueError, OverflowError):
        return None


def _to_float(val: str) -> float | None:
    try:
        return float(val.strip().rstrip(",;"))
    except ValueError:
        return None


class _Tail:
    """Whole lines added to a file since the last read, as text.

    A partial last line waits for the next read (all is read when
    `final`). A line longer than MAX_LINE is skipped: the bytes up to its
    end are dropped, so memory stays bounded.
    """

    def __init__(self, path: str, root: str | None = None):
        self.path = path
        self.root = root  # the file must resolve inside it (no link out)
        self.offset = 0
        self.carry = b""
        self.skipping = False

    def read(self, final: bool) -> Iterable[bytes]:
        if self.root and not _resolves_inside(self.path, self.root):
            return
        try:
            with file_util.open_regular(self.path) as f:
                if os.fstat(f.fileno()).st_size < self.offset:
                    self.offset, self.carry = 0, b""  # replaced: start over
                f.seek(self.offset)
                while True:
                    block = f.read(_READ)
                    if not block:
                        break
                    self.offset += len(block)
                    data = self._lines(block)
                    if data:
                        yield data
                    if not final and len(block) < _READ:
                        break
        except (FileNotFoundError, file_util.NotRegularFile):
            return
        if final and self.carry and not self.skipping:
            yield self.carry
        if final:
            self.carry = b""

    def _lines(self, block: bytes) -> bytes:
        end = block.rfind(b"\n") + 1
        if not end:
            self._keep(block)
            return b""
        head, self.carry = self.carry + block[:end], b""
        if self.skipping:
            head = head[head.find(b"\n") + 1 :]
            self.skipping = False
        self._keep(block[end:])
        return head

    def _keep(self, part: bytes) -> None:
        if self.skipping:
            return
        self.carry += part
        if len(self.carry) > MAX_LINE:
            self.carry, self.skipping = b"", True


def _jsonl_tail(run: Run, name: str | None, log: Any) -> _Tail | None:
    if not name:
        return None
    path = os.path.normpath(os.path.join(run.run_dir, str(name)))
    if not path.startswith(run.run_dir + os.sep):
        log.info(f"WARNING: scalars-file {name} is outside the run dir: ignored")
        return None
    return _Tail(path, run.run_dir)


def _resolves_inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    return real.startswith(os.path.realpath(root) + os.sep)
