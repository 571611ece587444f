"""A remote's file system: open it through fsspec, move bytes, say what
went wrong in one line.

fsspec does the talking to a server: `sshfs` (asyncssh) for `ssh://`,
`s3fs` for `s3://` (with `endpoint-url` for an S3-compatible store),
the `remote` extra, imported only here, when a remote is opened. A
directory (or a mounted one) needs no client: it is read and written
with the kernel's own calls, and nothing from fsspec is imported.

Nothing is ever visible under its final name before it is whole: a
file goes to a temp name beside it (`.tmp-HOST-PID-...`, never a sha256
or run id) and is renamed in place (a POSIX rename on SFTP), except on
S3, where a PUT is atomic by itself. A temp name in the file's own dir
(not one shared dir) lets two threads create files at once: a
directory's creates are serialized by its lock.

A directory remote moves bytes with the kernel (small files read and
written whole, open/write/close/rename; big ones by reflink or
`sendfile`), a thread per core: the kernel's work of creating files is
what takes the time, and it runs in parallel.

Every failure leaves here as a RemoteError whose message names the
remote and says what to do: host not reachable, authentication
refused, bucket missing, permission denied, no space left (the line
is `errors.describe_error`).
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..project.remote_spec import RemoteSpec
from ..types import RemoteError
from ..util import file_util
from .errors import bucket_missing, describe_error

__all__ = ["Backend", "open_backend"]

_host = socket.gethostname()


@dataclass
class Backend:
    """An open remote: its spec, fsspec file system (None for a
    directory) and root path."""

    spec: RemoteSpec
    fs: Any
    root: str
    atomic_put: bool = False
    _dirs: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def label(self) -> str:
        return f"remote '{self.spec.name}' ({self.spec.url})"

    @property
    def local(self) -> bool:
        return self.spec.scheme == "file"

    @property
    def pipelined(self) -> bool:
        """Many files go in one call (`sftp.put_all`, `cat_all`)."""
        return self.spec.scheme in ("ssh", "sftp")

    @property
    def jobs(self) -> int:
        """Transfers at once: for a directory, one per core (up to 4:
        the kernel does the work; see the module doc)."""
        if self.local:
            return max(1, min(self.spec.jobs, os.cpu_count() or 1, 4))
        return self.spec.jobs

    def path(self, *parts: str) -> str:
        return (
            "/".join((self.root.rstrip("/"),) + parts) if self.root else "/".join(parts)
        )

    # -- reading

    def cat(self, path: str) -> bytes:
        with self.errors(path):
            if self.local:
                with file_util.open_regular(path) as f:
                    return f.read()
            return self.fs.cat_file(path)

    def get_file(self, path: str, local: str) -> str | None:
        """Copy `path` to a new local file `local`: the sha256 of what
        was written when it is known on the way (from a directory
        remote), else None."""
        with self.errors(path):
            if self.local:
                return _copy_hashing(path, local)
            self.fs.get_file(path, local)
        return None

    def read_small(self, path: str, size: int | None) -> bytes | None:
        """The bytes of `path` when it is small (at most SMALL bytes: a
        directory remote's file by its fstat, another's by `size`, what
        its entry says), read whole in one request; else None (see
        `get_file`)."""
        with self.errors(path):
            if self.local:
                return _read_small(path)
            if size is not None and 0 < size <= SMALL:
                return self.fs.cat_file(path)
        return None

    def names(self, path: str) -> list[str]:
        """Names in dir `path`; [] when there is none."""
        with self.errors(path, missing_ok=True):
            if self.local:
                return os.listdir(path)
            return [
                os.path.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False)
            ]
        return []

    def exists(self, path: str) -> bool:
        with self.errors(path):
            if self.local:
                return os.path.lexists(path)
            return bool(self.fs.exists(path))

    # -- writing

    def remove_quietly(self, path: str) -> None:
        """Remove file `path` if it can be; whatever fails is left."""
        try:
            os.unlink(path) if self.local else self.fs.rm_file(path)
        except Exception:
            pass

    def put_file(self, local: str, path: str) -> None:
        """Copy local file `local` to `path`, never partly visible there."""
        if self.spec.scheme in ("ssh", "sftp"):
            self._put(path, lambda dest: _sftp_put(self.fs, local, dest))
        elif self.local:
            self._put(path, lambda dest: file_util.copy_file(local, dest))
        else:
            self._put(path, lambda dest: self.fs.put_file(local, dest))

    def put_bytes(self, data: bytes, path: str) -> None:
        if self.local:
            self._put(path, lambda dest: _write_new(dest, data))
        else:
            self._put(path, lambda dest: self.fs.pipe_file(dest, data))

    def _put(self, path: str, write: Any) -> None:
        with self.errors(path):
            if self.atomic_put:
                write(path)
                return
            parent = path.rsplit("/", 1)[0]
            tmp = f"{parent}/{TMP_PREFIX}{tmp_name()}"
            self._makedirs(parent)
            try:
                write(tmp)
                if self.local:
                    os.replace(tmp, path)
                else:
                    self.fs.mv(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp) if self.local else self.fs.rm_file(tmp)
                except Exception:
                    pass
                raise

    def _makedirs(self, path: str) -> None:
        with self._lock:
            if path in self._dirs:
                return
        if self.local:
            os.makedirs(path, exist_ok=True)
        else:
            self.fs.makedirs(path, exist_ok=True)
        with self._lock:
            self._dirs.add(path)

    # -- errors

    @contextmanager
    def errors(self, path: str, missing_ok: bool = False) -> Iterator[None]:
        """Turn what a backend raises about `path` into a RemoteError; a
        missing `path` is no error when `missing_ok`."""
        try:
            yield
        except FileNotFoundError as e:
            if missing_ok and not bucket_missing(e):
                return
            raise self._error(e, path) from None
        except RemoteError:
            raise
        except Exception as e:
            raise self._error(e, path) from None

    def _error(self, e: BaseException, path: str) -> RemoteError:
        return RemoteError(f"{self.label}: {describe_error(e, self.spec, path)}")


TMP_PREFIX = ".tmp-"  # a file on its way, beside its final name


def tmp_name() -> str:
    """A name no other process (here or on another host) and no other
    file of this one takes: host, pid and start time, then a count."""
    global _tmp_prefix
    if _tmp_prefix is None:
        _tmp_prefix = f"{_host}-{os.getpid()}-{time.time_ns()}"
    return f"{_tmp_prefix}-{next(_tmp_count)}"


def stale_temp(name: str) -> bool:
    """True for the temp name of a file that a process of this host left
    on its way and can no longer finish (it has ended: killed mid-push).
    Another host's temps are never judged."""
    if not name.startswith(TMP_PREFIX):
        return False
    host, pid, _ns, _count = (name[len(TMP_PREFIX) :].rsplit("-", 3) + ["", "", ""])[:4]
    if host != _host or not pid.isdigit() or int(pid) == os.getpid():
        return False
    from ..util import run_exec

    return not run_exec.pid_alive(int(pid))


def _forget_prefix() -> None:
    global _tmp_prefix
    _tmp_prefix = None


_tmp_prefix: str | None = None
_tmp_count = itertools.count()
os.register_at_fork(after_in_child=_forget_prefix)


def _read_small(path: str) -> bytes | None:
    """A regular file's bytes when it has at most SMALL (else None),
    never blocking on a special file: open, fstat, read, close."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise file_util.NotRegularFile(errno.EINVAL, "not a regular file", path)
        if st.st_size > SMALL:
            return None
        data = os.read(fd, st.st_size + 1)
        # A regular file reads short only at its end; one that grew since
        # the fstat is copied as a big one.
        return data if len(data) <= st.st_size else None
    finally:
        os.close(fd)


def _copy_hashing(src: str, dest: str) -> str:
    """Copy `src` to a new file `dest`: the sha256 of the bytes written
    (a small file read once; a big one copied by the kernel while this
    thread hashes the copy)."""
    from ..store import copy_hash

    st = os.stat(src)
    if st.st_size <= SMALL:
        digest = file_util.copy_file(src, dest, st)
        if digest:
            return digest
        return file_util.sha256_file(dest)  # pragma: no cover - never small
    with file_util.open_regular(src) as f:
        fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            digest = copy_hash.kernel_copy_hashing(f.fileno(), fd, None)
            return digest or copy_hash.hash_stream(f, fd, None)
        finally:
            os.close(fd)


SMALL = 256 * 1024  # file_util.copy_file reads a file this small whole


def _write_new(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _sftp_put(fs: Any, local: str, dest: str) -> None:
    """sshfs's put_file without the makedirs it does first (a round trip
    per part of the path, for every file): the dirs are made once."""
    from fsspec.asyn import sync

    async def put() -> None:
        async with fs._pool.get() as channel:
            await channel.put(local, dest, block_size=_SFTP_BLOCK)

    sync(fs.loop, put)


_SFTP_BLOCK = 2**14 * 15  # sshfs's WRITE_BLOCK_SIZE


# ---------------------------------------------------------------------------
# Open


def open_backend(spec: RemoteSpec) -> Backend:
    """Open the remote of `spec` (connect, for ssh); RemoteError when it
    cannot be reached or the extra it needs is not installed."""
    scheme = spec.scheme
    try:
        if scheme == "file":
            return _open_local(spec)
        if scheme in ("ssh", "sftp"):
            return _open_ssh(spec)
        return _open_s3(spec)
    except ImportError as e:
        raise RemoteError(
            f"remote '{spec.name}' ({spec.url}) needs the 'remote' extra "
            f"({e.name} is missing): pip install 'gage-runs[remote]'"
        ) from None
    except RemoteError:
        raise
    except Exception as e:
        raise RemoteError(
            f"remote '{spec.name}' ({spec.url}): {describe_error(e, spec)}"
        ) from None


def _open_local(spec: RemoteSpec) -> Backend:
    # A directory is read and written with the kernel's calls (see the
    # module doc): no fsspec file system to import.
    root = spec.url[len("file://") :] if spec.url.startswith("file://") else spec.url
    root = os.path.abspath(root)
    if not os.path.isdir(os.path.dirname(root)):
        raise RemoteError(
            f"remote '{spec.name}': {os.path.dirname(root)} is not a directory: "
            "create it or fix the url"
        )
    return Backend(spec, None, root)


def _open_ssh(spec: RemoteSpec) -> Backend:
    import warnings
    from urllib.parse import unquote, urlsplit

    with warnings.catch_warnings():
        # asyncssh still names DSA keys, which cryptography deprecates.
        warnings.simplefilter("ignore")
        from sshfs import SSHFileSystem

    parts = urlsplit(spec.url)
    if not parts.hostname:
        raise RemoteError(f"remote '{spec.name}': url {spec.url} names no host")
    kw: dict[str, Any] = {
        "port": parts.port or 22,
        "connect_timeout": spec.timeout,
        "login_timeout": spec.timeout,
        "timeout": spec.timeout,
        # A server that stops answering mid-transfer drops the connection
        # (about `timeout` seconds) instead of hanging gage.
        "keepalive_interval": max(1.0, spec.timeout / 3),
        "keepalive_count_max": 3,
        "known_hosts": spec.options.get("known-hosts", ()),
        "skip_instance_cache": True,
        "max_sessions": max(spec.jobs + 2, 4),
        **cipher_preference(),
    }
    if parts.username:
        kw["username"] = unquote(parts.username)
    if "key-file" in spec.options:
        kw["client_keys"] = [spec.options["key-file"]]
    fs = SSHFileSystem(parts.hostname, **kw)
    from .sftp import cork

    cork(fs)  # a loop turn's packets in one write (see sftp.cork)
    root = unquote(parts.path) or "."
    return Backend(spec, fs, root)


def cipher_preference() -> dict[str, str]:
    """AES-GCM first, then asyncssh's defaults (the server picks one it
    allows): asyncssh's ChaCha20 makes three cipher objects per packet,
    ~7x the CPU of AES-GCM, and a small file is ~12 packets. Nothing
    when an ssh config names `Ciphers`: asyncssh would put this argument
    ahead of the user's choice."""
    import re

    for path in (os.path.expanduser("~/.ssh/config"), "/etc/ssh/ssh_config"):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if re.search(r"(?im)^\s*ciphers\b", text):
            return {}
    return {"encryption_algs": "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"}


def _open_s3(spec: RemoteSpec) -> Backend:
    import s3fs

    t = spec.timeout
    kw: dict[str, Any] = {
        "skip_instance_cache": True,
        "config_kwargs": {
            "connect_timeout": t,
            "read_timeout": t,
            "retries": {"max_attempts": 2},
        },
    }
    if "endpoint-url" in spec.options:
        kw["endpoint_url"] = spec.options["endpoint-url"]
    if "profile" in spec.options:
        kw["profile"] = spec.options["profile"]
    if "region" in spec.options:
        kw["client_kwargs"] = {"region_name": spec.options["region"]}
    fs = s3fs.S3FileSystem(**kw)
    root = spec.url.split("://", 1)[1].rstrip("/")
    backend = Backend(spec, fs, root, atomic_put=True)
    bucket = root.split("/", 1)[0]
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
    except FileNotFoundError:
        raise RemoteError(
            f"{backend.label}: bucket missing: {bucket}: create it or fix the url"
        ) from None
    except Exception as e:
        raise backend._error(e, bucket) from None
    return backend


# ---------------------------------------------------------------------------
# Many at once


def run_all(jobs: int, fn: Any, items: list, done: Any = None) -> None:
    """`fn(item)` for each of `items`, `jobs` at once (in this thread
    when 1); `done(item, result)` in this thread as each ends. The first
    error stops what has not started, waits for what has, and is
    raised."""
    if not items:
        return
    if jobs <= 1 or len(items) == 1:
        for item in items:
            result = fn(item)
            if done is not None:
                done(item, result)
        return
    _run_pool(min(jobs, len(items)), fn, items, done)


def _run_pool(jobs: int, fn: Any, items: list, done: Any) -> None:
    """`jobs` threads take the next item as they finish one; results come
    back on a queue (no future and no wait per item)."""
    import queue

    todo = iter(items)
    take = threading.Lock()
    stop = threading.Event()
    results: queue.SimpleQueue = queue.SimpleQueue()
    end = object()

    def work() -> None:
        try:
            while not stop.is_set():
                with take:
                    item = next(todo, end)
                if item is end:
                    break
                try:
                    results.put((item, fn(item), None))
                except BaseException as e:
                    stop.set()  # the others take nothing more
                    results.put((item, None, e))
                    break
        finally:
            results.put(end)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(jobs)]
    for t in threads:
        t.start()
    first: BaseException | None = None
    try:
        live = jobs
        while live:
            got = results.get()
            if got is end:
                live -= 1
                continue
            item, result, error = got
            if error is not None:
                first = first or error
                stop.set()
            elif first is None and done is not None:
                done(item, result)
    finally:
        stop.set()
        for t in threads:
            t.join()
    if first is not None:
        raise first
