"""What a process runs on: the machine, and the Python a command runs.

`host_facts()` (OS, host, CPU count, memory) is read in this process;
`gpus()` asks `nvidia-smi` when it is on PATH. `command_python(args,
env)` resolves a command's program on the command's PATH and says
whether it is a Python; `python_facts(exe, env, cwd)` asks that Python,
once, for its version, executable and installed distributions: the
`.dist-info` and `.egg-info` entries on its `sys.path`, first one wins,
as `importlib.metadata` finds them (without importing it: that import
costs more than the scan), named as PEP 503 normalizes them. Every call has a timeout; a failure is a `note`,
never an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from typing import Any, Mapping, Sequence

__all__ = [
    "PYTHON_TIMEOUT",
    "command_python",
    "gpus",
    "host_facts",
    "normalize_name",
    "python_facts",
]

PYTHON_TIMEOUT = 10.0
GPU_TIMEOUT = 3.0

_PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)?)?[a-z]?(\.exe)?$")


def host_facts() -> dict[str, Any]:
    """OS, release, machine, host name, CPU count and memory (bytes)."""
    u = os.uname()
    facts: dict[str, Any] = {
        "os": u.sysname,
        "release": u.release,
        "machine": u.machine,
        "host": socket.gethostname(),
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
    smi = shutil.which("nvidia-smi", path=path)
    if smi is None:
        return [], None
    args = [
        smi,
        "--query-gpu=name,memory.total,driver_version",
        "--format=csv,noheader,nounits",
    ]
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


def command_python(
    args: Sequence[str], env: Mapping[str, str], cwd: str | None = None
) -> tuple[str | None, bool]:
    """The program of command `args` resolved on `env`'s PATH (relative
    to `cwd` when it has a slash), and whether it is a Python (by its
    name, or the name its links lead to)."""
    if not args:
        return None, False
    prog = args[0]
    if os.sep in prog:
        path: str | None = os.path.join(cwd or os.getcwd(), prog)
        if not (path and os.access(path, os.X_OK) and os.path.isfile(path)):
            path = None
    else:
        path = shutil.which(prog, path=env.get("PATH", os.defpath))
    if path is None:
        return None, False
    names = {os.path.basename(path), os.path.basename(os.path.realpath(path))}
    return path, any(_PYTHON_NAME.match(n) for n in names)


_QUERY = r"""
import json, os, re, sys
def version(path):
    for meta in ("METADATA", "PKG-INFO"):
        full = os.path.join(path, meta) if os.path.isdir(path) else path
        try:
            with open(full, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("Version:"):
                        return line[8:].strip()
                    if not line.strip():
                        break
        except OSError:
            pass
    return None
dists = {}
for entry in sys.path:
    try:
        names = sorted(os.listdir(entry or "."))
    except OSError:
        continue
    for n in names:
        for ext in (".dist-info", ".egg-info"):
            if n.endswith(ext):
                name, _, ver = n[: -len(ext)].partition("-")
                ver = ver.split("-")[0] or version(os.path.join(entry or ".", n))
                key = re.sub(r"[-_.]+", "-", name).lower()
                if name and ver and key not in dists:
                    dists[key] = ver
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "implementation": sys.implementation.name,
    "executable": sys.executable,
    "prefix": sys.prefix,
    "packages": dists,
}))
"""


def python_facts(
    exe: str, env: Mapping[str, str], cwd: str, timeout: float = PYTHON_TIMEOUT
) -> dict[str, Any]:
    """What Python `exe`, with `env` in `cwd`, says of itself: version,
    implementation, executable, prefix, packages (name -> version); or
    `note` when it could not say."""
    env = dict(env, PYTHONDONTWRITEBYTECODE="1")
    try:
        p = subprocess.run(
            [exe, "-c", _QUERY],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"note": f"{exe} did not answer in {timeout:g} s"}
    except OSError as e:
        return {"note": f"cannot run {exe}: {e.strerror or e}"}
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        last = err[-1] if err else f"exit code {p.returncode}"
        return {"note": f"{exe} could not list its packages: {last[:200]}"}
    try:
        facts = json.loads(p.stdout)
    except ValueError:
        return {"note": f"{exe} gave an answer that is not JSON"}
    return facts if isinstance(facts, dict) else {"note": f"{exe}: not an object"}


def normalize_name(name: str) -> str:
    """A distribution name as PEP 503 normalizes it (`Foo_Bar` -> `foo-bar`)."""
    return re.sub(r"[-_.]+", "-", name).lower()
