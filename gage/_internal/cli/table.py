"""Tables for the CLI: the one place that formats rows of cells.

Every verb that prints a table (`runs`, `compare`, `ops`, `runs rm`...)
builds a header and rows of strings and hands them here. `print_table`
prints plain text with aligned columns (what a pipe or a file gets);
`csv_text` and `md_text` format the same rows for `--csv` and `--md`.

On a terminal that takes colour (`use_color`: a TTY, `NO_COLOR` not set,
`TERM` not `dumb`), `print_table` draws the table with rich instead:
a bold header, each column styled as the caller asks (`status` colours
a run status, `dim` dims a column) and placeholders (`-`) dimmed; and
`print_status` colours a status where a verb prints one. rich is
imported only then: piped output, `--help` and `--json` never load it.
Nothing heavy is imported at module level: `gage --help` stays fast.
"""

from __future__ import annotations

import os
import re
import sys
from typing import IO, Any, Sequence

__all__ = [
    "STATUS_STYLES",
    "csv_text",
    "md_text",
    "print_status",
    "print_table",
    "table_text",
    "use_color",
]

Row = Sequence[str]

STATUS_STYLES = {
    "completed": "green",
    "error": "red",
    "terminated": "magenta",
    "pruned": "magenta",
    "running": "bold cyan",
    "staged": "blue",
    "queued": "blue",
    "pending": "dim",
    "abandoned": "yellow",
}
"""The colour of each run status on a terminal."""

PLACEHOLDER = "-"


def print_table(
    header: Row,
    rows: Sequence[Row],
    file: IO[str] | None = None,
    styles: Sequence[str | None] | None = None,
    indent: str = "",
) -> None:
    """Print `header` and `rows`: aligned plain text (each line after
    `indent`), or on a terminal that takes colour a rich table. `styles`
    gives each column a style: `status` (coloured by `STATUS_STYLES`),
    `dim`, or None."""
    out = file or sys.stdout
    header, rows = _safe_row(header), [_safe_row(row) for row in rows]
    if use_color(out):
        _print_rich(header, rows, out, styles or [None] * len(header))
        return
    out.write(table_text(header, rows, indent))


def use_color(file: IO[str]) -> bool:
    """Whether `file` is a terminal that takes colour: a TTY, `NO_COLOR`
    not set (https://no-color.org), `TERM` not `dumb`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


def print_status(label: str, status: str, file: IO[str] | None = None) -> None:
    """Print `label` then `status`, the status coloured on a terminal."""
    out = file or sys.stdout
    if not use_color(out):
        out.write(f"{label}{status}\n")
        return
    from rich.text import Text

    text = Text(label)
    text.append(status, style=STATUS_STYLES.get(status) or "")
    _console(out).print(text)


def _print_rich(
    header: Row, rows: Sequence[Row], out: IO[str], styles: Sequence[str | None]
) -> None:
    from rich.table import Table

    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        header_style="bold",
        show_edge=False,
    )
    last = len(header) - 1
    for i, name in enumerate(header):
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis" if i == last else "fold",
            style="dim" if styles[i] == "dim" else None,
        )
    for row in rows:
        table.add_row(*(_cell(cell, style) for cell, style in zip(row, styles)))
    _console(out).print(table)


def _cell(cell: str, style: str | None) -> Any:
    from rich.text import Text

    if cell == PLACEHOLDER:
        return Text(cell, style="dim")
    if style == "status":
        return Text(cell, style=STATUS_STYLES.get(cell) or "")
    return Text(cell)


def _console(out: IO[str]) -> Any:
    from rich.console import Console

    return Console(file=out, highlight=False, emoji=False, markup=False)


def table_text(header: Row, rows: Sequence[Row], indent: str = "") -> str:
    """Columns padded to their widest cell, two spaces apart, each line
    after `indent`; the last column is not padded and no line has
    trailing spaces."""
    all_rows = [_safe_row(header)] + [_safe_row(row) for row in rows]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths)] + row[-1:]
        lines.append((indent + "  ".join(cells)).rstrip())
    return "".join(line + "\n" for line in lines)


def csv_text(header: Row, rows: Sequence[Row]) -> str:
    """RFC 4180 CSV (quoted where needed), one line per row."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def md_text(header: Row, rows: Sequence[Row]) -> str:
    """A Markdown (GitHub) table; `|` in cells is escaped."""

    def line(cells: Row) -> str:
        return "| " + " | ".join(_md_cell(c) for c in cells) + " |\n"

    return line(header) + line(["---"] * len(header)) + "".join(line(r) for r in rows)


def _safe_row(row: Row) -> list[str]:
    return [_UNSAFE.sub(_escape, cell) for cell in row]


# Control characters, and the ones that reorder text (bidi: U+202E
# prints what follows backwards) or hide it: shown as escapes, never
# acted on by the terminal.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _md_cell(cell: str) -> str:
    cell = cell.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return _UNSAFE.sub(_escape, cell)
