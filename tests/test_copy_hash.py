"""copy_hash: the digest is of the copy's bytes, however it was read.

`kernel_copy_hashing` hashes the copy just behind the kernel, and reads
a block from the source where it catches up with the copy, when the
source is settled (its ctime older than `SETTLED_NS`) and unchanged
after the copy. These tests check which file was hashed (by the fds
`os.preadv` read) and that the digest is always the sha256 of what was
written.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from gage._internal.store import copy_hash

pytestmark = pytest.mark.skipif(
    not hasattr(os, "copy_file_range"), reason="no copy_file_range on this OS"
)

SIZE = 3 * copy_hash._BUF_SIZE + 123


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "src.bin"
    path.write_bytes(os.urandom(SIZE))
    return str(path)


@pytest.fixture
def preads(monkeypatch):
    """The fds `os.preadv` read from."""
    fds: list[int] = []
    preadv = os.preadv

    def recording(fd, buffers, offset):
        fds.append(fd)
        return preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", recording)
    return fds


def _copy(src: str, dest: str, progress=None) -> tuple[str, int, int]:
    """(digest, src fd, dest fd)."""
    fd_in = os.open(src, os.O_RDONLY)
    fd_out = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        digest = copy_hash.kernel_copy_hashing(fd_in, fd_out, progress)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert digest is not None
    return digest, fd_in, fd_out


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class _Count:
    def __init__(self):
        self.nbytes = 0

    def add(self, nbytes=0, files=0):
        self.nbytes += nbytes


def _slow_copy(monkeypatch, delay: float) -> None:
    """A kernel copy that sleeps before each block after the first (as
    one held back by writeback)."""
    import time

    copy_range = os.copy_file_range
    calls = []

    def slow(fd_in, fd_out, count, *a):
        calls.append(count)
        if len(calls) > 1:
            time.sleep(delay)
        return copy_range(fd_in, fd_out, count, *a)

    monkeypatch.setattr(os, "copy_file_range", slow)


def test_settled_source_read_where_the_copy_lags(src, tmp_path, preads, monkeypatch):
    monkeypatch.setattr(copy_hash, "SETTLED_NS", 0)
    _slow_copy(monkeypatch, 0.2)
    dest = str(tmp_path / "dest.bin")
    count = _Count()
    digest, fd_in, fd_out = _copy(src, dest, count)
    assert digest == _sha256(dest) == _sha256(src)
    assert fd_in in preads  # read ahead of the copy, not waiting on it
    assert count.nbytes == SIZE
    # Having read all of the source, the hash waits for the copy to end
    # (it once spun on empty reads, holding the copier off the GIL).
    assert preads.count(fd_in) <= SIZE // copy_hash._BUF_SIZE + 2


def test_copy_ahead_hashes_the_copy(src, tmp_path, preads, monkeypatch):
    """A copy that keeps ahead: only `dest` is read (just written)."""
    monkeypatch.setattr(copy_hash, "SETTLED_NS", 0)
    monkeypatch.setattr(copy_hash, "_FIRST_SIZE", SIZE)
    dest = str(tmp_path / "dest.bin")
    digest, fd_in, fd_out = _copy(src, dest)
    assert digest == _sha256(dest) == _sha256(src)
    assert set(preads) == {fd_out}


def test_recent_source_hashes_the_copy(src, tmp_path, preads, monkeypatch):
    monkeypatch.setattr(copy_hash, "SETTLED_NS", 10**15)
    _slow_copy(monkeypatch, 0.05)
    dest = str(tmp_path / "dest.bin")
    count = _Count()
    digest, fd_in, fd_out = _copy(src, dest, count)
    assert digest == _sha256(dest) == _sha256(src)
    assert set(preads) == {fd_out}
    assert count.nbytes == SIZE


def test_source_changed_during_copy_hashes_the_copy(src, tmp_path, preads, monkeypatch):
    """A source written while it is copied, after the hash read it: its
    stat changes, and the digest is of the bytes the copy holds (the
    caller's stat check then refuses the copy)."""
    monkeypatch.setattr(copy_hash, "SETTLED_NS", 0)
    copy_range = os.copy_file_range
    calls = []

    def changing(fd_in, fd_out, count, *a):
        import time

        calls.append(count)
        if len(calls) > 1:
            time.sleep(0.1)  # the hash reads ahead from the source
        if len(calls) == 3:  # the hash has read the source's end by now
            with open(src, "r+b") as f:
                f.seek(SIZE - 10)
                f.write(b"x" * 20)
        return copy_range(fd_in, fd_out, count, *a)

    monkeypatch.setattr(os, "copy_file_range", changing)
    dest = str(tmp_path / "dest.bin")
    digest, fd_in, fd_out = _copy(src, dest)
    assert digest == _sha256(dest)
    assert fd_out in preads


def test_empty_and_small_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(copy_hash, "SETTLED_NS", 0)
    for i, size in enumerate((0, 10, copy_hash._FIRST_SIZE, copy_hash._FIRST_SIZE + 1)):
        src = tmp_path / f"src{i}"
        src.write_bytes(os.urandom(size))
        dest = str(tmp_path / f"dest{i}")
        digest, _fd_in, _fd_out = _copy(str(src), dest)
        assert digest == _sha256(dest) == _sha256(str(src))
