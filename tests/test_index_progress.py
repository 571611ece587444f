"""The count shown while the runs index is built (a terminal only)."""

from __future__ import annotations

import itertools

from gage._internal.home import progress


def _clock(monkeypatch, step: float) -> None:
    ticks = itertools.count()
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(ticks) * step)


def test_counted_on_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress, "_isatty", lambda: True)
    _clock(monkeypatch, 0.5)
    items = list(range(3000))
    assert list(progress.counted("Indexing runs", items)) == items
    err = capsys.readouterr().err
    assert "\rIndexing runs: 401 of 3,000  \rIndexing runs: 601 of 3,000" in err
    assert err.endswith("\rIndexing runs: 3,000 of 3,000  \n")


def test_counted_quiet(monkeypatch, capsys):
    _clock(monkeypatch, 0.5)
    monkeypatch.setattr(progress, "_isatty", lambda: False)
    assert list(progress.counted("x", list(range(3000)))) == list(range(3000))
    monkeypatch.setattr(progress, "_isatty", lambda: True)
    assert list(progress.counted("x", list(range(10)))) == list(range(10))
    assert capsys.readouterr().err == ""


def test_counted_fast_work_shows_nothing(monkeypatch, capsys):
    monkeypatch.setattr(progress, "_isatty", lambda: True)
    _clock(monkeypatch, 0.0)
    list(progress.counted("x", list(range(3000))))
    assert capsys.readouterr().err == ""
