"""Every verb's help reads the same on Python 3.10-3.13: an option with a
short and a long name shows its value once (`-b, --batch-file FILE`), as
Python 3.13 writes it; 3.10-3.12's own formatter wrote `-b FILE,
--batch-file FILE`. make test runs this on the oldest and newest Python."""

from __future__ import annotations

import argparse
import re

import pytest

from gage._internal.cli import main

VERBS = list(main._VERBS)


def _subparsers(p: argparse.ArgumentParser):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _verb_parsers():
    for verb in VERBS:
        for name, p in _subparsers(main._parser(verb)):
            if name != verb:
                continue
            yield verb, p
            for sub, sp in _subparsers(p):
                yield f"{verb} {sub}", sp


@pytest.mark.parametrize("verb,parser", list(_verb_parsers()), ids=lambda x: str(x))
def test_help_formatter(verb, parser):
    text = parser.format_help()
    assert not re.search(r"\s-\w [A-Z][A-Z_]*, --", text), (
        f"gage {verb} --help:\n{text}"
    )
    assert parser.formatter_class.__module__.endswith("cli.common"), verb
