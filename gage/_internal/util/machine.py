"""What a process runs on: the machine.

`host_facts()` (OS, host, CPU count, memory) is read in this process;
`gpus()` asks `nvidia-smi` when it is on PATH (timed out). The Python a
command runs is `python_env`'s.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from . import file_util

__all__ = ["GPU_TIMEOUT", "gpus", "host_facts"]

GPU_TIMEOUT = 3.0


def host_facts() -> dict[str, Any]:
    """OS, release, machine, host name, CPU count and memory (bytes)."""
    u = os.uname()
    facts: dict[str, Any] = {
        "os": u.sysname,
        "release": u.release,
        "machine": u.machine,
        "host": u.nodename,
        "cpus": os.cpu_count(),
    }
    distro = _os_release()
    if distro:
        facts["distro"] = distro
    try:
        facts["memory"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return facts


def _os_release() -> str | None:
    try:
        with open("/etc/os-release", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        pass
    return None


def gpus(
    env: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """GPUs `nvidia-smi` lists (name, memory in MiB, driver) and a note
    when it could not say; ([], None) without nvidia-smi on PATH."""
    path = (env or os.environ).get("PATH")
    smi = file_util.which("nvidia-smi", path)
    if smi is None:
        return [], None
    args = [
        smi,
        "--query-gpu=name,memory.total,driver_version",
        "--format=csv,noheader,nounits",
    ]
    import subprocess  # only with nvidia-smi on PATH: not on import

    try:
        p = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GPU_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return [], f"nvidia-smi took longer than {GPU_TIMEOUT:g} s"
    except OSError as e:
        return [], f"cannot run nvidia-smi: {e.strerror or e}"
    if p.returncode != 0:
        return [], f"nvidia-smi exited with code {p.returncode}"
    found = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        parts = [s.strip() for s in line.split(",")]
        if len(parts) == 3:
            found.append(
                {"name": parts[0], "memory": _int(parts[1]), "driver": parts[2]}
            )
    return found, None


def _int(s: str) -> int | str:
    try:
        return int(float(s))
    except ValueError:
        return s
