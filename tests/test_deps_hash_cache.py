"""The sqlite3 digest cache: hits, misses, racy files, concurrency, failure."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time

import pytest
from wait_util import wait_for

from gage._internal.store import hash_cache
from gage._internal.store.run_meta import hash_cache_path
from gage._internal.util import file_util

BIG = hash_cache.MIN_SIZE


def _write(path: str, data: bytes, age: float = 10.0) -> str:
    with open(path, "wb") as f:
        f.write(data)
    old = time.time() - age
    os.utime(path, (old, old))
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def count_hashes(monkeypatch):
    calls: list[str] = []
    real = file_util.sha256_file

    def counting(path: str) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(file_util, "sha256_file", counting)
    return calls


def test_big_file_hashed_once(tmp_path, count_hashes):
    path = str(tmp_path / "big.bin")
    digest = _write(path, b"x" * BIG)
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        assert hash_cache.file_sha256(path, cache) == digest
        assert hash_cache.file_sha256(path, cache) == digest
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        assert hash_cache.file_sha256(path, cache) == digest
    assert count_hashes == [path]
    assert os.path.exists(hash_cache_path(str(tmp_path)))


def test_small_file_not_cached(tmp_path, count_hashes):
    path = str(tmp_path / "small.txt")
    digest = _write(path, b"hello")
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        assert hash_cache.file_sha256(path, cache) == digest
        assert hash_cache.file_sha256(path, cache) == digest
    assert len(count_hashes) == 2
    # No digest was stored, so no database was made.
    assert not os.path.exists(hash_cache_path(str(tmp_path)))


def test_changed_file_rehashed(tmp_path, count_hashes):
    path = str(tmp_path / "big.bin")
    _write(path, b"a" * BIG, age=20)
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        hash_cache.file_sha256(path, cache)
        # Same size, new content and mtime: in place, so same inode.
        with open(path, "r+b") as f:
            f.write(b"b")
        old = time.time() - 10
        os.utime(path, (old, old))
        expected = hashlib.sha256(b"b" + b"a" * (BIG - 1)).hexdigest()
        assert hash_cache.file_sha256(path, cache) == expected
    assert len(count_hashes) == 2


def test_recent_file_not_stored(tmp_path, count_hashes):
    """A file modified within RACY_SECONDS may change without a new mtime."""
    path = str(tmp_path / "big.bin")
    digest = _write(path, b"r" * BIG, age=0)
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        assert hash_cache.file_sha256(path, cache) == digest
        assert hash_cache.file_sha256(path, cache) == digest
    assert len(count_hashes) == 2


def test_symlink_uses_target(tmp_path, count_hashes):
    path = str(tmp_path / "big.bin")
    digest = _write(path, b"l" * BIG)
    link = str(tmp_path / "link.bin")
    os.symlink(path, link)
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        assert hash_cache.file_sha256(path, cache) == digest
        assert hash_cache.file_sha256(link, cache) == digest
    assert count_hashes == [path]


def test_unusable_cache_falls_back(tmp_path, count_hashes):
    path = str(tmp_path / "big.bin")
    digest = _write(path, b"u" * BIG)
    # The runs home is a file: the database cannot be made there.
    not_a_dir = str(tmp_path / "file")
    _write(not_a_dir, b"")
    for _ in range(2):
        # Closing the handle cannot write its digest: the next hashes again.
        with hash_cache.open_cache(hash_cache_path(not_a_dir)) as cache:
            assert hash_cache.file_sha256(path, cache) == digest
    assert len(count_hashes) == 2
    assert os.path.isfile(not_a_dir)


def test_corrupt_cache_falls_back(tmp_path):
    path = str(tmp_path / "big.bin")
    digest = _write(path, b"k" * BIG)
    with open(hash_cache_path(str(tmp_path)), "wb") as f:
        f.write(b"this is not a database" * 100)
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        assert hash_cache.file_sha256(path, cache) == digest


def _hash_many(args: tuple[str, list[str]]) -> list[str]:
    home, paths = args
    result = []
    for _ in range(3):
        with hash_cache.open_cache(hash_cache_path(home)) as cache:
            result = [hash_cache.file_sha256(p, cache) for p in paths]
    return result


def test_concurrent_processes(tmp_path):
    home = str(tmp_path)
    paths, digests = [], []
    for i in range(12):
        path = str(tmp_path / f"f{i}.bin")
        digests.append(_write(path, bytes([i]) * BIG))
        paths.append(path)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        results = pool.map(
            _hash_many, [(home, paths[i:] + paths[:i]) for i in range(6)]
        )
    for i, result in enumerate(results):
        assert result == digests[i:] + digests[:i]
    with hash_cache.open_cache(hash_cache_path(home)) as cache:
        db = hash_cache._db(cache)
        assert db is not None
        (n,) = db.execute("SELECT count(*) FROM digests_v3").fetchone()
    assert n == 12


def _wait_for_ctime_after(dirname: str, ns: int) -> None:
    """Wait until a change made now gets a ctime later than `ns`: the
    file system's clock is coarse (a tick of a few ms), and a change in
    the same tick would keep ctime. Proven on a probe file, not assumed
    from a sleep."""
    probe = os.path.join(dirname, "ctime-probe")

    def ticked():
        with open(probe, "w") as f:
            f.write("x")
        return os.stat(probe).st_ctime_ns > ns

    wait_for(ticked, "the file system's ctime clock to tick", timeout=10)
    os.remove(probe)


def test_in_place_edit_restoring_mtime_rehashed(tmp_path, count_hashes):
    """An edit that keeps size and restores mtime still changes ctime.

    No process can set ctime, so a cache keyed on it never returns the
    digest of content the file no longer has (issue 11, item 4).
    """
    path = str(tmp_path / "big.bin")
    _write(path, b"a" * BIG, age=20)
    before = os.stat(path)
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        hash_cache.file_sha256(path, cache)
    _wait_for_ctime_after(str(tmp_path), before.st_ctime_ns)
    with open(path, "r+b") as f:
        f.write(b"b")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert after.st_ctime_ns != before.st_ctime_ns
    expected = hashlib.sha256(b"b" + b"a" * (BIG - 1)).hexdigest()
    with hash_cache.open_cache(hash_cache_path(str(tmp_path))) as cache:
        assert hash_cache.file_sha256(path, cache) == expected
    assert len(count_hashes) == 2


def test_memo_full_drops_the_oldest_only(monkeypatch):
    """A staging of 100,000 files remembers more than the memo holds:
    the newest entries (files just placed) stay, so finalizing does not
    read them again."""
    monkeypatch.setattr(hash_cache, "_memo", {})
    monkeypatch.setattr(hash_cache, "_MEMO_MAX", 8)
    for i in range(20):
        hash_cache._memo_put((i, 0, 0, 0, 0), str(i))
    kept = sorted(key[0] for key in hash_cache._memo)
    assert kept == list(range(12, 20))


def test_prefetch_waits_once_for_a_locked_cache(tmp_path, monkeypatch):
    """A cache another process holds locked: the first prefetch waits up
    to the bound once for all its rows, then the cache is given up on
    (later prefetches and lookups wait no more, files are read)."""
    import sqlite3
    import subprocess
    import sys

    path = str(tmp_path / "cache.sqlite3")
    files = []
    for i in range(3):
        p = str(tmp_path / f"f{i}")
        _write(p, os.urandom(100))
        files.append((p, os.stat(p)))
    with hash_cache.open_cache(path) as cache:
        hash_cache.file_digests(files, cache)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM digests_v3").fetchone()
    hash_cache._memo.clear()
    cache = hash_cache.open_cache(path)
    assert hash_cache._db(cache) is not None  # opened before the lock
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
            "time.sleep(60)",
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout and locker.stdout.readline() == "locked\n"
        monkeypatch.setenv("GAGE_LOCK_TIMEOUT", "1.5")
        t0 = time.monotonic()
        keys = [(st.st_dev, st.st_ino) for _p, st in files]
        hash_cache.prefetch(cache, keys[:1])
        first = time.monotonic() - t0
        assert cache.failed
        hash_cache.prefetch(cache, keys)
        digests = hash_cache.file_digests(files, cache)
        took = time.monotonic() - t0
        assert len(digests) == 3
        assert 1.0 <= first < 3.0 and took - first < 0.5, (first, took)
    finally:
        cache.close()
        locker.kill()
        locker.wait()
        hash_cache._locked.discard(path)


def test_listing_digest_changes_with_any_name_or_stat(tmp_path):
    from types import SimpleNamespace

    def st(**kw):
        base = dict(st_dev=1, st_ino=2, st_size=3, st_mtime_ns=4, st_ctime_ns=5)
        return SimpleNamespace(**{**base, **kw})

    one = hash_cache.listing_digest(["a", "b"], [st(), st(st_ino=3)])
    assert one == hash_cache.listing_digest(["a", "b"], [st(), st(st_ino=3)])
    others = [
        hash_cache.listing_digest(["a", "c"], [st(), st(st_ino=3)]),
        hash_cache.listing_digest(["a\0b"], [st()]),
        hash_cache.listing_digest(["a", "b"], [st(), st(st_ino=3, st_ctime_ns=6)]),
        hash_cache.listing_digest(["a", "b"], [st(st_size=4), st(st_ino=3)]),
        # An inode past 2**63 (as text, not packed) is a listing too.
        hash_cache.listing_digest(["a", "b"], [st(), st(st_ino=2**64 - 1)]),
    ]
    assert len({one, *others}) == len(others) + 1
