"""The public API in `gage`: every name resolves, and importing is light."""

from __future__ import annotations

import subprocess
import sys

import gage


def test_every_export_resolves():
    for name in gage.__all__:
        assert getattr(gage, name) is not None, name


def test_import_gage_loads_no_library_module():
    code = (
        "import sys, gage; "
        "print(sorted(m for m in sys.modules if m.startswith('gage.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
