"""`--where EXPR`: a small, safe expression language over run columns.

    lr > 0.01 and loss < 0.2
    status = completed
    label ~ best
    op in (train, eval)
    not (status = error or loss >= 1)

A hand-written recursive-descent parser turns the text into a tree of
frozen nodes (never `eval`). Grammar (keywords in any case):

    expr := and ('or' and)*
    and  := not ('and' not)*
    not  := 'not' not | '(' expr ')' | cmp
    cmp  := COLUMN OP VALUE | COLUMN ['not'] 'in' '(' VALUE (',' VALUE)* ')'
    OP   := '=' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '~' | '!~'

A VALUE is a word (`completed`, `0.01`, `2026-12-01`) or a quoted
string (`'two words'`). A column is named as `gage compare --cols`
names it: `config.KEY`, `summary.KEY`, a run attribute (`ATTRS`), or a
plain name: a config key when a run has it, else a summary key, else an
attribute.

Comparisons: a number value compares with a VALUE that reads as a
number (an unquoted word); a text value (and `true`/`false`) compares
with the VALUE's text; `~` is "contains" (text only). A run without a
value for the column (or with a list or table there) matches no
comparison, not even `!=`; `not` matches it.

The tree is served by the runs index where it can be (`to_sql`: the
index's columns and the JSON of config and summary); what it cannot
serve (`status` of running, pending or abandoned runs, `started`,
`time`, `comments`) is tested on each run's values (`matches`). A test
checks that both give the same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

from ..types import GageError

__all__ = [
    "ATTRS",
    "And",
    "Cmp",
    "Not",
    "Or",
    "SAFE_KEY",
    "Value",
    "WhereError",
    "columns",
    "json_paths",
    "matches",
    "parse",
    "record_values",
    "resolve",
    "to_sql",
]

ATTRS = ("id", "name", "op", "status", "started", "time", "label", "comments")
"""Run attributes a column can name (`comments`: the run's comments)."""

_OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "~", "!~")
_KEYWORDS = ("and", "or", "not", "in")


class WhereError(GageError):
    """A `--where` expression that cannot be read, or names no column."""


@dataclass(frozen=True)
class Value:
    """A VALUE: its text, and its number when it is an unquoted number."""

    text: str
    num: float | int | None


@dataclass(frozen=True)
class Cmp:
    """`column op value` (`in`: op `in`, several values)."""

    column: str
    op: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Not:
    """`not EXPR`."""

    expr: Expr


@dataclass(frozen=True)
class And:
    """`EXPR and EXPR ...`."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """`EXPR or EXPR ...`."""

    items: tuple[Expr, ...]


Expr = Union[Cmp, Not, And, Or]


# ---------------------------------------------------------------------------
# Parse

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op><=|>=|!=|==|!~|[=<>~])
    | (?P<punct>[(),])
    | (?P<word>[^\s()',"=!<>~]+)
    | (?P<bad>\S)
    )""",
    re.VERBOSE,
)

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class _Tok:
    """A token of a `--where` expression."""

    kind: str  # str, op, punct, word, end
    text: str
    pos: int


def parse(text: str) -> Expr:
    """The tree of a `--where` expression. Raises WhereError naming the
    token (and where it is) for text that is not an expression."""
    toks = _tokens(text)
    p = _Parser(toks, text)
    expr = p.expr()
    tok = p.peek()
    if tok.kind != "end":
        raise p.error(tok, "expected 'and', 'or' or the end")
    return expr


def _tokens(text: str) -> list[_Tok]:
    toks = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None
        if m.end() == pos or not m.lastgroup:
            break  # only blanks left
        kind = m.lastgroup
        start = m.start(kind)
        if kind == "bad":
            raise WhereError(
                f"--where: unexpected '{m.group(kind)}' at column {start + 1} "
                f"of '{text}' (a quote must be closed)"
            )
        toks.append(_Tok(kind, m.group(kind), start))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    def __init__(self, toks: list[_Tok], text: str):
        self.toks = toks
        self.i = 0
        self.text = text

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "word" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def error(self, tok: _Tok, expected: str) -> WhereError:
        found = f"'{tok.text}'" if tok.kind != "end" else "the end"
        return WhereError(
            f"--where: {expected}, found {found} at column {tok.pos + 1} "
            f"of '{self.text}'"
        )

    def expr(self) -> Expr:
        items = [self.and_()]
        while self.keyword("or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.not_()]
        while self.keyword("and"):
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self) -> Expr:
        if self.keyword("not"):
            return Not(self.not_())
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.next()
            expr = self.expr()
            close = self.next()
            if close.text != ")" or close.kind != "punct":
                raise self.error(close, "expected ')'")
            return expr
        return self.cmp()

    def cmp(self) -> Cmp:
        tok = self.next()
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise self.error(tok, "expected a column name")
        column = tok.text
        negate = self.keyword("not")
        if self.keyword("in"):
            cmp = Cmp(column, "in", self.values())
            return Not(cmp) if negate else cmp  # type: ignore[return-value]
        if negate:
            raise self.error(self.peek(), f"expected 'in' after '{column} not'")
        op = self.next()
        if op.kind != "op":
            raise self.error(
                op, f"expected an operator after '{column}' ({' '.join(_OPS)} in)"
            )
        return Cmp(column, "=" if op.text == "==" else op.text, (self.value(),))

    def values(self) -> tuple[Value, ...]:
        tok = self.next()
        if tok.text != "(" or tok.kind != "punct":
            raise self.error(tok, "expected '(' after 'in'")
        found = [self.value()]
        while True:
            tok = self.next()
            if tok.kind == "punct" and tok.text == ")":
                return tuple(found)
            if tok.kind != "punct" or tok.text != ",":
                raise self.error(tok, "expected ',' or ')'")
            found.append(self.value())

    def value(self) -> Value:
        tok = self.next()
        if tok.kind == "str":
            return Value(re.sub(r"\\(.)", r"\1", tok.text[1:-1]), None)
        if tok.kind != "word":
            raise self.error(tok, "expected a value")
        return Value(tok.text, _number(tok.text))


def _number(text: str) -> float | int | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


# ---------------------------------------------------------------------------
# Columns


def columns(expr: Expr) -> list[str]:
    """The column names an expression uses, as written, in order."""
    if isinstance(expr, Cmp):
        return [expr.column]
    if isinstance(expr, Not):
        return columns(expr.expr)
    return [c for item in expr.items for c in columns(item)]


def resolve(
    name: str, has_key: Callable[[str, str], bool], known: Callable[[], Iterable[str]]
) -> str:
    """The full name of column `name` (`config.lr`, `summary.loss`,
    `status`), as `gage compare --cols` resolves it: `has_key(kind,
    key)` tells whether a run has that config or summary key; `known()`
    lists the columns there are, for the message when none matches (with
    no runs at all, a plain name is a config key)."""
    kind, dot, key = name.partition(".")
    if dot and kind in ("config", "summary") and key:
        if has_key(kind, key):
            return name
    else:
        for kind in ("config", "summary"):
            if has_key(kind, name):
                return f"{kind}.{name}"
        if name in ATTRS:
            return name
    every = set(known())
    if not every:  # no runs: nothing to match, nothing wrong
        return name if dot and kind in ("config", "summary") else f"config.{name}"
    names = sorted(n for n in every if n.startswith(("config.", "summary.")))
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    raise WhereError(
        f"--where: no run has a column '{name}' (columns: {', '.join(ATTRS)}"
        f"{', ' + shown if shown else ''})",
        key=name,
    )


def record_values(record: dict[str, Any]) -> dict[str, Any]:
    """A run record's values by full column name (attributes,
    `config.*`, `summary.*` with nested summaries flattened by dots)."""
    vals: dict[str, Any] = {
        "id": record["id"],
        "name": record["name"],
        "op": record["op"],
        "status": record["status"],
        "started": record["started"],
        "time": record["duration"],
        "label": record["label"],
    }
    if "comments" in record:
        vals["comments"] = record["comments"]
    for key, val in record["config"].items():
        vals[f"config.{key}"] = val
    for key, val in _flat(record["summary"]):
        vals[f"summary.{key}"] = val
    return vals


def _flat(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, val in data.items():
        if isinstance(val, dict) and val:
            yield from _flat(val, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", val


# ---------------------------------------------------------------------------
# Test a run's values


def matches(expr: Expr, values: dict[str, Any], names: dict[str, str]) -> bool:
    """Whether a run's values (`record_values`) match `expr`; `names`
    maps each column as written to its full name (`resolve`)."""
    if isinstance(expr, Not):
        return not matches(expr.expr, values, names)
    if isinstance(expr, And):
        return all(matches(e, values, names) for e in expr.items)
    if isinstance(expr, Or):
        return any(matches(e, values, names) for e in expr.items)
    val = values.get(names[expr.column])
    if expr.op == "in":
        return any(_cmp(val, "=", v) for v in expr.values)
    return _cmp(val, expr.op, expr.values[0])


def _cmp(val: Any, op: str, lit: Value) -> bool:
    if isinstance(val, bool):
        val = "true" if val else "false"
    if isinstance(val, (int, float)):
        if lit.num is None or op in ("~", "!~"):
            return False
        return _compare(val, op, lit.num)
    if isinstance(val, str):
        if op == "~":
            return lit.text in val
        if op == "!~":
            return lit.text not in val
        return _compare(val, op, lit.text)
    return False


def _compare(a: Any, op: str, b: Any) -> bool:
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


# ---------------------------------------------------------------------------
# SQL for the runs index

_TEXT_COLS = {"id": "id", "name": "name", "op": "op", "label": "label"}
_STATUSES = {
    "pending": ("pending", "abandoned"),
    "staged": ("staged",),
    "started": ("running", "abandoned"),
    "completed": ("completed",),
    "error": ("error",),
    "terminated": ("terminated",),
}
"""The statuses of each state of the index (see `runs_index.STATES`)."""
SAFE_KEY = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")


def to_sql(expr: Expr, names: dict[str, str]) -> tuple[str, list[Any]] | None:
    """An SQL condition on the runs index's columns that is true for
    exactly the runs `matches` accepts, and its parameters; None when a
    part cannot be served by the index (see the module doc)."""
    params: list[Any] = []
    sql = _sql(expr, names, params)
    return (sql, params) if sql is not None else None


def _sql(expr: Expr, names: dict[str, str], params: list[Any]) -> str | None:
    if isinstance(expr, Not):
        inner = _sql(expr.expr, names, params)
        return None if inner is None else f"NOT ({inner})"
    if isinstance(expr, (And, Or)):
        parts = [_sql(e, names, params) for e in expr.items]
        if any(p is None for p in parts):
            return None
        joiner = " AND " if isinstance(expr, And) else " OR "
        return "(" + joiner.join(p for p in parts if p is not None) + ")"
    name = names[expr.column]
    ops = (
        [("=", v) for v in expr.values]
        if expr.op == "in"
        else [(expr.op, expr.values[0])]
    )
    parts = [_cmp_sql(name, op, v, params) for op, v in ops]
    if any(p is None for p in parts):
        return None
    return "(" + " OR ".join(p for p in parts if p is not None) + ")"


def _cmp_sql(name: str, op: str, lit: Value, params: list[Any]) -> str | None:
    if name in _TEXT_COLS:
        col = _TEXT_COLS[name]
        return _text_sql(col, f"typeof({col}) = 'text'", op, lit, params)
    if name == "status":
        return _status_sql(op, lit)
    kind, _, key = name.partition(".")
    if kind not in ("config", "summary") or not SAFE_KEY.fullmatch(key):
        return None
    paths = json_paths(kind, key)
    return "(" + " OR ".join(_json_sql(kind, p, op, lit, params) for p in paths) + ")"


def _status_sql(op: str, lit: Value) -> str | None:
    """The test on the index's `state`: exact when each state's
    statuses all give the same answer (`status = running` is not)."""
    cases = []
    for state, statuses in _STATUSES.items():
        answers = {_cmp(status, op, lit) for status in statuses}
        if len(answers) > 1:
            return None
        cases.append(f"WHEN '{state}' THEN {int(answers.pop())}")
    return f"(CASE state {' '.join(cases)} ELSE 0 END)"


def json_paths(kind: str, key: str) -> list[str]:
    """JSON paths of a config or summary key (a key `SAFE_KEY` accepts)
    in the index's JSON text: a summary key with dots is also a path
    into nested tables."""
    paths = ['$."' + key + '"']
    if kind == "summary" and "." in key:
        paths.append("$." + ".".join(f'"{k}"' for k in key.split(".")))
    return paths


def _json_sql(col: str, path: str, op: str, lit: Value, params: list[Any]) -> str:
    """One JSON value's test: its type read once (`json_type`), its
    value once; rows whose JSON text lacks the key's name are passed
    over without parsing (`instr`: keys are written as `"NAME"`)."""
    jv = f"json_extract({col}, '{path}')"
    params.append('"' + path.rsplit('"', 2)[-2] + '"')
    params.append(lit.text)
    if op == "~":
        text = f"instr({jv}, ?) > 0"
    elif op == "!~":
        text = f"instr({jv}, ?) = 0"
    else:
        text = f"{jv} {op} ?"
    num = "0"
    if lit.num is not None and op not in ("~", "!~"):
        num = f"{jv} {op} ?"
        params.extend((lit.num, lit.num))
    return (
        f"(instr({col}, ?) > 0 AND coalesce(CASE json_type({col}, '{path}') "
        f"WHEN 'text' THEN {text} WHEN 'integer' THEN {num} WHEN 'real' THEN {num} "
        f"WHEN 'true' THEN {int(_cmp(True, op, lit))} "
        f"WHEN 'false' THEN {int(_cmp(False, op, lit))} ELSE 0 END, 0))"
    )


def _text_sql(val: str, guard: str, op: str, lit: Value, params: list[Any]) -> str:
    params.append(lit.text)
    if op == "~":
        test = f"instr({val}, ?) > 0"
    elif op == "!~":
        test = f"instr({val}, ?) = 0"
    else:
        test = f"{val} {op} ?"
    return f"coalesce({guard} AND {test}, 0)"
