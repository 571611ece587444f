"""Spawn a process and capture its output with a per-line time index.

Output goes to an output file (the process's stdout and stderr lines, in
the order they were read) and an index file with one line per output
line: `<timestamp> <stream>`, where timestamp is microseconds since the
epoch and stream is 0 for stdout, 1 for stderr. A partial last line is
kept: written without a trailing newline when it is the last line of the
file, ended with one when the other stream writes after it.

Each stream is read by its own thread in chunks, so a fast process never
blocks on a full pipe and each stream's lines keep their order. Chunks
are echoed live to this process's stdout/stderr as they arrive (a prompt
or a progress bar without a newline shows at once); the output file and
index get whole lines. Memory is bounded whatever the output: a line
longer than 1 MiB is written in parts as it arrives (still one line with
one index entry, unless the other stream writes in the middle of it). Lines of the two streams are interleaved in the
order they were read, which is as close to the order they were written
as two pipes allow.

While the process runs, SIGINT, SIGTERM and SIGHUP sent to this process
are forwarded to the child's process group (the child runs in its own
session, so a Ctrl-C in a terminal reaches it once, through the runner);
a second one, or the end of a grace period, sends SIGKILL to the group.

This module also tells whether a process is alive: `pid_alive` checks the
pid and, on Linux, the process start time, so a pid reused by another
process is not taken for the original.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable

__all__ = [
    "FORWARDED",
    "ExecError",
    "die_with_parent",
    "exec_proc",
    "kill_grace",
    "killpg",
    "pid_alive",
    "proc_start_time",
]

_CHUNK = 65536
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_FORWARDED = FORWARDED


class ExecError(Exception):
    """The command could not be started (missing executable, ...)."""


def exec_proc(
    args: list[str],
    cwd: str,
    env: dict[str, str],
    output_path: str,
    quiet: bool = False,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    on_signal: Callable[[int], None] | None = None,
    on_cut: Callable[[str], None] | None = None,
    early_signals: list[int] | None = None,
) -> int:
    """Run `args` in `cwd`, capture output to `output_path` and its index.

    Returns the exit code (negative for a signal, as subprocess does).
    Output is echoed to this process's stdout/stderr unless `quiet`.
    `on_start` is called with the process once it runs; `on_signal` with
    the number of each SIGINT/SIGTERM forwarded to it (handlers are only
    installed when called from the main thread). When the output file
    cannot be written (a full disk), the output that fit is kept, the
    pipes are still drained (the process never blocks on them) and
    `on_cut` is called once the process ended with a line saying where
    the output was cut. `early_signals`: signals the caller received
    before this call, passed on as soon as the process runs.

    A process that does not end on the signal it was passed gets SIGKILL
    (its whole process group) on a second signal, or after a grace
    period (`GAGE_KILL_GRACE` seconds, 10 by default); `on_signal` is
    called with SIGKILL then. While it runs, a watchdog process ends
    the process group if this process dies (see `_watchdog`).
    """
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    forward = _SignalForward(on_signal)
    forward.install()
    for sig in early_signals or ():
        forward.handle(sig, None)
    try:
        p = _spawn(args, cwd, env)
        forward.set_proc(p)
        watchdog = _watchdog(p.pid)
        if on_start:
            on_start(p)
        try:
            cut = _capture(p, output_path, quiet)
            code = p.wait()
        finally:
            _end_watchdog(watchdog)
        if cut and on_cut:
            on_cut(cut)
        return code
    finally:
        forward.restore()


def _spawn(args: list[str], cwd: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The process of `args` in a session of its own, output piped; one
    that cannot start is an ExecError that says why."""
    try:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    except OSError as e:
        raise ExecError(_start_error(args, e)) from None
    except ValueError as e:
        # A NUL byte in argv or env, or an env name with '='.
        raise ExecError(f"Cannot run {args[:1]!r}: {e}") from None


def _start_error(args: list[str], e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f"Cannot run '{args[0]}': command not found"
    return f"Cannot run '{args[0]}': {e.strerror or e}"


# ---------------------------------------------------------------------------
# Parent death


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that ends a child when its parent dies (see below);
    `sig` is the signal the child gets then."""
    return _die_with_parent(sig)


def _die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """On Linux, a function that asks the kernel to send `sig` (SIGTERM)
    to the child when the runner dies.

    The child runs in its own session (so a Ctrl-C reaches it once, through
    the runner), which also means it would outlive a runner that crashed or
    was killed with SIGKILL: the run would show `abandoned` while its
    command went on writing to the run dir. `PR_SET_PDEATHSIG` ends it.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)

    return set_pdeathsig


_PR_SET_PDEATHSIG = 1


def _watchdog(pgid: int) -> subprocess.Popen[bytes] | None:
    """A tiny process that SIGKILLs process group `pgid` when this
    process dies (`PR_SET_PDEATHSIG`), then ends; ended by this process
    when the group's leader ended.

    The group's leader gets SIGTERM when this process dies, which a run
    may ignore, and what it started (`sh -c "... & wait"`) gets nothing:
    the watchdog ends them all, so no part of a run outlives its runner.
    """
    set_pdeathsig = _die_with_parent()
    if set_pdeathsig is None:
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pgid), str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=set_pdeathsig,
        )
    except OSError:
        return None


_WATCHDOG = """
import os, signal, sys
pgid, parent = int(sys.argv[1]), int(sys.argv[2])
def end(*_):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    os._exit(0)
signal.signal(signal.SIGTERM, end)
if os.getppid() != parent:
    end()
while True:
    signal.pause()
"""


def _end_watchdog(p: subprocess.Popen[bytes] | None) -> None:
    if p is not None:
        try:
            p.kill()
        except OSError:
            pass
        p.wait()


def kill_grace() -> float:
    """Seconds a run has to end after the signal it was passed before its
    process group gets SIGKILL (`GAGE_KILL_GRACE`, 10 by default)."""
    try:
        return max(0.0, float(os.environ.get("GAGE_KILL_GRACE", "10")))
    except ValueError:
        return 10.0


# ---------------------------------------------------------------------------
# Output capture


def _capture(p: subprocess.Popen[bytes], output_path: str, quiet: bool) -> str | None:
    """Copy the process's output; a line saying where it was cut, if it was."""
    assert p.stdout and p.stderr
    with open(output_path, "wb") as out, open(output_path + ".index", "wb") as index:
        sink = _Sink(out, index)
        try:
            _copy_streams(p, sink, quiet)
        finally:
            sink.close()
    if sink.error is None:
        return None
    why = sink.error.strerror or str(sink.error)
    try:
        size = f"{os.path.getsize(output_path)} bytes"
    except OSError:
        size = "what fit"
    return f"output cut at {output_path} after {size}: {why}"


def _copy_streams(p: subprocess.Popen[bytes], sink: _Sink, quiet: bool) -> None:
    assert p.stdout and p.stderr
    echo = (None, None) if quiet else (_Echo(sys.stdout), _Echo(sys.stderr))
    threads = [
        threading.Thread(
            target=_copy_stream, args=(stream, n, sink, echo[n]), daemon=True
        )
        for n, stream in enumerate((p.stdout, p.stderr))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class _Echo:
    """Writes chunks to a stream's binary buffer, or as text without one."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.buffer = getattr(stream, "buffer", None)

    def write(self, chunk: bytes) -> None:
        try:
            if self.buffer is not None:
                self.buffer.write(chunk)
                self.buffer.flush()
            else:
                self.stream.write(chunk.decode("utf-8", errors="replace"))
                self.stream.flush()
        except (OSError, ValueError):
            pass


def _copy_stream(
    stream: IO[bytes], stream_n: int, sink: _Sink, echo: _Echo | None
) -> None:
    """Copy whole lines to the sink; a partial line waits for more.

    Memory is bounded: a partial line longer than `_MAX_PARTIAL` is
    written as it is (the sink keeps it open as one line, with one index
    entry), so a line of any length costs no more than a chunk or two.
    """
    fd = stream.fileno()
    pending = bytearray()
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        if echo:
            echo.write(chunk)
        end = chunk.rfind(b"\n") + 1
        if end:
            if pending:
                pending += chunk[:end]
                sink.write(bytes(pending), stream_n)
                pending.clear()
            else:
                sink.write(chunk[:end], stream_n)
            pending += chunk[end:]
        else:
            pending += chunk
        if len(pending) >= _MAX_PARTIAL:
            sink.write(bytes(pending), stream_n)
            pending.clear()
    if pending:
        sink.write(bytes(pending), stream_n)
    stream.close()


_MAX_PARTIAL = 1 << 20


class _Sink:
    """The output file and its index, written by both stream threads.

    Timestamps are taken under the lock, so the index is in time order.
    Each line gets one index entry, when its first bytes are written. A
    stream may write a line in parts (a long line, or a last line without
    a newline): it stays open for that stream. When the other stream
    writes while it is open, the open line is ended with a newline in the
    output so that each index entry stays one line. The file ends without
    a newline only when the last line written was partial.

    A write that fails (a full disk) stops the writing, not the reading:
    what follows is dropped and `error` says why.
    """

    def __init__(self, out: IO[bytes], index: IO[bytes]):
        self.out = out
        self.index = index
        self.lock = threading.Lock()
        self.open_line: int | None = None  # stream with a line in progress
        self.error: OSError | None = None

    def write(self, data: bytes, stream_n: int) -> None:
        with self.lock:
            if self.error is not None:
                return
            try:
                self._write(data, stream_n)
            except OSError as e:
                self.error = e

    def close(self) -> None:
        """Flush what is left; a flush that fails drops it (see write)."""
        for f in (self.out, self.index):
            try:
                f.flush()
            except OSError as e:
                self.error = self.error or e
                _drop_buffer(f)

    def _write(self, data: bytes, stream_n: int) -> None:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if self.open_line is not None and self.open_line != stream_n:
            self.out.write(b"\n")
            self.open_line = None
        if self.open_line == stream_n:
            lines -= 1  # the first part continues the open line
        self.out.write(data)
        if lines:
            entry = b"%d %d\n" % (time.time_ns() // 1000, stream_n)
            self.index.write(entry * lines)
        self.out.flush()
        self.index.flush()
        self.open_line = None if data.endswith(b"\n") else stream_n


def _drop_buffer(f: IO[bytes]) -> None:
    """Close `f` without writing what its buffer holds (closing would
    try again and fail again)."""
    raw = getattr(f, "raw", None)
    try:
        if raw is not None:
            raw.close()  # the buffered file's own close is then a no-op
    except OSError:
        pass


# ---------------------------------------------------------------------------
# Signals


class _SignalForward:
    """Forward SIGINT/SIGTERM/SIGHUP to a child's process group while it
    runs; SIGKILL on a second signal or after the grace period.

    A signal that arrives before the child exists is held and sent as
    soon as it starts.
    """

    def __init__(self, on_signal: Callable[[int], None] | None):
        self.on_signal = on_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self.saved: dict[int, object] = {}
        self.received = 0
        self.timer: threading.Timer | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _FORWARDED:
            self.saved[sig] = signal.signal(sig, self.handle)

    def restore(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self.saved.clear()

    def set_proc(self, p: subprocess.Popen[bytes]) -> None:
        self.proc = p
        for sig in self.pending:
            self._send(sig)
        self.pending.clear()

    def handle(self, sig: int, frame: object) -> None:
        self.received += 1
        if self.received > 1:
            sig = signal.SIGKILL  # asked twice: it ends now
        elif self.timer is None:
            self.timer = threading.Timer(kill_grace(), self._kill)
            self.timer.daemon = True
            self.timer.start()
        if self.on_signal:
            self.on_signal(sig)
        if self.proc is None:
            self.pending.append(sig)
        else:
            self._send(sig)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.on_signal:
                self.on_signal(signal.SIGKILL)
            self._send(signal.SIGKILL)

    def _send(self, sig: int) -> None:
        assert self.proc
        if not killpg(self.proc.pid, sig):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------------------
# Liveness


def proc_start_time(pid: int) -> int | None:
    """Start time of a process (clock ticks after boot), where known.

    Reads field 22 of `/proc/<pid>/stat` on Linux; None elsewhere or when
    the process does not exist.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """True if `pid` is a live process (not a zombie) started at `start_time`.

    Without a start time to compare (unknown when recorded, or no /proc),
    only the pid is checked.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    state = _proc_state(pid)
    if state in (b"Z", b"X"):
        return False
    if start_time is not None:
        current = proc_start_time(pid)
        if current is not None and current != start_time:
            return False
    return True


def _proc_state(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :][:1] or None


def killpg(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid` (a run, a hook, a starter's
    child: each leads its own session). False when the group is gone or
    not ours."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
