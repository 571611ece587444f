"""Tests for run_exec: output capture, index, signals, liveness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gage._internal.util import run_exec

PY = sys.executable


def _exec(
    tmp_path, script: str, quiet: bool = True, **kw
) -> tuple[int, bytes, list[tuple[int, int]]]:
    out = str(tmp_path / "output" / "40_run")
    code = run_exec.exec_proc(
        [PY, "-c", textwrap.dedent(script)],
        str(tmp_path),
        dict(os.environ),
        out,
        quiet=quiet,
        **kw,
    )
    with open(out, "rb") as f:
        output = f.read()
    with open(out + ".index", "rb") as f:
        index = [tuple(int(x) for x in line.split()) for line in f.read().splitlines()]
    return code, output, index


def _split(output: bytes, index: list[tuple[int, int]]) -> dict[int, list[bytes]]:
    lines = output.splitlines(keepends=True)
    assert len(lines) == len(index)
    streams: dict[int, list[bytes]] = {0: [], 1: []}
    for line, (_ts, stream) in zip(lines, index):
        streams[stream].append(line)
    return streams


def test_100000_lines_interleaved(tmp_path):
    n = 100_000
    script = f"""
        import sys
        out, err = sys.stdout, sys.stderr
        for i in range({n}):
            if i % 3:
                out.write("out %d\\n" % i)
            else:
                err.write("err %d\\n" % i)
            if i % 1000 == 0:
                out.flush()
    """
    code, output, index = _exec(tmp_path, script)
    assert code == 0
    assert len(index) == n
    streams = _split(output, index)
    assert streams[0] == [b"out %d\n" % i for i in range(n) if i % 3]
    assert streams[1] == [b"err %d\n" % i for i in range(n) if not i % 3]
    timestamps = [ts for ts, _ in index]
    assert timestamps == sorted(timestamps)


def test_100000_lines_unbuffered_both_streams(tmp_path):
    # Unbuffered writes: many tiny chunks on both pipes at once.
    n = 100_000
    script = f"""
        import os
        for i in range({n}):
            os.write(1 + (i & 1), b"%d\\n" % i)
    """
    code, output, index = _exec(tmp_path, script)
    assert code == 0
    streams = _split(output, index)
    assert streams[0] == [b"%d\n" % i for i in range(0, n, 2)]
    assert streams[1] == [b"%d\n" % i for i in range(1, n, 2)]


def test_partial_last_line_kept(tmp_path):
    code, output, index = _exec(
        tmp_path,
        """
        import sys
        sys.stdout.write("one\\ntwo")
        sys.stderr.write("three")
        """,
    )
    assert code == 0
    assert sorted(output.splitlines()) == [b"one", b"three", b"two"]
    assert len(index) == 3
    assert output.count(b"\n") == 2 and output[-1:] != b"\n"


def test_long_line(tmp_path):
    code, output, index = _exec(tmp_path, "print('x' * 1_000_000)")
    assert code == 0
    assert output == b"x" * 1_000_000 + b"\n"
    assert len(index) == 1


def test_exit_code_and_signal(tmp_path):
    code, _, _ = _exec(tmp_path, "raise SystemExit(3)")
    assert code == 3
    code, _, _ = _exec(
        tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert code == -signal.SIGKILL


def test_missing_executable(tmp_path):
    with pytest.raises(run_exec.ExecError) as e:
        run_exec.exec_proc(
            ["no-such-command-xyz"],
            str(tmp_path),
            dict(os.environ),
            str(tmp_path / "out"),
        )
    assert str(e.value) == "Cannot run 'no-such-command-xyz': command not found"


def test_echo_live(tmp_path, capfd):
    code, output, _ = _exec(
        tmp_path,
        "import sys; print('hello'); print('oops', file=sys.stderr)",
        quiet=False,
    )
    assert code == 0
    captured = capfd.readouterr()
    assert captured.out == "hello\n"
    assert captured.err == "oops\n"


def test_quiet(tmp_path, capfd):
    _exec(tmp_path, "print('hello')", quiet=True)
    assert capfd.readouterr().out == ""


def test_sigterm_forwarded(tmp_path):
    # A runner process started here; SIGTERM to it reaches the child,
    # which reports it and exits.
    runner = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.getcwd()!r})
        from gage._internal.util import run_exec
        got = []
        code = run_exec.exec_proc(
            [sys.executable, "-c", "import signal, sys, time\\n"
             "def h(s, f): print('child got', s, flush=True); sys.exit(7)\\n"
             "signal.signal(signal.SIGTERM, h)\\n"
             "print('ready', flush=True)\\n"
             "time.sleep(30)"],
            {str(tmp_path)!r}, dict(os.environ), {str(tmp_path / "out")!r},
            on_signal=got.append,
        )
        print("exit", code, "signals", got, flush=True)
        """)
    p = subprocess.Popen([PY, "-c", runner], stdout=subprocess.PIPE, text=True)
    assert p.stdout
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=30)
    assert out == "child got 15\nexit 7 signals [15]\n"
    assert p.returncode == 0


def test_proc_start_time_and_pid_alive():
    pid = os.getpid()
    start = run_exec.proc_start_time(pid)
    if start is None:
        pytest.skip("no /proc")
    assert run_exec.pid_alive(pid, start)
    assert run_exec.pid_alive(pid)
    # Same pid, another start time: a reused pid is not the recorded process.
    assert not run_exec.pid_alive(pid, start + 1)


def test_dead_and_zombie_pids():
    p = subprocess.Popen([PY, "-c", "pass"])
    start = run_exec.proc_start_time(p.pid)
    deadline = time.time() + 10
    # Not reaped yet: a zombie is not alive.
    while run_exec.pid_alive(p.pid, start) and time.time() < deadline:
        time.sleep(0.01)
    assert not run_exec.pid_alive(p.pid, start)
    p.wait()
    assert not run_exec.pid_alive(p.pid, start)
    assert not run_exec.pid_alive(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_child_ends_when_runner_is_killed(tmp_path):
    # A runner that starts a long child, which writes its pid and sleeps.
    pid_file = tmp_path / "child.pid"
    runner = tmp_path / "runner.py"
    runner.write_text(
        textwrap.dedent(f"""
            import sys
            from gage._internal.util import run_exec
            child = [sys.executable, "-c",
                     "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                     "time.sleep(60)"]
            run_exec.exec_proc(child, {str(tmp_path)!r}, {{}}, {str(tmp_path / "out")!r},
                               quiet=True)
            """)
    )
    p = subprocess.Popen([sys.executable, str(runner)])
    deadline = time.time() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "child did not start"
        time.sleep(0.02)
    child_pid = int(pid_file.read_text())
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 5
    while run_exec.pid_alive(child_pid, run_exec.proc_start_time(child_pid)):
        assert time.time() < deadline, "child outlived its killed runner"
        time.sleep(0.02)
