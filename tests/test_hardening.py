"""Hardening (issue 11): each defect found by trying gage as an adversarial
user would, with a test that failed before its fix.

Every bad input gives one line `gage: ...` naming what is wrong, exit 2
(1 for a run that cannot start), no traceback, and nothing written
outside the runs home. The standing suites are in
`test_hardening_suite.py` (generated gage.toml files and command lines)
and `test_hardening_paths.py` (hostile paths and file names).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from gage._internal.cli import main as cli

GAGE = [sys.executable, "-m", "gage"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project dir (cwd) with train.py; runs go to a runs home beside it."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text("lr = 0.1\nscale = 3\n")
    monkeypatch.chdir(proj)
    monkeypatch.setenv("GAGE_RUNS", str(tmp_path / "runs"))
    return proj


def gage(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_toml(proj, text: str) -> None:
    (proj / "gage.toml").write_text(textwrap.dedent(text))


def assert_one_line_error(err: str, *parts: str) -> None:
    lines = [line for line in err.splitlines() if not line.startswith("gage: warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("gage: "), err
    for part in parts:
        assert part in lines[0], (part, err)


def runs(tmp_path) -> list[str]:
    home = tmp_path / "runs"
    return sorted(os.listdir(home)) if home.exists() else []


# ---------------------------------------------------------------------------
# 6. Tracebacks: one clear line, exit 2, nothing left behind


@pytest.mark.parametrize(
    "toml, parts",
    [
        (
            '[t]\nexec = "python -c pass"\nenv = { "A=B" = "1" }\n',
            ["gage.toml:3", "op 't'", "'A=B'"],
        ),
        (
            '[t]\nexec = ["python", "-c", "pa\\u0000ss"]\n',
            ["gage.toml:2", "op 't'", "NUL"],
        ),
        (
            '[t]\nexec = "python -c pass"\nenv = { A = "x\\u0000y" }\n',
            ["gage.toml:3", "op 't'", "NUL"],
        ),
        ("[t]\nexec = 'python'\nversion = " + "9" * 5000 + "\n", ["gage.toml"]),
        ("a = " + "[" * 3000 + "]" * 3000 + "\n", ["gage.toml", "nested"]),
    ],
)
def test_bad_gagefile_values(project, tmp_path, capsys, toml, parts):
    write_toml(project, toml)
    code, _out, err = gage(capsys, "run", "-y")
    assert code == 2
    assert_one_line_error(err, *parts)
    assert runs(tmp_path) == []


CONFIG_OP = '[t]\nexec = "python train.py"\nconfig = "train.py#lr"\n'


@pytest.mark.parametrize(
    "value, part",
    [
        ("9" * 5000, "5000 digits"),
        ("[" * 3000, "nested more than 100"),
        ("{a: " * 500 + "1" + "}" * 500, "nested more than 100"),
        ("[&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]]", "aliases"),
    ],
)
def test_bad_config_values(project, tmp_path, capsys, value, part):
    write_toml(project, CONFIG_OP)
    code, _out, err = gage(capsys, "run", "t", "-y", f"lr={value}")
    assert code == 2
    assert_one_line_error(err, "lr=", part)
    assert len(err) < 300
    assert runs(tmp_path) == []


# ---------------------------------------------------------------------------
# 10. CLI edges


def test_assign_after_option(project, tmp_path, capsys):
    write_toml(project, CONFIG_OP)
    code, _out, _err = gage(capsys, "run", "t", "-y", "-q", "lr=7")
    assert code == 0
    [run_dir] = [p for p in runs(tmp_path) if not p.startswith(".") and "." not in p]
    assert "lr = 7" in (tmp_path / "runs" / run_dir / "train.py").read_text()


def test_option_after_assign_still_an_error(project, capsys):
    write_toml(project, CONFIG_OP)
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "t", "-y", "lr=7", "--bogus"])
    assert e.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_start_empty(project, tmp_path, capsys):
    write_toml(project, CONFIG_OP)
    code, _out, err = gage(capsys, "run", "--start", "")
    assert code == 2
    assert_one_line_error(err, "--start")
    assert runs(tmp_path) == []


def test_runs_dir_empty(project, tmp_path, capsys):
    write_toml(project, CONFIG_OP)
    for argv in (["runs"], ["run", "t", "-y"], ["show", "x"], ["check", "x"]):
        code, _out, err = gage(capsys, *argv, "--runs-dir", "")
        assert code == 2, argv
        assert_one_line_error(err, "--runs-dir")
    assert runs(tmp_path) == []
    assert not (project / ".gage").exists()


def test_runs_dir_file(project, tmp_path, capsys):
    write_toml(project, CONFIG_OP)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv in (["runs"], ["run", "t", "-y"], ["show", "x"]):
        code, _out, err = gage(capsys, *argv, "--runs-dir", str(afile))
        assert code == 2, argv
        assert_one_line_error(err, str(afile), "not a directory")
    assert afile.read_text() == "x"


@pytest.mark.parametrize(
    "toml, parts",
    [
        (
            '[t]\nexec = "python -c pass"\n'
            'depends = { type = "project-files", files = "train.py", link = "yes" }\n',
            ["gage.toml:3", "op 't'", "'link'", "true or false"],
        ),
        ('[t]\nexec = [""]\n', ["gage.toml:2", "op 't'", "empty command"]),
        ("[t]\nexec = \"''\"\n", ["gage.toml:2", "op 't'", "empty command"]),
        ('[t]\nexec = {run = ["", "x"]}\n', ["gage.toml:2", "op 't'", "empty command"]),
        ('[""]\nexec = "python"\n', ["gage.toml:1", "op name ''"]),
        ('["a\\nb"]\nexec = "python"\n', ["gage.toml", "op name 'a\\nb'"]),
        ('["a=b"]\nexec = "python"\n', ["gage.toml:1", "op name 'a=b'"]),
    ],
)
def test_bad_op_defs(project, tmp_path, capsys, toml, parts):
    write_toml(project, toml)
    code, _out, err = gage(capsys, "run", "-y")
    assert code == 2
    assert_one_line_error(err, *parts)
    assert runs(tmp_path) == []


def test_config_error_names_gagefile_line(project, capsys):
    write_toml(
        project, '[t]\nexec = "python train.py"\n\nconfig = "train.py#lr,nope"\n'
    )
    code, _out, err = gage(capsys, "run", "t", "-y")
    assert code == 2
    assert_one_line_error(err, "gage.toml:4", "op 't'", "'nope'", "train.py")
    write_toml(project, '[t]\nexec = "python train.py"\nconfig = "missing.py#lr"\n')
    code, _out, err = gage(capsys, "run", "t", "-y", "lr=1")
    assert code == 2
    assert_one_line_error(err, "gage.toml:3", "op 't'", "missing.py")


# ---------------------------------------------------------------------------
# 1. Config paths stay inside the run dir


def _tree(root) -> dict[str, tuple[bytes, int]]:
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = os.readlink(path).encode() if stat.S_ISLNK(st.st_mode) else b""
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = f.read()
            result[os.path.relpath(path, root)] = (data, st.st_mode)
    return result


@pytest.mark.parametrize(
    "config",
    [
        "{proj}/train.py#lr",
        "../shared/params.py#lr",
        "sub/../../shared/params.py#lr",
        "../shared/*.py#lr",
        "~/params.py#lr",
    ],
)
def test_config_outside_run_dir_refused(project, tmp_path, capsys, config):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "params.py").write_text("lr = 0.1\n")
    config = config.format(proj=project)
    write_toml(project, f'[t]\nexec = "python train.py"\nconfig = "{config}"\n')
    before = _tree(tmp_path)
    code, _out, err = gage(capsys, "run", "t", "-y", "lr=5")
    assert code == 2
    path = config.partition("#")[0]
    assert_one_line_error(err, "gage.toml:3", "op 't'", path)
    assert _tree(tmp_path) == before


def test_config_through_link_out_of_run_dir(project, tmp_path, capsys):
    """A hook replaces a config file's dir with a link out of the run dir."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "params.py").write_text("lr = 0.1\n")
    (project / "conf").mkdir()
    (project / "conf" / "params.py").write_text("lr = 0.1\n")
    write_toml(
        project,
        f"""
        [t]
        config = "conf/params.py#lr"
        exec.run = "python -c pass"
        exec.stage-sourcecode = "sh -c 'rm -rf conf && ln -s {outside} conf'"
        """,
    )
    code, _out, err = gage(capsys, "run", "t", "-y", "lr=5")
    assert code == 2
    assert_one_line_error(err, "conf/params.py", "outside the run dir")
    assert (outside / "params.py").read_text() == "lr = 0.1\n"
    assert os.listdir(outside) == ["params.py"]
    assert (project / "conf" / "params.py").read_text() == "lr = 0.1\n"


def test_dependency_through_link_out_of_run_dir(project, tmp_path, capsys):
    """A hook makes a link where a dependency is placed: nothing escapes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "data").mkdir()
    (project / "data" / "raw.csv").write_text("1,2\n")
    write_toml(
        project,
        f"""
        [t]
        depends = {{ type = "project-files", files = "data/raw.csv", target-path = "in" }}
        exec.run = "python -c pass"
        exec.stage-runtime = "ln -s {outside} in"
        """,
    )
    code, _out, err = gage(capsys, "run", "t", "-y")
    assert code == 2
    assert_one_line_error(err, "in/data/raw.csv", "outside the run dir")
    assert os.listdir(outside) == []


# ---------------------------------------------------------------------------
# 5. Hangs: only regular files are ever opened


def test_fifo_dependency_refused(project, tmp_path):
    os.mkfifo(project / "pipe")
    write_toml(
        project,
        '[t]\nexec = "python -c pass"\n'
        'depends = { type = "project-files", files = "pipe" }\n',
    )
    p = subprocess.run(
        GAGE + ["run", "t", "-y"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 2, p.stderr
    assert_one_line_error(p.stderr, "'pipe'", "FIFO", "not a regular file")


def test_dev_zero_dependency_refused(project, tmp_path, capsys):
    os.symlink("/dev/zero", project / "zero")
    write_toml(
        project,
        '[t]\nexec = "python -c pass"\n'
        'depends = { type = "project-files", files = "zero" }\n',
    )
    code, _out, err = gage(capsys, "run", "t", "-y")
    assert code == 2
    assert_one_line_error(err, "'zero'")


SPECIAL_OP = """
import os
os.mkfifo("pipe")
os.symlink("/dev/zero", "zero")
os.mkfifo("summary.json")
print("done")
"""


def test_special_files_made_by_run(project, tmp_path):
    """finalize, check and a second start never open a FIFO or a device."""
    (project / "op.py").write_text(SPECIAL_OP)
    write_toml(project, '[t]\nexec = "python op.py"\n')

    def gage_p(*argv):
        return subprocess.run(
            GAGE + list(argv), capture_output=True, text=True, timeout=60
        )

    p = gage_p("run", "t", "-y")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    p = gage_p("check", "t")
    assert p.returncode == 0, p.stdout + p.stderr
    p = gage_p("show", "t", "--files")
    assert p.returncode == 0, p.stderr
    assert "g " in p.stdout and " pipe" in p.stdout
    # A FIFO added to a staged run: --start refuses it without hanging.
    p = gage_p("run", "t", "-y", "--stage")
    assert p.returncode == 0, p.stderr
    run_dir = p.stdout.splitlines()[-1]
    os.mkfifo(os.path.join(run_dir, "late"))
    os.chmod(os.path.join(run_dir, "op.py"), 0o644)
    os.unlink(os.path.join(run_dir, "op.py"))
    os.mkfifo(os.path.join(run_dir, "op.py"))
    p = gage_p("check", run_dir)
    assert p.returncode == 1
    assert "added late" in p.stdout and "changed op.py" in p.stdout
    p = gage_p("run", "--start", run_dir)
    assert p.returncode == 1
    assert_one_line_error(p.stderr, "differs from its manifest")


def test_special_file_from_hook_refused(project, tmp_path, capsys):
    write_toml(
        project,
        '[t]\nexec.run = "python -c pass"\nexec.stage-runtime = "mkfifo env-pipe"\n',
    )
    code, _out, err = gage(capsys, "run", "t", "-y")
    assert code == 2
    assert_one_line_error(err, "env-pipe", "FIFO")


# ---------------------------------------------------------------------------
# 2. Meta formats round-trip any path and op name


def test_project_dir_with_space(tmp_path, monkeypatch, capsys):
    proj = tmp_path / "my proj"
    proj.mkdir()
    (proj / "prep.py").write_text("open('out.txt', 'w').write('1')\n")
    write_toml(
        proj,
        """
        [prep]
        exec = "python prep.py"
        [train]
        exec = "python -c pass"
        depends = { type = "run-files", run-select = "prep", files = "out.txt" }
        """,
    )
    monkeypatch.chdir(proj)
    monkeypatch.setenv("GAGE_RUNS", str(tmp_path / "runs"))
    assert gage(capsys, "run", "prep", "-y", "-q")[0] == 0
    code, _out, err = gage(capsys, "run", "train", "-y", "-q")
    assert code == 0, err
    code, out, _err = gage(capsys, "runs")
    assert code == 0
    ops = [line.split()[2] for line in out.splitlines()[1:]]
    assert ops == ["train", "prep"]
    code, out, _err = gage(capsys, "show", "train")
    assert "Op:       my proj:train" in out


def test_opref_round_trips_any_name(tmp_path):
    from gage._internal.lifecycle.run_stage import make_run
    from gage._internal.store import run_meta
    from gage._internal.types import OpRef

    for ns, name, version in [
        ("my proj", "train", None),
        ("", "a b", "1 2"),
        ('"q"', "x", None),
        ("new\nline", "tab\there", "v"),
        ("bad\udcffbytes", "é", None),
    ]:
        run = make_run(str(tmp_path / "runs"))
        os.makedirs(run.meta_dir)
        run_meta.write_opref(run, OpRef(ns, name, version))
        assert run_meta.read_opref(run) == OpRef(ns, name, version)


# ---------------------------------------------------------------------------
# 3. Config is never lost under a dependency


def test_config_file_also_dependency(project, tmp_path, capsys):
    (project / "params.json").write_text('{"scale": 3}\n')
    write_toml(
        project,
        """
        [t]
        exec = "python -c pass"
        config = "params.json#scale"
        depends = { type = "project-files", files = "params.json" }
        """,
    )
    code, _out, err = gage(capsys, "run", "t", "-y", "scale=5")
    assert code == 2
    assert_one_line_error(err, "params.json", "config file", "depends[0]")
    assert runs(tmp_path) == []


def test_config_file_also_dependency_when_staged(project, tmp_path):
    """Through the API (no CLI check first), staging refuses it too."""
    from gage._internal import run_util
    from gage._internal.project import gagefile
    from gage._internal.types import DependencyError

    (project / "params.json").write_text('{"scale": 3}\n')
    write_toml(
        project,
        """
        [t]
        exec = "python -c pass"
        config = "*.json#scale"
        depends = { type = "project-files", files = "p*.json" }
        """,
    )
    gf = gagefile.load_gagefile(str(project))
    opdef = gf.get_opdef("t")
    run = run_util.make_run(str(tmp_path / "runs"))
    run_util.init_run_meta(
        run, gagefile.op_ref(gf, opdef), opdef, gagefile.op_cmd(opdef), {"scale": 5}, {}
    )
    with pytest.raises(DependencyError) as e:
        run_util.stage_run(run, str(project))
    assert "params.json" in str(e.value) and "config file" in str(e.value)
    assert '"scale": 5' in open(os.path.join(run.run_dir, "params.json")).read()


# ---------------------------------------------------------------------------
# 6. File names, deep trees, garbage meta


def test_hostile_file_names_staged(project, tmp_path, capsys):
    names = [b"new\nline.txt", b"bad\xffname.txt", b"tab\tname.txt", b'"quoted".txt']
    for name in names:
        with open(os.path.join(os.fsencode(project), name), "wb") as f:
            f.write(b"x")
    write_toml(project, '[t]\nexec = "python -c pass"\n')
    code, _out, err = gage(capsys, "run", "t", "-y", "-q")
    assert code == 0, err
    code, out, _err = gage(capsys, "check", "t")
    assert code == 0
    assert "6 files match" in out
    code, out, _err = gage(capsys, "show", "t", "--files")
    assert code == 0
    assert '"new\\nline.txt"' in out and '"bad\\udcffname.txt"' in out
    [run_dir] = [p for p in runs(tmp_path) if "." not in p]
    copied = set(
        os.listdir(os.path.join(os.fsencode(tmp_path / "runs"), run_dir.encode()))
    )
    assert set(names) <= copied


def test_tree_deeper_than_recursion_limit(project, tmp_path, capsys):
    path = os.fsencode(project)
    fd = os.open(path, os.O_RDONLY)
    depth = sys.getrecursionlimit() + 100
    try:
        for _ in range(depth):
            os.mkdir(b"d", dir_fd=fd)
            new = os.open(b"d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        os.close(os.open(b"deep.txt", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)
    write_toml(project, '[t]\nexec = "python -c pass"\n')
    try:
        code, _out, err = gage(capsys, "run", "t", "-y", "-q")
        assert code == 0, err
        code, out, _err = gage(capsys, "check", "t")
        assert code == 0, out
    finally:
        # pytest's own cleanup recurses: rm does not.
        subprocess.run(["rm", "-rf", str(project), str(tmp_path / "runs")], timeout=60)


def test_garbage_meta_lists_other_runs(project, tmp_path, capsys):
    from gage._internal.home import runs as runs_mod

    write_toml(project, '[t]\nexec = "python -c pass"\n')
    for _ in range(3):
        assert gage(capsys, "run", "t", "-y", "-q")[0] == 0
    home = str(tmp_path / "runs")
    a, b, c = runs_mod.list_runs(home)
    for run, name, data in [
        (a, "manifest", b"garbage line\n"),
        (b, "staged", b"zzz\n"),
        (b, "opref", b"onefield\n"),
        (c, "stopped", b"\xff\xfe\n"),
        (c, "exit_code", b"{not a number"),
    ]:
        path = os.path.join(run.meta_dir, name)
        os.chmod(path, 0o644)
        with open(path, "ab" if name == "manifest" else "wb") as f:
            f.write(data)
    code, out, err = gage(capsys, "runs")
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 4
    code, out, err = gage(capsys, "runs", "--json")
    assert code == 0
    code, out, err = gage(capsys, "check", a.id)
    assert code == 1
    assert "manifest" in out
    code, _out, err = gage(capsys, "show", a.id)
    assert code == 2
    assert_one_line_error(err, "manifest:", "not a manifest entry")
    for run in (b, c):
        code, _out, err = gage(capsys, "show", run.id)
        assert code == 0, err


def test_delete_tree_deeper_than_recursion_limit(tmp_path):
    """shutil.rmtree recurses: deleting a run that holds a very deep tree
    must not fail (it did with a RecursionError)."""
    from gage._internal.home import runs as runs_mod
    from gage._internal.lifecycle.run_stage import make_run

    home = str(tmp_path / "runs")
    run = make_run(home)
    os.makedirs(run.meta_dir)
    fd = os.open(run.run_dir, os.O_RDONLY)
    try:
        for _ in range(sys.getrecursionlimit() + 100):
            os.mkdir("d", dir_fd=fd)
            new = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o444, dir_fd=fd))
    finally:
        os.close(fd)
    runs_mod.delete_run(run)
    assert sorted(os.listdir(home)) in ([], [".trash"])
    assert os.listdir(os.path.join(home, ".trash")) == []
