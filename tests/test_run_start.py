"""Tests for start_run, finalize_run, run_status and verify_run."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import pytest

from gage._internal import run_util
from gage._internal.store import run_meta, run_records
from gage._internal.types import (
    OpCmd,
    OpDef,
    OpRef,
    Run,
    RunError,
    RunLockedError,
    RunSelectError,
)
from gage._internal.util.run_exec import proc_start_time


def _staged(
    tmp_path, files: dict[str, str], args: list[str], opdata=None, env=None
) -> Run:
    project = tmp_path / "project"
    for name, text in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project.mkdir(exist_ok=True)
    run = run_util.make_run(str(tmp_path / "runs"))
    run_util.init_run_meta(
        run,
        OpRef("test", "op"),
        OpDef("op", opdata or {}),
        OpCmd(args, env or {}),
        {},
        {},
    )
    run_util.stage_run(run, str(project))
    return run


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _output(run: Run) -> str:
    with open(os.path.join(run.meta_dir, "output", "40_run")) as f:
        return f.read()


def test_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_CALLER", "caller")
    monkeypatch.setenv("OVERRIDDEN", "caller")
    run = _staged(
        tmp_path,
        {},
        _py(
            "import os\n"
            "for k in ('FROM_CALLER', 'OVERRIDDEN', 'RUN_ID', 'RUN_DIR', "
            "'PYTHONDONTWRITEBYTECODE'):\n"
            "    print(k, os.environ[k])"
        ),
        env={"OVERRIDDEN": "proc-env"},
    )
    assert run_util.start_run(run, quiet=True) == 0
    assert _output(run) == (
        "FROM_CALLER caller\n"
        "OVERRIDDEN proc-env\n"
        f"RUN_ID {run.id}\n"
        f"RUN_DIR {run.run_dir}\n"
        "PYTHONDONTWRITEBYTECODE 1\n"
    )


def test_locked_by_this_process(tmp_path):
    import filelock

    run = _staged(tmp_path, {}, _py("pass"))
    lock = filelock.FileLock(run_meta.lock_path(run))
    with lock.acquire(timeout=0):
        run_records.write_proc_lock(run, 4242, None)
        with pytest.raises(RunLockedError) as e:
            run_util.start_run(run, quiet=True)
    assert f"Run {run.name} ({run.id}) is held by another process (pid 4242)" in str(
        e.value
    )
    # Free again: the run starts.
    run_records.delete_proc_lock(run)
    assert run_util.start_run(run, quiet=True) == 0


def test_status_of_every_meta_state(tmp_path):
    run = run_util.make_run(str(tmp_path))
    run_util.init_run_meta(run, OpRef("t", "t"), OpDef("t"), OpCmd(["x"]), {}, {})
    assert run_util.run_status(run) == "pending"
    run_meta.write_timestamp(run, "staged")
    assert run_util.run_status(run) == "staged"
    run_meta.write_timestamp(run, "started")
    assert run_util.run_status(run) == "abandoned"
    pid = os.getpid()
    run_records.write_proc_lock(run, pid, proc_start_time(pid))
    assert run_util.run_status(run) == "running"
    start = proc_start_time(pid)
    if start is not None:
        run_records.write_proc_lock(run, pid, start - 1)
        assert run_util.run_status(run) == "abandoned"
    run_records.write_proc_lock(run, 2**22 + 12345, None)  # above pid_max default
    assert run_util.run_status(run) == "abandoned"
    run_meta.write_exit_code(run, 0)
    run_meta.write_timestamp(run, "stopped")
    assert run_util.run_status(run) == "completed"


def test_status_error_and_terminated_from_exit_code(tmp_path):
    for code, status in [(0, "completed"), (1, "error"), (-9, "terminated")]:
        run = run_util.make_run(str(tmp_path))
        run_util.init_run_meta(run, OpRef("t", "t"), OpDef("t"), OpCmd(["x"]), {}, {})
        for name in ("staged", "started"):
            run_meta.write_timestamp(run, name)
        run_meta.write_exit_code(run, code)
        run_meta.write_timestamp(run, "stopped")
        assert run_util.run_status(run) == status


def test_proc_lock_format(tmp_path):
    run = Run("x", str(tmp_path / "x"), "x")
    assert run_records.read_proc_lock(run) is None
    run_records.write_proc_lock(run, 12, 345)
    assert open(run_meta.proc_lock_path(run)).read() == "12 345\n"
    assert run_records.read_proc_lock(run) == (12, 345)
    run_records.write_proc_lock(run, 12, None)
    assert run_records.read_proc_lock(run) == (12, None)
    run_records.delete_proc_lock(run)
    run_records.delete_proc_lock(run)
    assert run_records.read_proc_lock(run) is None


def test_verify_unstaged_is_an_error(tmp_path):
    run = run_util.make_run(str(tmp_path))
    run_util.init_run_meta(run, OpRef("t", "t"), OpDef("t"), OpCmd(["x"]), {}, {})
    with pytest.raises(RunError, match="is not staged: it has no manifest"):
        run_util.verify_run(run)


def test_run_deletes_and_modifies_staged_files(tmp_path):
    run = _staged(
        tmp_path,
        {"a.txt": "a", "b.txt": "b"},
        _py(
            "import os\n"
            "os.remove('a.txt')\n"
            "os.chmod('b.txt', 0o644)\n"
            "open('b.txt', 'w').write('changed')\n"
            "open('c.txt', 'w').write('new')\n"
        ),
    )
    assert run_util.start_run(run, quiet=True) == 0
    events = [(e.event, e.type, e.path) for e in run_meta.read_files_log(run)]
    assert events[-3:] == [
        ("m", "s", "b.txt"),
        ("a", "g", "c.txt"),
        ("d", "s", "a.txt"),
    ]
    manifest = [(e.type, e.path) for e in run_meta.read_manifest(run)]
    assert manifest == [("s", "a.txt"), ("s", "b.txt"), ("g", "c.txt")]
    diffs = [str(d) for d in run_util.verify_run(run)]
    assert diffs == ["missing a.txt", "changed b.txt"]


def test_summary_file_and_output(tmp_path):
    run = _staged(
        tmp_path,
        {},
        _py(
            "import json\n"
            "print('--- summary ---')\n"
            "print(json.dumps({'a': 1, 'b': 2}))\n"
            "json.dump({'b': 3}, open('summary.json', 'w'))\n"
        ),
    )
    run_util.start_run(run, quiet=True)
    assert run_meta.read_summary(run) == {"a": 1, "b": 3}


def test_summary_options(tmp_path):
    run = _staged(
        tmp_path,
        {},
        _py(
            "import json\n"
            "print('METRICS:', json.dumps({'acc': 0.5}))\n"
            "print('--- summary ---')\n"
            "print('{\"ignored\": 1}')\n"
            "open('metrics.toml', 'w').write('loss = 0.25\\n')\n"
        ),
        opdata={"output-summary": r"^METRICS:", "summary": "metrics.toml"},
    )
    run_util.start_run(run, quiet=True)
    assert run_meta.read_summary(run) == {"acc": 0.5, "loss": 0.25}


def test_summary_disabled_and_bad_values(tmp_path):
    run = _staged(
        tmp_path,
        {},
        _py(
            "print('--- summary ---')\n"
            "print('{\"a\": 1}')\n"
            "open('summary.json', 'w').write('[1, 2]')\n"
        ),
        opdata={"output-summary": False},
    )
    run_util.start_run(run, quiet=True)
    assert run_meta.read_summary(run) == {}
    log = open(os.path.join(run.meta_dir, "log", "runner")).read()
    assert "WARNING: summary file summary.json does not hold an object" in log


def test_summary_bad_json_in_output(tmp_path):
    run = _staged(tmp_path, {}, _py("print('--- summary ---'); print('{oops')"))
    assert run_util.start_run(run, quiet=True) == 0
    assert run_meta.read_summary(run) == {}
    log = open(os.path.join(run.meta_dir, "log", "runner")).read()
    assert "WARNING: summary block in output is not valid JSON" in log


def test_finalize_hook_failure_is_logged(tmp_path):
    run = _staged(
        tmp_path,
        {},
        _py("print('run')"),
        opdata={"exec": {"run": "x", "finalize": "no-such-finalizer"}},
    )
    assert run_util.start_run(run, quiet=True) == 0
    assert run_util.run_status(run) == "completed"
    log = open(os.path.join(run.meta_dir, "log", "runner")).read()
    assert "finalize hook could not start: Cannot run 'no-such-finalizer'" in log


def test_load_run_errors(tmp_path):
    with pytest.raises(RunSelectError, match="Run dir does not exist"):
        run_util.load_run(str(tmp_path / "missing"))


def test_meta_holds_no_absolute_run_path(tmp_path):
    run = _staged(tmp_path, {"x.py": "print(1)\n"}, ["python", "x.py"])
    runs = str(tmp_path / "runs").encode()
    for root, _dirs, files in os.walk(run.meta_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert runs not in f.read(), name


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
    reason="needs root to switch to another user",
)
def test_relocated_run_started_by_another_user():
    """Stage as root; `nobody` copies the run dir and meta dir and starts it."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    here = tempfile.mkdtemp(prefix="gage-relocate-")
    os.chmod(here, 0o755)
    there = None
    try:
        project = os.path.join(here, "project")
        os.makedirs(os.path.join(project, "data"))
        with open(os.path.join(project, "count.sh"), "w") as f:
            f.write('echo "$(wc -w < data/words.txt) words"\nid -un\n')
        with open(os.path.join(project, "data", "words.txt"), "w") as f:
            f.write("a b c\n")
        run = run_util.make_run(os.path.join(here, "runs"))
        run_util.init_run_meta(
            run, OpRef("t", "count"), OpDef("count"), OpCmd(["sh", "count.sh"]), {}, {}
        )
        run_util.stage_run(run, project)
        for path in (os.path.join(here, "runs"), run.run_dir, run.meta_dir):
            os.chmod(path, 0o755)

        # The child becomes `nobody`, who cannot read root's interpreter
        # here (a pyenv under /root): what a start imports late (ctypes,
        # for the parent-death signal) is imported before it switches.
        import ctypes  # noqa: F401

        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            result: dict = {}
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                # Only dirs nobody may search: a PATH dir under /root
                # would make `sh` "Permission denied".
                os.environ["PATH"] = "/usr/bin:/bin"
                dest = tempfile.mkdtemp(prefix="gage-nobody-")
                result["dest"] = dest
                for src in (run.run_dir, run.meta_dir):
                    shutil.copytree(src, os.path.join(dest, os.path.basename(src)))
                moved = run_util.load_run(os.path.join(dest, run.id))
                result["verify"] = [str(d) for d in run_util.verify_run(moved)]
                result["exit"] = run_util.start_run(moved, quiet=True)
                result["status"] = run_util.run_status(moved)
                result["output"] = _output(moved)
                result["owner"] = os.stat(
                    os.path.join(moved.meta_dir, "output", "40_run")
                ).st_uid
            except BaseException as e:
                result["error"] = f"{type(e).__name__}: {e}"
            os.write(w, json.dumps(result).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            result = json.loads(f.read())
        os.waitpid(pid, 0)
        there = result.get("dest")
        assert "error" not in result, result["error"]
        assert result["verify"] == []
        assert result["exit"] == 0
        assert result["status"] == "completed"
        assert result["output"] == "3 words\nnobody\n"
        assert result["owner"] == nobody.pw_uid
        # The original is untouched: still staged, where it was.
        assert run_util.run_status(run) == "staged"
    finally:
        from gage._internal.test import delete_temp_dir

        delete_temp_dir(here)
        if there:
            delete_temp_dir(there)


def test_signal_during_finalize_waits_for_the_record(tmp_path):
    """SIGTERM after the run's process ended: record completed, then it acts."""
    import signal
    import subprocess
    import textwrap

    from wait_util import wait_for

    run = _staged(tmp_path, {}, _py("print('done')"))
    marker = tmp_path / "finalizing"
    runner = textwrap.dedent(f"""
        import time
        from gage._internal.lifecycle import run_start
        from gage._internal import run_util
        read_summary = run_start.read_run_summary
        def slow_read_summary(*args):
            open({str(marker)!r}, "w").close()
            time.sleep(1)
            read_summary(*args)
        run_start.read_run_summary = slow_read_summary
        run_util.start_run(run_util.load_run({run.run_dir!r}), quiet=True)
        print("not reached")
        """)
    p = subprocess.Popen([sys.executable, "-c", runner], stdout=subprocess.PIPE)
    wait_for(marker.exists, "the runner to reach its finalize step")
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert p.returncode == -signal.SIGTERM
    assert out == b""
    assert run_util.run_status(run) == "completed"
    assert not os.path.exists(run_meta.proc_lock_path(run))
    log = open(os.path.join(run.meta_dir, "log", "runner")).read()
    assert "Received SIGTERM: completing the run record first" in log
    assert "Run stopped with exit code 0 (completed)" in log
