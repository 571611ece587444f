"""Comments on runs: notes a user adds to a run at any time.

A comment is its author (`$USER`, else the login name), its time (µs
since the epoch) and its text, kept in the run's meta (`run_meta`:
`append_comment`, `read_comments`). Comments are not sealed and are no
input of the run: adding one never changes the run's inputs key nor
what `gage check` verifies. Adding is one whole-line append under the
meta dir's lock, so two `gage comment` processes at once both land;
deleting rewrites the file atomically under the same lock.
"""

from __future__ import annotations

import os
from typing import Any

from ..store import run_meta, run_records
from ..types import GageError, Run

__all__ = ["comment_run", "delete_comment", "list_comments"]


def comment_run(
    run: Run, text: str, author: str | None = None, time: int | None = None
) -> dict[str, Any]:
    """Add a comment to `run` and return it (`author`, `time`, `text`).
    Raises GageError for empty text."""
    text = text.strip()
    if not text:
        raise GageError("the comment is empty: give its text with -m TEXT")
    comment = {
        "author": author or _author(),
        "time": time if time is not None else run_meta.timestamp(),
        "text": text,
    }
    run_records.append_comment(run, comment)
    return comment


def list_comments(run: Run) -> list[dict[str, Any]]:
    """The run's comments, oldest first (numbered from 1 in `gage
    comment --list`)."""
    return run_records.read_comments(run)


def delete_comment(run: Run, n: int) -> dict[str, Any]:
    """Delete comment number `n` (1 = oldest) and return it. Raises
    GageError when the run has no comment `n`."""
    with run_records.comments_lock(run):
        comments = run_records.read_comments(run)
        if not 1 <= n <= len(comments):
            have = (
                f"it has {len(comments)} (1 to {len(comments)})"
                if comments
                else "it has none"
            )
            raise GageError(f"run {run.name} has no comment {n}: {have}", run=run.id)
        removed = comments.pop(n - 1)
        run_records.write_comments(run, comments)
    return removed


def _author() -> str:
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if user:
        return user
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return "unknown"
