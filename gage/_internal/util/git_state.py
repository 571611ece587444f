"""The git state of a directory, read with git's own plumbing.

`git_state(path)` says whether `path` is in a git work tree and, when
it is: the commit of HEAD (None in a repo with no commits), the branch
(None on a detached HEAD), the URL of the remote (`origin`, else the
first one) with any user name and password taken out, the directory's
path in the repo, and whether tracked files differ from HEAD, with that
diff (`git diff --no-ext-diff --binary HEAD`: kept up to `diff_limit`
bytes, its sha256 and size always).

Nothing slow runs on a big repo: no untracked-file walk (only tracked
files are compared), no external diff or text conversion, no fsmonitor
hook, and no index write (`GIT_OPTIONAL_LOCKS=0`: the project's files
stay as they are). All git calls share one time budget; a call that
would exceed it is killed and the state says so in `note`. No git on
PATH, or a directory outside any work tree, is a state too, never an
error.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

from . import file_util

__all__ = ["BUDGET", "DIFF_LIMIT", "GitState", "git_state", "strip_credentials"]

BUDGET = 2.0
"""Seconds all git calls of one `git_state` may take together."""

DIFF_LIMIT = 256 * 1024
"""Bytes of the diff kept (its digest covers all of it)."""

_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass(frozen=True)
class GitState:
    """`status`: `ok` (in a work tree; the other fields are set),
    `not-a-repo`, `no-git` (no git on PATH) or `error` (git failed or ran
    out of time: `note` says which). `diff` holds the first bytes of the
    diff of tracked files from HEAD (empty when clean)."""

    status: str
    commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    path: str | None = None
    dirty: bool | None = None
    diff: bytes = b""
    diff_sha256: str | None = None
    diff_size: int | None = None
    note: str | None = None
    seconds: float = 0.0

    def data(self) -> dict[str, Any]:
        """The state as JSON data (without the diff's bytes)."""
        out: dict[str, Any] = {"status": self.status}
        for name in ("commit", "branch", "remote", "path", "dirty", "note"):
            val = getattr(self, name)
            if val is not None:
                out[name] = val
        if self.diff_sha256 is not None:
            out["diff"] = {
                "sha256": self.diff_sha256,
                "size": self.diff_size,
                "kept": len(self.diff),
            }
        out["seconds"] = round(self.seconds, 3)
        return out


class _OutOfTime(Exception):
    pass


class _GitFailed(Exception):
    pass


def git_state(
    path: str, budget: float = BUDGET, diff_limit: int = DIFF_LIMIT
) -> GitState:
    """The git state of directory `path` (see the module doc)."""
    t0 = time.monotonic()
    git = file_util.which("git")
    if git is None:
        return GitState("no-git", note="git not found on PATH")
    call = _Caller(git, path, t0 + budget)
    try:
        return _state(call, diff_limit, t0)
    except _OutOfTime as e:
        call.close()
        return GitState(
            "error",
            note=f"git took longer than {budget:g} s ({e}): git state not recorded",
            seconds=time.monotonic() - t0,
        )
    except _GitFailed as e:
        call.close()
        return GitState("error", note=str(e), seconds=time.monotonic() - t0)


def _state(call: _Caller, diff_limit: int, t0: float) -> GitState:
    # Three reads at once (a process each; none waits for another).
    where = call.start("rev-parse", "--is-inside-work-tree", "--show-prefix")
    status = call.start(
        "status",
        "--porcelain=v2",
        "--branch",
        "--untracked-files=no",
        "--ignore-submodules=dirty",
    )
    remotes = call.start("config", "--get-regexp", r"^remote\..*\.url$")
    code, out = call.result(where)
    lines = out.decode("utf-8", "replace").splitlines()
    if code != 0 or not lines or lines[0] != "true":
        call.result(status)
        call.result(remotes)
        return GitState("not-a-repo", seconds=time.monotonic() - t0)
    prefix = lines[1].rstrip("/") if len(lines) > 1 else ""
    code, out = call.result(status)
    if code != 0:
        raise _GitFailed(f"git status failed with exit code {code}")
    commit, branch, changed = _parse_status(out.decode("utf-8", "replace"))
    remote = _remote(*call.result(remotes))
    diff, digest, size = b"", _EMPTY_SHA256, 0
    if changed:
        code, diff, digest, size = call.diff(commit or _EMPTY_TREE, diff_limit)
        if code != 0:
            raise _GitFailed(f"git diff failed with exit code {code}")
    return GitState(
        "ok",
        commit=commit,
        branch=branch,
        remote=remote,
        path=prefix or ".",
        dirty=size > 0,
        diff=diff,
        diff_sha256=digest,
        diff_size=size,
        seconds=time.monotonic() - t0,
    )


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _parse_status(text: str) -> tuple[str | None, str | None, bool]:
    """Commit (None before the first), branch (None when detached) and
    whether any tracked file changed, from `git status --porcelain=v2
    --branch`."""
    commit = branch = None
    changed = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid ") :]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line[len("# branch.head ") :]
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            changed = True
    return commit, branch, changed


def _remote(code: int, out: bytes) -> str | None:
    if code != 0:
        return None
    urls = {}
    for line in out.decode("utf-8", "replace").splitlines():
        key, _, url = line.partition(" ")
        urls[key[len("remote.") : -len(".url")]] = url
    if not urls:
        return None
    url = urls.get("origin") or next(iter(urls.values()))
    return strip_credentials(url)


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")


def strip_credentials(url: str) -> str:
    """`url` without user name and password (`https://user:token@host/x`
    -> `https://host/x`); an scp-like `git@host:x` keeps its user (a
    login name, never a secret)."""
    return _USERINFO.sub(r"\1", url)


class _Caller:
    """Runs git in `cwd` with what keeps it fast and read-only, each call
    timed out at the shared deadline."""

    def __init__(self, git: str, cwd: str, deadline: float):
        self.git = git
        self.cwd = cwd
        self.deadline = deadline
        self.env = dict(
            os.environ,
            GIT_OPTIONAL_LOCKS="0",
            GIT_TERMINAL_PROMPT="0",
            LC_ALL="C",
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}
        self.env.pop("GIT_DIR", None)
        self.env.pop("GIT_WORK_TREE", None)

    def _args(self, *args: str) -> list[str]:
        return [self.git, "-c", "core.fsmonitor=false", "--no-pager", *args]

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        import subprocess  # git runs only for a git project: not on import

        try:
            p = subprocess.Popen(
                self._args(*args),
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as e:
            raise _GitFailed(f"cannot run git: {e.strerror or e}") from None
        self.procs.append(p)
        self.names[p.pid] = args[0]
        return p

    def close(self) -> None:
        """Kill and reap every call still running (out of time)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()

    def result(self, p: subprocess.Popen[bytes]) -> tuple[int, bytes]:
        """Exit code and output of a started call, by the deadline (else
        it is killed and the state is out of time)."""
        import subprocess

        left = max(0.0, self.deadline - time.monotonic())
        try:
            out, err = p.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise _OutOfTime(f"git {self.names.get(p.pid, '')}".rstrip()) from None
        if p.returncode != 0 and b"safe.directory" in err:
            raise _GitFailed(
                "git refuses the repository: it is owned by another user "
                "(dubious ownership); add it to git's safe.directory to record "
                "its state"
            )
        return p.returncode, out

    def diff(self, base: str, limit: int) -> tuple[int, bytes, str, int]:
        """`git diff` of tracked files from `base`: exit code, the first
        `limit` bytes, the sha256 and size of all of it."""
        args = self._args(
            "diff",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "--binary",
            "--ignore-submodules=dirty",
            base,
            "--",
        )
        import subprocess

        try:
            p = subprocess.Popen(
                args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as e:
            raise _GitFailed(f"cannot run git: {e.strerror or e}") from None
        try:
            kept, digest, size = _read_bounded(p, limit, self.deadline)
            code = p.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, _OutOfTime):
            raise _OutOfTime("git diff") from None
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            assert p.stdout is not None
            p.stdout.close()
        return code, kept, digest, size


def _read_bounded(
    p: subprocess.Popen[bytes], limit: int, deadline: float
) -> tuple[bytes, str, int]:
    import selectors

    assert p.stdout is not None
    fd = p.stdout.fileno()
    h = hashlib.sha256()
    kept = bytearray()
    size = 0
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise _OutOfTime("git diff")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            if len(kept) < limit:
                kept += chunk[: limit - len(kept)]
    return bytes(kept), h.hexdigest(), size
