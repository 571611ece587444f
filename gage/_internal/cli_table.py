"""Tables for the CLI: the one place that formats rows of cells.

Every verb that prints a table (`runs`, `compare`, `ops`, `runs rm`...)
builds a header and rows of strings and hands them here. `print_table`
prints plain text with aligned columns (what a pipe or a file gets);
`csv_text` and `md_text` format the same rows for `--csv` and `--md`.
Nothing heavy is imported at module level: `gage --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import IO, Sequence

__all__ = ["csv_text", "md_text", "print_table", "table_text"]

Row = Sequence[str]


def print_table(header: Row, rows: Sequence[Row], file: IO[str] | None = None) -> None:
    """Print `header` and `rows` as aligned plain text columns."""
    out = file or sys.stdout
    out.write(table_text(header, rows))


def table_text(header: Row, rows: Sequence[Row]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last
    column is not padded and no line has trailing spaces."""
    all_rows = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths)] + row[-1:]
        lines.append("  ".join(cells).rstrip())
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


def _md_cell(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
