"""What grows with the size of a project stays linear: a 5,000-op chain
for `gage dag` and ordering, 100,000 config keys for compare's labels.
Work is counted where it can be (calls, lookups); where a quadratic path
would take minutes, an alarm ends the test loudly instead of hanging."""

from __future__ import annotations

import signal
from collections.abc import Mapping

import pytest

from gage._internal.cli import main as cli
from gage._internal.history import run_compare
from gage._internal.project import graph

N = 5000


@pytest.fixture
def chain(tmp_path, monkeypatch):
    lines = []
    for i in range(N):
        lines.append(f'[op{i}]\nexec = "python -c pass"\n')
        if i:
            lines.append(
                f'depends = {{type = "run-files", run-select = "op{i - 1}"}}\n'
            )
    (tmp_path / "gage.toml").write_text("".join(lines))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAGE_RUNS", str(tmp_path / "runs"))
    return tmp_path


class _Counted(Mapping):
    def __init__(self, d):
        self.d, self.lookups = d, 0

    def __getitem__(self, k):
        self.lookups += 1
        return self.d[k]

    def __iter__(self):
        return iter(self.d)

    def __len__(self):
        return len(self.d)


def test_order_linear():
    # Listed last-first: each op waits for the one after it in the file.
    g = {f"op{i}": ([f"op{i + 1}"] if i + 1 < N else []) for i in range(N)}
    counted = _Counted(g)
    assert graph.order(counted) == [f"op{i}" for i in reversed(range(N))]
    assert counted.lookups <= 2 * N


def test_dag_builds_graph_once(chain, monkeypatch, capsys):
    calls = []
    real = graph.op_graph
    monkeypatch.setattr(graph, "op_graph", lambda defs: calls.append(1) or real(defs))
    assert cli.main(["dag", "--no-status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].split() == [f"op{N - 1}", f"op{N - 2}"]
    assert len(out) == N + 1
    assert len(calls) <= 3  # load (cycle check), select, the table


def _alarm(seconds: int):
    def fail(*_a):
        raise AssertionError(f"did not finish in {seconds}s: a quadratic path?")

    signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)


def test_compare_labels_many_keys():
    cols = [run_compare.Column("config", f"k{i}") for i in range(100_000)]
    cols += [run_compare.Column("summary", "k1")]
    table = run_compare.Table(tuple(cols), ())
    _alarm(30)
    try:
        labels = table.labels()
    finally:
        signal.alarm(0)
    assert labels[0] == "k0"
    assert labels[1] == "config.k1" and labels[-1] == "summary.k1"
