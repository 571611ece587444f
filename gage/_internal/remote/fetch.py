"""Pinned project files fetched from a remote: a `project-files`
dependency whose file is missing from the project but pinned by sha256
(see lifecycle/dep_pins) has its bytes in the remote's objects when a
run that used it was pushed. They are downloaded into the runs home's
object cache, each checked against its sha256 before it is kept
(`download.download`), and staging places them in the run from there. The
project itself is never written.
"""

from __future__ import annotations

from typing import Callable

from ..lifecycle.dep_pins import Absent
from ..types import RemoteError
from .backend import Backend
from .download import ObjectMismatch, download

__all__ = ["fetch_absent"]


def fetch_absent(
    home: str,
    b: Backend,
    absent: list[Absent],
    say: Callable[[str], object] | None = None,
) -> None:
    """Download the objects of `absent` from `b` into the object cache of
    `home`; `say` is told each file that came. RemoteError naming the
    file when the remote lacks it or its bytes are not its pin."""
    if not absent:
        return
    by_digest = {a.digest: a for a in absent}

    def name(digest: str, e: RemoteError) -> RemoteError:
        a = by_digest[digest]
        what = f"'{a.source}' (sha256 {digest[:12]}, pinned by {a.where})"
        if isinstance(e, ObjectMismatch):
            return RemoteError(
                f"{b.label}: the object for {what} does not match its sha256 "
                f"({e}): refused; 'gage push --force' of a run that has the "
                "file repairs the remote"
            )
        if "not found" in str(e):
            return RemoteError(
                f"{b.label}: {what} is not on the remote: push a run that used "
                "it from a runs home that has it, or restore the file"
            )
        return e

    download(home, b, {d: None for d in by_digest}, None, name)
    if say:
        for a in absent:
            say(
                f"Fetched {a.source} (sha256 {a.digest[:12]}) from remote "
                f"'{b.spec.name}' into the object cache"
            )
