"""`--where`: the parser, its errors, and that the runs index (SQL)
and the test on records (`run_where.matches`) give the same answer."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gage._internal.home import run_where, runs_select
from gage._internal.home.run_where import And, Cmp, Not, Or, Value, WhereError
from gage._internal.lifecycle.run_stage import init_run_meta, make_run
from gage._internal.store import run_meta, run_records
from gage._internal.types import OpCmd, OpDef, OpRef


def test_parse_precedence():
    expr = run_where.parse("a = 1 or b = 2 and not c ~ x")
    assert expr == Or(
        (
            Cmp("a", "=", (Value("1", 1),)),
            And(
                (
                    Cmp("b", "=", (Value("2", 2),)),
                    Not(Cmp("c", "~", (Value("x", None),))),
                )
            ),
        )
    )


def test_parse_values():
    assert run_where.parse('x in (1, \'a b\', -2.5e3, "q\\"t")') == Cmp(
        "x",
        "in",
        (
            Value("1", 1),
            Value("a b", None),
            Value("-2.5e3", -2500.0),
            Value('q"t', None),
        ),
    )
    assert run_where.parse("x not in (a)") == Not(Cmp("x", "in", (Value("a", None),)))
    assert run_where.parse("NOT (x == 2)") == Not(Cmp("x", "=", (Value("2", 2),)))
    assert run_where.parse("started >= 2026-12-01") == Cmp(
        "started", ">=", (Value("2026-12-01", None),)
    )


@pytest.mark.parametrize(
    "text, msg",
    [
        ("", "expected a column name, found the end at column 1"),
        ("lr >", "expected a value, found the end at column 5"),
        ("lr 1", "expected an operator after 'lr'"),
        ("(lr = 1", "expected ')', found the end"),
        ("lr = 'x", "unexpected ''' at column 6"),
        (
            "lr = 1 loss = 2",
            "expected 'and', 'or' or the end, found 'loss' at column 8",
        ),
        ("and = 1", "expected a column name, found 'and'"),
        ("x in 1", "expected '(' after 'in', found '1'"),
        ("x in (1 2)", "expected ',' or ')', found '2'"),
        ("x not = 1", "expected 'in' after 'x not'"),
        ("x = )", "expected a value, found ')'"),
    ],
)
def test_parse_errors(text, msg):
    with pytest.raises(WhereError) as e:
        run_where.parse(text)
    assert msg in str(e.value)
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("--where: ")


def test_never_eval(tmp_path):
    # Python in an expression is text to compare, never run.
    marker = tmp_path / "ran"
    with pytest.raises(WhereError):
        run_where.parse(f"__import__('os').system('touch {marker}')")
    assert (
        run_where.matches(
            run_where.parse(f"name = \"__import__('os').system('touch {marker}')\""),
            {"name": "x"},
            {"name": "name"},
        )
        is False
    )
    assert not marker.exists()


def test_matches_semantics():
    names = {c: c for c in ("lr", "label", "flag", "l")}

    def m(text, **values):
        return run_where.matches(run_where.parse(text), values, names)

    assert m("lr > 0.01", lr=0.1)
    assert not m("lr > 5", lr="10")  # text compares as text
    assert m("lr > 5", lr=10)
    assert m("lr = 0.1", lr=0.1) and m("lr = 1", lr=1.0)
    assert not m("lr != 1")  # missing: no comparison matches
    assert m("not lr = 1")
    assert m("label ~ best", label="the best one")
    assert m("label !~ best", label="worst")
    assert not m("label ~ 1", label=None)
    assert m("label = 1", label="1")  # a word compares as text with text
    assert m("flag = true", flag=True) and not m("flag = 1", flag=True)
    assert not m("l = 1", l=[1])  # a list matches nothing


_KEYS = ("lr", "epochs", "opt", "flag")


def _value():
    return st.one_of(
        st.none(),
        st.integers(-3, 3),
        st.sampled_from([0.5, 0.01, -1.5, 2.0]),
        st.sampled_from(["adam", "sgd", "", "a b", "1"]),
        st.booleans(),
    )


_config = st.dictionaries(st.sampled_from(_KEYS), _value(), max_size=4)
_summary = st.dictionaries(
    st.sampled_from(("loss", "acc")),
    st.one_of(_value(), st.fixed_dictionaries({"loss": _value()})),
    max_size=2,
)


def _lit():
    return st.sampled_from(
        [
            "1",
            "0",
            "-1.5",
            "0.5",
            "2",
            "adam",
            "'a b'",
            "''",
            "true",
            "false",
            "s",
            "'1'",
            "completed",
            "staged",
            "running",
        ]
    )


def _cmp():
    col = st.sampled_from(
        ["lr", "epochs", "opt", "flag", "loss", "acc.loss", "op", "label", "status"]
    )
    op = st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "~", "!~"])
    single = st.builds(lambda c, o, v: f"{c} {o} {v}", col, op, _lit())
    many = st.builds(
        lambda c, n, vs: f"{c} {n}in ({', '.join(vs)})",
        col,
        st.sampled_from(["", "not "]),
        st.lists(_lit(), min_size=1, max_size=3),
    )
    return st.one_of(single, many)


_expr = st.recursive(
    _cmp(),
    lambda inner: st.one_of(
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
    ),
    max_leaves=4,
)


def _home(path, items):
    opdef = OpDef("train", {"exec": "python train.py"})
    cmd = OpCmd(["python", "train.py"], {})
    for i, (config, summary, op, label, done) in enumerate(items):
        run = make_run(str(path))
        init_run_meta(run, OpRef("p", op), opdef, cmd, config, {})
        if label:
            run_meta.write_label(run, label)
        run_meta.write_timestamp(run, "staged")
        if done:
            for ts in ("started", "stopped"):
                run_meta.write_timestamp(run, ts)
            run_meta.write_exit_code(run, 0 if i % 2 else 1)
            run_meta.write_summary(run, summary)
    return str(path)


_runs = st.lists(
    st.tuples(
        _config,
        _summary,
        st.sampled_from(["train", "eval"]),
        st.sampled_from([None, "best", "a b", "1"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=_runs, exprs=st.lists(_expr, min_size=1, max_size=8))
def test_sql_agrees_with_records(tmp_path_factory, items, exprs):
    home = _home(tmp_path_factory.mktemp("home"), items)
    page, _ = runs_select.select_runs(home)
    records = [r for _n, r in page]
    for text in exprs:
        try:
            expr, names = runs_select.resolve_where(home, text)
        except WhereError as e:
            assert "no run has a column" in str(e)
            continue
        assert expr is not None
        expected = [
            r["id"]
            for r in records
            if run_where.matches(expr, run_where.record_values(r), names)
        ]
        sql = run_where.to_sql(expr, names)
        if "status" not in text:
            assert sql is not None, text  # these columns are all served
        got = [r["id"] for _n, r in runs_select.select_runs(home, where=text)[0]]
        assert got == expected, (text, sql, [json.dumps(r["config"]) for r in records])


def test_where_served_by_index_pages(tmp_path):
    home = _home(
        tmp_path,
        [
            ({"lr": i / 10}, {"loss": 1 - i / 10}, "train", None, True)
            for i in range(30)
        ],
    )
    page, total = runs_select.select_runs(home, where="lr >= 0.5", limit=5)
    assert total == 25 and len(page) == 5
    assert [r["config"]["lr"] for _n, r in page] == [2.9, 2.8, 2.7, 2.6, 2.5]
    assert [n for n, _r in page] == [1, 2, 3, 4, 5]
    # Not served by the index (time): tested on records, same answer.
    page, total = runs_select.select_runs(home, where="time >= 0 and lr < 0.2", limit=1)
    assert total == 2 and page[0][1]["config"]["lr"] == 0.1


def test_unknown_column(tmp_path):
    home = _home(tmp_path, [({"lr": 1}, {"loss": 1}, "train", None, True)])
    with pytest.raises(WhereError) as e:
        runs_select.select_runs(home, where="los < 1")
    assert str(e.value) == (
        "--where: no run has a column 'los' (columns: id, name, op, status, "
        "started, time, label, comments, config.lr, summary.loss)"
    )
    assert os.path.isdir(home)


def test_one_rule_for_several_runs(tmp_path):
    """compare, rm, purge, label, select, archive: one selection. A run
    whose staging died (listed abandoned, never staged) is `pending` to
    every verb, and filters apply to RUN specs too."""
    home = _home(
        tmp_path,
        [
            ({"lr": 1}, {}, "train", None, True),
            ({"lr": 2}, {}, "eval", "best", True),
        ],
    )
    opdef = OpDef("train", {"exec": "python train.py"})
    dead = make_run(home)
    init_run_meta(dead, OpRef("p", "train"), opdef, OpCmd(["x"], {}), {}, {})
    run_records.write_stager(dead, 999_999_999, 0)  # a stager that is gone
    page, _ = runs_select.select_runs(home)
    by_status = {r["status"] for _n, r in page}
    assert by_status == {"abandoned", "completed", "error"}
    pending = runs_select.select_runs(home, status="pending")[0]
    assert [r["id"] for _n, r in pending] == [dead.id]
    assert runs_select.select_runs(home, [dead.id], status=["pending"])[1] == 1
    assert [n for n, _r in runs_select.select_runs(home, ["3", "1"])[0]] == [3, 1]
    found = runs_select.select_runs(home, ["3", "2", "1"], op="eval", where="lr > 0")[0]
    assert [r["label"] for _n, r in found] == ["best"]
    from gage._internal.cli import compare as cli_compare
    from gage._internal.history import run_delete

    assert [r.id for r in run_delete.select_runs(home, statuses=["pending"])] == [
        dead.id
    ]
    records, numbers = cli_compare.select(home, [], None, ["pending"])
    assert [r["id"] for r in records] == [dead.id] and numbers[dead.id] == 1
