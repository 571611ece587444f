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

__all__ = ["IN_FLIGHT", "cat_all", "put_all"]

IN_FLIGHT = 64


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
                if parent not in dirs:
                    dirs[parent] = asyncio.ensure_future(
                        b.fs._makedirs(parent, exist_ok=True)
                    )
                await dirs[parent]
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


async def _put_one(channel: Any, src: str | bytes, tmp: str) -> None:
    if isinstance(src, bytes):
        async with channel.open(tmp, "wb") as f:
            await f.write(src)
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
    digest refuses); `got(path, bytes)` in the loop as each arrives (an
    error it raises stops the rest and is raised as is). `named(path,
    error)`: the error to raise for a file that cannot be read (a
    RemoteError naming it)."""
    from fsspec.asyn import sync

    if paths:
        sync(b.fs.loop, _cat_all, b, paths, got, named)


async def _cat_all(b: Backend, paths: dict[str, int], got: Any, named: Any) -> None:
    import asyncio

    sem = asyncio.Semaphore(IN_FLIGHT)
    failed: list[BaseException] = []

    async def one(path: str) -> None:
        async with sem:
            if failed:
                return
            try:
                async with b.fs._pool.get() as channel:
                    async with channel.open(path, "rb") as f:
                        data = await f.read(paths[path] + 1)
            except BaseException as e:
                error = _error(b, e, path)
                failed.append(named(path, error) if named else error)
                return
            try:
                got(path, data)
            except BaseException as e:
                failed.append(e)

    await asyncio.gather(*(one(path) for path in paths))
    if failed:
        raise failed[0]


def _error(b: Backend, e: BaseException, path: str) -> BaseException:
    if isinstance(e, (RemoteError, KeyboardInterrupt, SystemExit)):
        return e
    return b._error(e, path)
