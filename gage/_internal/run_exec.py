"""Spawn a process and capture its output with a per-line time index.

Output goes to an output file (the process's stdout and stderr lines, in
the order they were read) and an index file with one line per output
line: `<timestamp> <stream>`, where timestamp is microseconds since the
epoch and stream is 0 for stdout, 1 for stderr. A partial last line is
kept (written without a trailing newline).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import IO, Callable

__all__ = ["exec_proc", "ExecError"]


class ExecError(Exception):
    """The command could not be started (missing executable, ...)."""


def exec_proc(
    args: list[str],
    cwd: str,
    env: dict[str, str],
    output_path: str,
    quiet: bool = False,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> int:
    """Run `args` in `cwd`, capture output to `output_path` and its index.

    Returns the exit code (negative for a signal, as subprocess does).
    Output is echoed to this process's stdout/stderr unless `quiet`.
    """
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    try:
        p = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except (FileNotFoundError, PermissionError, OSError) as e:
        raise ExecError(_start_error(args, e)) from None
    if on_start:
        on_start(p)
    with open(output_path, "wb") as out, open(output_path + ".index", "wb") as index:
        lock = threading.Lock()
        echo = (None, None) if quiet else (_stdout_buffer(), _stderr_buffer())
        threads = [
            threading.Thread(
                target=_copy_lines,
                args=(stream, n, out, index, lock, echo[n]),
                daemon=True,
            )
            for n, stream in enumerate((p.stdout, p.stderr))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return p.wait()


def _start_error(args: list[str], e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f"Cannot run '{args[0]}': command not found"
    return f"Cannot run '{args[0]}': {e.strerror or e}"


def _stdout_buffer() -> IO[bytes] | None:
    return getattr(sys.stdout, "buffer", None)


def _stderr_buffer() -> IO[bytes] | None:
    return getattr(sys.stderr, "buffer", None)


def _copy_lines(
    stream: IO[bytes],
    stream_n: int,
    out: IO[bytes],
    index: IO[bytes],
    lock: threading.Lock,
    echo: IO[bytes] | None,
) -> None:
    tag = b" %d\n" % stream_n
    for line in iter(stream.readline, b""):
        ts = time.time_ns() // 1000
        with lock:
            out.write(line)
            index.write(b"%d" % ts + tag)
            out.flush()
            index.flush()
        if echo:
            try:
                echo.write(line)
                echo.flush()
            except (OSError, ValueError):
                pass
    stream.close()
