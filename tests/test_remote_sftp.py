"""Many files at once over SFTP (`remote/sftp.py`), against a real
OpenSSH sshd on 127.0.0.1 (the `sshd` fixture): reads land in the
caller's thread while the loop reads on, an error there stops the rest,
files of any size up to the server's read limit and past it read whole,
and the packets of a loop turn go in one write."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from remote_servers import sshd  # noqa: F401

from gage._internal.project.remote_spec import RemoteSpec
from gage._internal.remote import sftp
from gage._internal.remote.backend import SMALL, open_backend


@pytest.fixture
def box(sshd, tmp_path):  # noqa: F811
    root = tmp_path / "remote"
    root.mkdir()
    spec = RemoteSpec(
        "box",
        sshd.url(str(root)),
        {"key-file": sshd.key, "known-hosts": sshd.known_hosts},
    )
    return open_backend(spec), root


def _files(root, sizes: dict[str, int]) -> dict[str, int]:
    paths = {}
    for name, size in sizes.items():
        with open(root / name, "wb") as f:
            f.write(bytes([len(name) % 251]) * size)
        paths[f"{root}/{name}"] = size
    return paths


def test_cat_all_lands_in_callers_thread(box):
    b, root = box
    paths = _files(root, {f"f{i}": 10 + i for i in range(3 * sftp.HELD)})
    me = threading.get_ident()
    got = {}

    def land(path, data):
        assert threading.get_ident() == me
        got[path] = data

    sftp.cat_all(b, paths, land)
    assert {p: len(d) for p, d in got.items()} == paths


def test_cat_all_error_in_caller_stops_the_rest(box):
    b, root = box
    paths = _files(root, {f"f{i}": 20 for i in range(4 * sftp.HELD)})
    taken = []

    def land(path, data):
        taken.append(path)
        if len(taken) == 5:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        sftp.cat_all(b, paths, land)
    assert len(taken) == 5  # none given after the error
    # The connection is still of use: nothing was left in flight.
    got = {}
    sftp.cat_all(b, dict(list(paths.items())[:3]), got.__setitem__)
    assert len(got) == 3


def test_cat_all_reads_whole_files_past_the_read_limit(box):
    b, root = box
    sizes = {"one": 1, "small": SMALL, "under": SMALL - 1, "mid": 70_000}
    paths = _files(root, sizes)
    got = {}
    sftp.cat_all(b, paths, got.__setitem__)
    for name, size in sizes.items():
        assert got[f"{root}/{name}"] == bytes([len(name) % 251]) * size


def test_cat_all_reads_a_longer_file_long(box):
    """A file longer than its entry says reads as more bytes than its
    size (which its digest refuses), never cut to the size."""
    b, root = box
    paths = _files(root, {"grown": 100})
    got = {}
    sftp.cat_all(b, {p: 60 for p in paths}, got.__setitem__)
    assert len(got[next(iter(paths))]) > 60


def test_put_all_then_cat_all(box):
    b, root = box
    items = [(f"{root}/objects/sha256/{i:02x}/x{i}", bytes([i]) * i) for i in range(40)]
    items.append((f"{root}/objects/sha256/ff/big", b"z" * (SMALL + 1000)))
    sftp.put_all(b, items)
    for path, data in items:
        with open(path, "rb") as f:
            assert f.read() == data
    assert not [n for _r, _d, fs in os.walk(root) for n in fs if n.startswith(".tmp")]


class _Recording:
    def __init__(self):
        self.writes = []
        self.closed = False

    def write(self, data):
        assert not self.closed
        self.writes.append(data)

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def get_extra_info(self, name, default=None):
        return name


def test_corked_transport_writes_once_per_turn():
    loop = asyncio.new_event_loop()
    try:
        inner = _Recording()
        corked = sftp._Corked(inner, loop)

        async def turns():
            for part in (b"a", b"b", b"c"):
                corked.write(part)
            assert inner.writes == []  # held until the turn ends
            await asyncio.sleep(0)
            corked.write(b"d")
            corked.close()  # what is held goes first

        loop.run_until_complete(turns())
        assert inner.writes == [b"abc", b"d"] and inner.closed
        assert corked.get_extra_info("peername") == "peername"
    finally:
        loop.close()


def test_ssh_connection_is_corked(box):
    b, _root = box
    assert isinstance(b.fs._client._transport, sftp._Corked)


def test_cipher_preference_yields_to_the_users_ssh_config(tmp_path, monkeypatch):
    from gage._internal.remote.backend import cipher_preference

    monkeypatch.setenv("HOME", str(tmp_path))
    assert cipher_preference()["encryption_algs"].startswith("^aes128-gcm")
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("# Ciphers in a comment\nHost x\n")
    assert "encryption_algs" in cipher_preference()
    (tmp_path / ".ssh" / "config").write_text("Host *\n  Ciphers aes256-ctr\n")
    assert cipher_preference() == {}


def test_bare_sftp_failure_is_one_line_that_says_what_to_check():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh

    from gage._internal.remote.errors import describe_error

    spec = RemoteSpec("team", "ssh://host/store", {})
    line = describe_error(asyncssh.SFTPFailure("Failure"), spec, "objects/ab/cd")
    assert line.startswith("the SSH server failed at objects/ab/cd without saying why")
    assert "free space and quota" in line and "\n" not in line
