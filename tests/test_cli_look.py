"""How the CLI looks: coloured, aligned tables on a terminal; plain text
in a pipe; NO_COLOR honoured; rich loaded only to draw on a terminal."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from pty_util import run_in_pty

from gage._internal.cli import table as cli_table

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")
ESC = "\x1b["


def _in_pty(args, env) -> str:
    return run_in_pty(args, env=env)[1].replace("\r\n", "\n")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    runs_dir = tmp_path_factory.mktemp("runs")
    (project / "gage.toml").write_text(
        '[ok]\nexec = "python -c pass"\n\n'
        "[bad]\nexec = \"python -c 'raise SystemExit(3)'\"\n"
    )
    env = {**os.environ, "GAGE_RUNS": str(runs_dir), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    for op in ("ok", "bad"):
        subprocess.run(
            [GAGE, "run", op, "-y", "-q"], cwd=project, env=env, capture_output=True
        )
    subprocess.run(
        [GAGE, "run", "ok", "--stage"], cwd=project, env=env, capture_output=True
    )
    return env


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_terminal_table_is_coloured_and_aligned(home):
    out = _in_pty([GAGE, "runs"], home)
    assert ESC in out
    lines = _plain(out).splitlines()
    assert lines[0].split() == [
        "#",
        "name",
        "op",
        "status",
        "started",
        "time",
        "config",
    ]
    status_col = lines[0].index("status")
    assert [line[status_col:].split()[0] for line in lines[1:4]] == [
        "staged",
        "error",
        "completed",
    ]
    # Status colours: completed green (32), error red (31).
    assert "\x1b[32mcompleted" in out
    assert "\x1b[31merror" in out


def test_no_color_and_pipes_are_plain(home):
    plain_pty = _in_pty([GAGE, "runs"], {**home, "NO_COLOR": "1"})
    assert ESC not in plain_pty
    piped = subprocess.run([GAGE, "runs"], env=home, capture_output=True, text=True)
    assert ESC not in piped.stdout
    assert _plain(plain_pty).split() == piped.stdout.split()


def test_show_status_coloured_on_terminal_only(home):
    out = _in_pty([GAGE, "show", "2"], home)
    assert "Status:   \x1b[31merror" in out
    piped = subprocess.run(
        [GAGE, "show", "2"], env=home, capture_output=True, text=True
    )
    assert "Status:   error\n" in piped.stdout


def test_json_is_plain_and_stable_on_a_terminal(home):
    out = _in_pty([GAGE, "runs", "--json"], home)
    assert ESC not in out
    records = json.loads(out)
    assert [r["status"] for r in records] == ["staged", "error", "completed"]
    assert set(records[0]) >= {"id", "name", "op", "status", "config", "summary"}


def test_rich_is_imported_only_to_draw_on_a_terminal(home):
    code = (
        "import sys\n"
        "from gage._internal.cli import main as cli\n"
        "cli.main(['runs'])\n"
        "cli.main(['show'])\n"
        "print('rich' in sys.modules)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], env=home, capture_output=True, text=True
    )
    assert p.stdout.splitlines()[-1] == "False", p.stderr


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_print_table_styles(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    out = _Tty()
    cli_table.print_table(
        ("#", "status", "x"),
        [("1", "running", "-"), ("2", "abandoned", "a")],
        out,
        styles=("dim", "status", None),
    )
    text = out.getvalue()
    assert ESC in text
    assert _plain(text).splitlines()[0].split() == ["#", "status", "x"]
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Tty()
    cli_table.print_table(("a", "b"), [("1", "2")], out)
    assert out.getvalue() == "a  b\n1  2\n"
