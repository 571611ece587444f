"""A run as bytes (run_archive): what a tar keeps, and what it refuses."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from gage._internal.engines import run_archive
from gage._internal.types import Run


def _run(tmp_path) -> Run:
    run_id = "ab" * 16
    run_dir = tmp_path / "home" / run_id
    (run_dir / "sub").mkdir(parents=True)
    meta = tmp_path / "home" / (run_id + ".meta")
    meta.mkdir()
    (meta / "id").write_text(run_id + "\n")
    (meta / "name").write_text("tosu-kabe\n")
    (run_dir / "train.py").write_text("print(1)\n")
    os.chmod(run_dir / "train.py", 0o444)
    (run_dir / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(run_dir / "run.sh", 0o755)
    os.link(run_dir / "train.py", run_dir / "sub" / "hard.py")
    os.symlink("../train.py", run_dir / "sub" / "rel-link")
    os.symlink("/shared/data/big.bin", run_dir / "big.bin")
    return Run(run_id, str(run_dir), "tosu-kabe")


def test_round_trip_keeps_modes_links_and_materialises_hardlinks(tmp_path):
    run = _run(tmp_path)
    data = run_archive.pack_run(run)
    dest = tmp_path / "worker"
    dest.mkdir()
    back = run_archive.unpack_run(data, str(dest), run.id)
    assert back.id == run.id and back.name == run.name
    d = dest / run.id
    assert stat.S_IMODE(os.stat(d / "train.py").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(d / "run.sh").st_mode) == 0o755
    assert os.readlink(d / "sub" / "rel-link") == "../train.py"
    assert os.readlink(d / "big.bin") == "/shared/data/big.bin"
    hard = d / "sub" / "hard.py"
    assert not hard.is_symlink() and hard.read_text() == "print(1)\n"
    assert os.stat(hard).st_ino != os.stat(d / "train.py").st_ino
    assert (dest / (run.id + ".meta") / "name").read_text() == "tosu-kabe\n"


def test_pack_paths_sends_meta_and_named_files_only(tmp_path):
    run = _run(tmp_path)
    (tmp_path / "home" / run.id / "model.bin").write_bytes(b"\0" * 10)
    data = run_archive.pack_paths(run, ["model.bin"])
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert f"{run.id}/model.bin" in names
    assert f"{run.id}/train.py" not in names
    assert f"{run.id}.meta/id" in names


@pytest.mark.parametrize(
    "name, kind",
    [
        ("../evil", "file"),
        ("/etc/evil", "file"),
        ("{id}/../../evil", "file"),
        ("other/evil", "file"),
        ("{id}/dev", "fifo"),
        ("{id}/big.bin/x", "file"),  # through a symlink
    ],
)
def test_unsafe_members_are_refused(tmp_path, name, kind):
    run = _run(tmp_path)
    src = tarfile.open(fileobj=io.BytesIO(run_archive.pack_run(run)))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in src.getmembers():
            tar.addfile(m, src.extractfile(m) if m.isreg() else None)
        info = tarfile.TarInfo(name.format(id=run.id))
        if kind == "fifo":
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    dest = tmp_path / "worker"
    dest.mkdir()
    with pytest.raises(run_archive.ArchiveError) as e:
        run_archive.unpack_run(buf.getvalue(), str(dest), run.id)
    assert "nothing was extracted" in str(e.value)
    assert os.listdir(dest) == []
    assert not (tmp_path / "evil").exists()


def test_digest_mismatch(tmp_path):
    data = run_archive.pack_run(_run(tmp_path))
    digest = run_archive.archive_digest(data)
    run_archive.check_digest(data, digest, "run x")
    with pytest.raises(run_archive.ArchiveError, match="does not match its digest"):
        run_archive.check_digest(data + b"\0", digest, "run x")


def test_digest_counts_every_byte(tmp_path):
    data = run_archive.pack_run(_run(tmp_path))
    digest = run_archive.archive_digest(data)
    for pos in range(0, len(data), 97):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises(run_archive.ArchiveError, match="does not match"):
            run_archive.check_digest(bytes(bad), digest, "run x")


_BIG = 2 * 1024 * 1024  # above hash_cache.MIN_SIZE: digests are cached


@pytest.fixture
def staged_big(tmp_path, monkeypatch):
    """A staged run whose dependency `data.bin` is a large file."""
    import contextlib

    from gage._internal.cli import main as cli
    from gage._internal.home import runs

    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text(
        '[op]\nexec = "python -c pass"\n'
        '[[op.depends]]\ntype = "project-files"\nfiles = "data.bin"\n'
    )
    (project / "data.bin").write_bytes(os.urandom(_BIG))
    monkeypatch.chdir(project)
    home = str(tmp_path / "home")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["run", "op", "--stage", "-y", "--runs-dir", home]) == 0
    return runs.load_run(os.path.join(home, out.getvalue().split()[-1]))


def _start(run, dest) -> tuple[int, str]:
    import contextlib

    from gage._internal.cli import main as cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["run", "--start", run.run_dir, "-y", "--runs-dir", str(dest)])
    return code, err.getvalue()


def test_checked_digests_spare_verification_a_read(staged_big, tmp_path, monkeypatch):
    from gage._internal.util import file_util

    data = run_archive.pack_run(staged_big)
    digests = run_archive.check_digest(data, run_archive.archive_digest(data), "run x")
    dest = tmp_path / "worker"
    dest.mkdir()
    run = run_archive.unpack_run(data, str(dest), staged_big.id, digests)
    read = []
    real = file_util.sha256_file
    monkeypatch.setattr(
        file_util, "sha256_file", lambda path, *a: read.append(path) or real(path, *a)
    )
    assert _start(run, dest)[0] == 0
    assert not any(p.endswith("data.bin") for p in read)


def test_checked_digests_still_refuse_a_changed_file(staged_big, tmp_path):
    # The file changed and the archive digest made again (what a
    # changed staged copy at home looks like): the digest recorded is
    # that of the bytes that came, so start verification refuses it.
    data = run_archive.pack_run(staged_big)
    src = tarfile.open(fileobj=io.BytesIO(data))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            if m.name == f"{staged_big.id}/data.bin":
                dst.addfile(m, io.BytesIO(os.urandom(m.size)))
            else:
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    tampered = buf.getvalue()
    digests = run_archive.check_digest(
        tampered, run_archive.archive_digest(tampered), "run x"
    )
    dest = tmp_path / "worker"
    dest.mkdir()
    run = run_archive.unpack_run(tampered, str(dest), staged_big.id, digests)
    code, err = _start(run, dest)
    assert code == 1
    assert "differs from its manifest" in err and "data.bin" in err
