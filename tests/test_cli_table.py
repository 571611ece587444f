"""cli_table: the one formatter of CLI tables (text, CSV, Markdown)."""

from gage._internal.cli import table as cli_table


def test_text_aligns_columns_without_trailing_spaces():
    text = cli_table.table_text(("a", "bb", "c"), [("xxx", "", "1"), ("y", "z", "")])
    assert text == "a    bb  c\nxxx      1\ny    z\n"


def test_csv_quotes_what_needs_quoting():
    text = cli_table.csv_text(("name", "note"), [("a", "x,y"), ("b", 'say "hi"')])
    assert text == 'name,note\na,"x,y"\nb,"say ""hi"""\n'


def test_md_escapes_pipes():
    text = cli_table.md_text(("name", "v"), [("a|b", "1")])
    assert text == "| name | v |\n| --- | --- |\n| a\\|b | 1 |\n"
