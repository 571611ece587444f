"""A run as bytes (run_archive): what a tar keeps, and what it refuses."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from gage._internal import run_archive
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
