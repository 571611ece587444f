"""A warm starter of runs for a Dask worker: gage imported once, a fork
per run.

Starting a run as `python -m gage run --start DIR` pays Python's
start-up and gage's imports again for every run (a tenth of a second
and more on a busy worker). The starter is one small process per worker
(`python -m gage._internal.engines.dask_starter`) that imports what
`gage run --start` needs once and forks a child for each run, which then
runs `gage run --start DIR -y --engine local --runs-dir HOME` as that
command would (`engine.child_main`).

The starter is single-threaded (a fork of it is safe, unlike a fork of
the worker, whose threads may hold locks), has no `GAGE_*` variables in
its environment and `/` as its cwd: nothing of the worker's settings,
cwd or gage.toml reaches a run. Each child:

- is the leader of a session of its own before the worker learns its
  pid, so a cancel (`os.killpg`) reaches it and only it;
- writes its stdout and stderr to pipes the worker made and sent with
  the request (SCM_RIGHTS), so the worker forwards its lines as they
  come;
- is SIGKILLed when the starter ends (PR_SET_PDEATHSIG on Linux); the
  starter SIGKILLs its children and ends itself when the worker goes
  away (its end of the socket closes). A run whose worker is gone has
  nobody to bring its record home, and the scheduler starts it again
  elsewhere: its copy here ends at once, whatever signals it ignores,
  by the one mechanism that ends a run with its runner (the runner's
  watchdog, `run_exec`, SIGKILLs the run's process group).

The worker learns a child's exit status from a third pipe: the starter
writes it there once it has reaped the child (nothing, if the starter
died first).

The protocol, on a SOCK_SEQPACKET socket pair, one request at a time:
the worker sends `{"run_dir": ..., "runs_home": ...}` (JSON) with the
three pipe ends to write; the starter answers `{"pid": N}` once the
child has its session, or `{"error": ...}`.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from ..util import run_exec

__all__ = ["Child", "start_run_child"]

_MSG_SIZE = 65536
_REPLY_TIMEOUT = 60.0  # the first reply waits for the starter's imports
_PRELOAD = (
    "ctypes",
    "filelock",
    "gage._internal.engines.child",
    "gage._internal.lifecycle.run_start",
    "gage._internal.lifecycle.run_verify",
    "gage._internal.home.runs",
)


# ---------------------------------------------------------------------------
# Worker side


@dataclass
class Child:
    """A run's process made by the starter: its pid (and session id),
    its stdout and stderr to read, and its exit status to come."""

    pid: int
    stdout: IO[bytes]
    stderr: IO[bytes]
    status_fd: int
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> int | None:
        """The child's exit code (negative for a signal), or None when
        the starter ended first."""
        chunks = []
        try:
            while chunk := os.read(self.status_fd, 64):
                chunks.append(chunk)
        finally:
            os.close(self.status_fd)
            self.done.set()
        try:
            return int(b"".join(chunks))
        except ValueError:
            return None

    def signal(self, sig: int) -> None:
        if self.done.is_set():
            return
        run_exec.killpg(self.pid, sig)


@dataclass
class _Starter:
    """A starter process and its socket."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket


_lock = threading.Lock()
_starter: _Starter | None = None


def start_run_child(run_dir: str, runs_home: str) -> Child:
    """Start `gage run --start run_dir` in a child of this process's
    starter (started the first time, and again if it died)."""
    global _starter
    with _lock:
        for attempt in (1, 2):
            if _starter is None or _starter.proc.poll() is not None:
                _starter = _spawn_starter()
            try:
                return _request(_starter, run_dir, runs_home)
            except (OSError, EOFError):
                _close(_starter)
                _starter = None
                if attempt == 2:
                    raise
    raise AssertionError("not reached")


def _spawn_starter() -> _Starter:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAGE_")}
    with theirs:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gage._internal.engines.dask_starter",
                str(theirs.fileno()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=[theirs.fileno()],
            start_new_session=True,
            cwd="/",
            env=env,
        )
    mine.settimeout(_REPLY_TIMEOUT)
    return _Starter(proc, mine)


def _request(starter: _Starter, run_dir: str, runs_home: str) -> Child:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    status_r, status_w = os.pipe()
    try:
        msg = json.dumps({"run_dir": run_dir, "runs_home": runs_home}).encode()
        socket.send_fds(starter.sock, [msg], [out_w, err_w, status_w])
    except BaseException:
        for fd in (out_r, err_r, status_r):
            os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, status_w):
            os.close(fd)
    reply = starter.sock.recv(_MSG_SIZE)
    if not reply:
        for fd in (out_r, err_r, status_r):
            os.close(fd)
        raise EOFError("the run starter ended")
    answer = json.loads(reply)
    if "pid" not in answer:
        for fd in (out_r, err_r, status_r):
            os.close(fd)
        raise OSError(f"the run starter cannot start a run: {answer.get('error')}")
    return Child(
        answer["pid"], os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"), status_r
    )


def _close(starter: _Starter) -> None:
    starter.sock.close()
    if starter.proc.poll() is None:
        starter.proc.terminate()
    try:
        starter.proc.wait(5)
    except subprocess.TimeoutExpired:
        starter.proc.kill()


# ---------------------------------------------------------------------------
# The starter


def main(argv: list[str]) -> None:
    """`python -m gage._internal.engines.dask_starter FD`: serve the worker on the
    socket FD until it closes."""
    sock = socket.socket(fileno=int(argv[0]))
    _warm()
    _serve(sock)


def _warm() -> None:
    """Import what `gage run --start` uses (building the parser of `gage
    run` imports its module), then keep the garbage collector off the
    imported objects: a child that ran a collection would copy every
    page they are on."""
    import gc
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


def _serve(sock: socket.socket) -> None:
    children: dict[int, int] = {}  # pid -> fd to write its status to
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_args: None)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _events in sel.select():
            if key.fileobj is sock:
                try:
                    msg, fds, _flags, _addr = socket.recv_fds(sock, _MSG_SIZE, 3)
                    if msg:
                        ctx = (sock, sel, wake_r, wake_w, children)
                        sock.send(json.dumps(_fork(msg, fds, ctx)).encode())
                except OSError:
                    msg = b""
                if not msg:  # the worker is gone: so are its runs
                    for pid in children:
                        run_exec.killpg(pid, signal.SIGKILL)
                    return
            else:
                while _read_nonblocking(wake_r):
                    pass
                _reap(children)


def _fork(msg: bytes, fds: list[int], ctx: tuple) -> dict[str, Any]:
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return {"error": f"expected 3 file descriptors, got {len(fds)}"}
    req = json.loads(msg)
    out, err, status = fds
    try:
        sync_r, sync_w = os.pipe()
    except OSError as e:
        return _failed(fds, e)
    try:
        pid = os.fork()
    except OSError as e:  # out of processes or memory: this run fails
        return _failed([*fds, sync_r, sync_w], e)
    if pid == 0:
        os.close(sync_r)
        _child(req, out, err, status, sync_w, ctx)
    os.close(sync_w)
    os.read(sync_r, 1)  # EOF once the child leads its own session
    os.close(sync_r)
    os.close(out)
    os.close(err)
    ctx[4][pid] = status
    return {"pid": pid}


def _failed(fds: list[int], e: OSError) -> dict[str, Any]:
    for fd in fds:
        os.close(fd)
    return {"error": f"cannot fork: {e}"}


def _child(
    req: dict[str, Any], out: int, err: int, status: int, sync_w: int, ctx: tuple
) -> None:
    code = 1
    try:
        os.setsid()
        os.close(sync_w)
        sock, sel, wake_r, wake_w, children = ctx
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sel.close()
        sock.close()
        for fd in (wake_r, wake_w, status, *children.values()):
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (devnull, out, err):
            os.close(fd)
        # New streams on the new fds (the starter's were made for
        # /dev/null, and seen as seekable); whole lines go out at once.
        sys.stdout = _text_stream(1, sys.stdout)
        sys.stderr = _text_stream(2, sys.stderr)
        os.chdir(req["runs_home"])
        from . import child

        code = child.main([req["run_dir"]], parent_death=signal.SIGKILL)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _text_stream(fd: int, like: IO[str]) -> IO[str]:
    return open(
        fd,
        "w",
        encoding=getattr(like, "encoding", None) or "utf-8",
        errors=getattr(like, "errors", None) or "strict",
        closefd=False,
        buffering=1,
    )


def _reap(children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = children.pop(pid, None)
        if fd is not None:
            try:
                os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
            except OSError:
                pass
            os.close(fd)


def _read_nonblocking(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


if __name__ == "__main__":
    main(sys.argv[1:])
