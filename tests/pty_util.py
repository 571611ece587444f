"""Run a command on a pseudo-terminal, as a user at a terminal would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


def run_in_pty(
    args: list[str],
    *,
    cwd=None,
    env=None,
    prompt: bytes | None = None,
    answer: bytes = b"",
    timeout: float = 30,
) -> tuple[int, str]:
    """Exit code and everything the command wrote (raw, `\\r\\n` kept).

    When `prompt` appears in the output, `answer` is typed once.
    """
    master, slave = pty.openpty()
    p = subprocess.Popen(
        args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            out += chunk
            if prompt and not sent and prompt in out:
                os.write(master, answer)
                sent = True
        elif p.poll() is not None:
            break
    code = p.wait(timeout=30)
    os.close(master)
    return code, out.decode(errors="replace")
