"""The op graph of a gage.toml.

An op that has a `run-files` dependency whose `run-select` names another
op of the same gage.toml depends on that op: the graph has an edge from
the upstream op to it. A `run-select` that names a run (an id or name)
is no edge. The graph must be acyclic: `gagefile` refuses a cycle at
load time, naming the ops on it.

This module knows only op definitions; `repro` decides what is stale
and runs it.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Mapping

from ..types import OpDef

__all__ = [
    "downstream",
    "find_cycle",
    "op_graph",
    "unknown_selects",
    "order",
    "upstream",
]


# A run id prefix (hex) or a run name or prefix of one (`bakire-tovusa`).
_RUN_SPEC = re.compile(
    r"[0-9a-f]{4,32}$|([bdfgklmnprstvz][aeiou])+(-([bdfgklmnprstvz][aeiou])*)?$"
)


def unknown_selects(opdefs: Mapping[str, OpDef]) -> list[tuple[str, str]]:
    """(op, run-select) for each run-select that names no op of
    `opdefs` and does not look like a run id or name (a misspelt op)."""
    found = []
    for name, opdef in opdefs.items():
        for dep in _deps(opdef):
            sel = dep.get("run-select")
            if isinstance(sel, str) and sel not in opdefs and not _RUN_SPEC.match(sel):
                found.append((name, sel))
    return found


def op_graph(opdefs: Mapping[str, OpDef]) -> dict[str, list[str]]:
    """Op -> the ops it depends on (in gage.toml order, no repeats)."""
    graph: dict[str, list[str]] = {}
    for name, opdef in opdefs.items():
        ups: list[str] = []
        for dep in _deps(opdef):
            sel = dep.get("run-select")
            if (
                dep.get("type") == "run-files"
                and isinstance(sel, str)
                and sel in opdefs
                and sel not in ups
            ):
                ups.append(sel)
        graph[name] = ups
    return graph


def _deps(opdef: OpDef) -> list[dict]:
    # gage.toml deps are validated (dep_spec); skip what is not a table in
    # an op def built by hand (run_deps refuses it when it is staged).
    return [d for d in opdef.get_dependencies() if isinstance(d, dict)]


def find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """The ops on a cycle, the first repeated at the end (`a, b, a`), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(graph.get(nxt, []))))
    return None


def upstream(graph: Mapping[str, list[str]], ops: Iterable[str]) -> set[str]:
    """`ops` and every op they depend on, directly or not."""
    return _reach(graph, ops)


def downstream(graph: Mapping[str, list[str]], ops: Iterable[str]) -> set[str]:
    """`ops` and every op that depends on them, directly or not."""
    users: dict[str, list[str]] = {op: [] for op in graph}
    for op, ups in graph.items():
        for up in ups:
            users[up].append(op)
    return _reach(users, ops)


def _reach(edges: Mapping[str, list[str]], ops: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(ops)
    while todo:
        op = todo.pop()
        if op not in seen:
            seen.add(op)
            todo.extend(edges.get(op, []))
    return seen


def order(
    graph: Mapping[str, list[str]], ops: Iterable[str] | None = None
) -> list[str]:
    """`ops` (default: all) in dependency order: an op after every op it
    depends on; otherwise in gage.toml order. Linear in the graph's size
    (and a log for the order): each op is looked at once per edge."""
    import heapq

    wanted = set(graph if ops is None else ops)
    pos = {op: i for i, op in enumerate(graph)}
    waiting = {op: sum(1 for up in graph[op] if up in wanted) for op in wanted}
    users: dict[str, list[str]] = {op: [] for op in wanted}
    for op in wanted:
        for up in graph[op]:
            if up in wanted:
                users[up].append(op)
    ready = [pos[op] for op, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    names = list(graph)
    result: list[str] = []
    while ready:
        op = names[heapq.heappop(ready)]
        result.append(op)
        for user in users[op]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, pos[user])
    if len(result) < len(wanted):  # a cycle: gagefile refuses these at load
        raise ValueError("op graph has a cycle")
    return result
