"""file_util.read_regular: what meta reads go through (the index build
reads every run's meta with it): a regular file's bytes, whatever their
size, and never a FIFO or a directory (refused without blocking)."""

from __future__ import annotations

import os

import pytest

from gage._internal.store import meta_format
from gage._internal.types import MetaError
from gage._internal.util import file_util


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 300_000])
def test_reads_whole_file(tmp_path, size):
    path = tmp_path / "f"
    data = os.urandom(size)
    path.write_bytes(data)
    assert file_util.read_regular(str(path)) == data


def test_refuses_fifo_and_dir_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(file_util.NotRegularFile):
            file_util.read_regular(str(path))
    with pytest.raises(MetaError, match="not a regular file \\(FIFO\\)"):
        meta_format.read_text(str(fifo))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        file_util.read_regular(str(tmp_path / "nope"))
