"""Many files at once over SFTP (an `ssh://` remote).

sshfs runs asyncssh in an event loop of its own thread; each of its
calls from another thread is a round trip into that loop. For thousands
of small files that handoff, not the network, is the cost. Here one
call into the loop runs them all: up to IN_FLIGHT files at once,
pipelined on sshfs's channels, each written under a temp name beside
its own and renamed in place (never partly visible), or read whole.
What each file needs next is done in the loop as it ends (`after`,
`got`); the first error stops files not yet started, and is raised
once those in flight end.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..types import RemoteError
from .backend import TMP_PREFIX, Backend, tmp_name

__all__ = ["IN_FLIGHT", "cat_all", "cork", "put_all"]

IN_FLIGHT = 64


def cork(fs: Any) -> None:
    """Send the SSH packets that sshfs's connection makes in one turn of
    its loop in one write to the socket. asyncssh writes each packet as
    it makes it, two per SFTP request (it puts an ignore packet before
    each): a system call, and a wake-up of the server, for each, which
    for thousands of small files is most of the time of a transfer.
    A connection without the transport this expects is left as is."""
    conn: Any = getattr(fs, "_client", None)
    transport = getattr(conn, "_transport", None)
    if transport is not None and hasattr(transport, "write"):
        conn._transport = _Corked(transport, fs.loop)


class _Corked:
    """A transport whose writes of one loop turn go as one write at its
    end (before anything the loop runs after them: a close, an abort);
    all else is the transport's."""

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def _flush(self) -> None:
        data = b"".join(self._held)
        self._held.clear()
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def put_all(
    b: Backend,
    items: Sequence[tuple[str, str | bytes]],
    after: Callable[[str], object] | None = None,
) -> None:
    """Send each (remote path, bytes or local path) of `items`; `after`
    gets each remote path once it is in place."""
    from fsspec.asyn import sync

    if items:
        sync(b.fs.loop, _put_all, b, items, after)


async def _put_all(b: Backend, items: Sequence, after: Any) -> None:
    import asyncio

    sem = asyncio.Semaphore(IN_FLIGHT)
    dirs: dict[str, Any] = {}
    failed: list[BaseException] = []

    async def one(path: str, src: str | bytes) -> None:
        async with sem:
            if failed:
                return
            parent = path.rsplit("/", 1)[0]
            tmp = f"{parent}/{TMP_PREFIX}{tmp_name()}"
            try:
                await _make_dir(b, parent, dirs)
                async with b.fs._pool.get() as channel:
                    await _put_one(channel, src, tmp)
                    await channel.posix_rename(tmp, path)
                if after is not None:
                    after(path)
            except BaseException as e:
                failed.append(_error(b, e, path))
                await _discard(b, tmp)

    await asyncio.gather(*(one(path, src) for path, src in items))
    if failed:
        raise failed[0]


async def _make_dir(b: Backend, path: str, dirs: dict[str, Any]) -> None:
    """Make dir `path` once: its parent first (once, as sshfs makes
    dirs: a request per part of the path), then `path` by one request
    (an objects' fan dir: `objects/sha256/ab`)."""
    import asyncio

    async def make() -> None:
        from asyncssh import SFTPError

        up = path.rsplit("/", 1)[0]
        if up and up != path:
            if up not in dirs:
                dirs[up] = asyncio.ensure_future(b.fs._makedirs(up, exist_ok=True))
            await dirs[up]
        async with b.fs._pool.get() as channel:
            try:
                await channel.mkdir(path)
            except SFTPError:
                pass  # there already (else the write in it says why)

    if path not in dirs:
        dirs[path] = asyncio.ensure_future(make())
    await dirs[path]


async def _put_one(channel: Any, src: str | bytes, tmp: str) -> None:
    if isinstance(src, bytes):
        # block_size=0: each write is one request, not a task per block
        # (asyncssh's parallel writer): open, write, close.
        step = channel.limits.max_write_len or _BLOCK
        async with channel.open(tmp, "wb", block_size=0) as f:
            for at in range(0, len(src), step):
                await f.write(src[at : at + step], at)
    else:
        await channel.put(src, tmp, block_size=_BLOCK)


_BLOCK = 2**14 * 15  # sshfs's WRITE_BLOCK_SIZE


async def _discard(b: Backend, tmp: str) -> None:
    try:
        async with b.fs._pool.get() as channel:
            await channel.remove(tmp)
    except Exception:
        pass


def cat_all(
    b: Backend,
    paths: dict[str, int],
    got: Callable[[str, bytes], object],
    named: Callable[[str, BaseException], BaseException] | None = None,
) -> None:
    """Read each of `paths` (path -> its size: what is read, no stat
    asked; a file of another size reads as other bytes, which its
    digest refuses); `got(path, bytes)` in this thread as each arrives,
    while the loop reads the next (at most HELD read and not yet taken;
    an error `got` raises stops the rest and is raised as is).
    `named(path, error)`: the error to raise for a file that cannot be
    read (a RemoteError naming it)."""
    import asyncio
    import queue

    if not paths:
        return
    arrived: queue.SimpleQueue = queue.SimpleQueue()
    stop: list[BaseException] = []
    loop = b.fs.loop
    run = _cat_all(b, paths, arrived.put, named, stop)
    reading = asyncio.run_coroutine_threadsafe(run, loop)
    try:
        _take_all(arrived, loop, got, stop)
    except BaseException as e:  # interrupted while waiting: no more reads
        stop.append(e)
        _take_all(arrived, loop, None, stop)
        raise
    error = reading.exception()
    if stop:
        raise stop[0]
    if error is not None:
        raise error


def _take_all(arrived: Any, loop: Any, got: Any, stop: list) -> None:
    """Take what arrives until the end (None): each given to `got`
    unless something stopped the rest (`stop`). Places are given back
    to the loop a few at once, and all before this thread waits (one
    wake-up of the loop per file would cost a turn and a write each)."""
    taken, held = 0, None
    while True:
        if taken and (taken >= 16 or arrived.empty()):
            loop.call_soon_threadsafe(_release, held, taken)
            taken = 0
        item = arrived.get()
        if item is None:
            return
        path, data, held = item
        taken += 1
        if got is not None and not stop:
            try:
                got(path, data)
            except BaseException as e:
                stop.append(e)


def _release(sem: Any, n: int) -> None:
    for _ in range(n):
        sem.release()


HELD = 2 * IN_FLIGHT


async def _cat_all(
    b: Backend, paths: dict[str, int], put: Any, named: Any, stop: list
) -> None:
    """Read `paths`, IN_FLIGHT at once, each `put` (path, bytes, the
    semaphore to release once taken); None when all are done."""
    import asyncio

    sem = asyncio.Semaphore(IN_FLIGHT)
    held = asyncio.Semaphore(HELD)
    failed: list[BaseException] = []

    async def one(path: str) -> None:
        await held.acquire()
        async with sem:
            if failed or stop:
                held.release()
                return
            try:
                async with b.fs._pool.get() as channel:
                    data = await _read_one(channel, path, paths[path])
            except BaseException as e:
                held.release()
                error = _error(b, e, path)
                failed.append(named(path, error) if named else error)
                return
            put((path, data, held))

    try:
        await asyncio.gather(*(one(path) for path in paths))
    finally:
        put(None)
    if failed:
        raise failed[0]


async def _read_one(channel: Any, path: str, size: int) -> bytes:
    """The bytes of remote file `path` of `size` bytes: one request for
    size + 1 (a file that grew reads as other bytes) where the server
    takes a read that long; no request to see the end (block_size=0:
    asyncssh's parallel reader asks once more, for the byte after)."""
    step = channel.limits.max_read_len or _BLOCK
    parts = []
    got = 0
    async with channel.open(path, "rb", block_size=0) as f:
        while got <= size:
            part = await f.read(min(step, size + 1 - got), got)
            if not part:
                break
            parts.append(part)
            got += len(part)
            if got == size and len(part) < step:
                break  # a short read: the end (a longer file reads long)
    return b"".join(parts)


def _error(b: Backend, e: BaseException, path: str) -> BaseException:
    if isinstance(e, (RemoteError, KeyboardInterrupt, SystemExit)):
        return e
    return b._error(e, path)
