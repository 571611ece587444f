"""The Python a command runs, and the packages it sees.

`command_python(args, env)` resolves a command's program on the
command's PATH and says whether it is a Python. `python_facts(exe, env,
cwd)` asks that Python, once, for its version, executable and installed
distributions: the `.dist-info` and `.egg-info` entries on its
`sys.path`, the first of a name wins, as `importlib.metadata` finds
them (without importing it: that import costs more than the scan),
named as PEP 503 normalizes them. The working directory (`sys.path[0]`
of a script run there) is scanned here.

A Python costs tens of milliseconds to start. With `cache` (a file
path in a dir that exists: none is made), what it said is kept, keyed by the interpreter (path, size,
mtime), the host and the env vars that change `sys.path`, with the
mtime of every `sys.path` directory (and of the user site, existing or
not): a package installed, removed or upgraded changes its directory's
mtime, so the next run asks again. A directory changed less than two
seconds before it was read is not trusted (coarse file times).

Every call has a timeout; a failure is a `note`, never an error.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, Mapping, Sequence

from . import file_util

__all__ = ["PYTHON_TIMEOUT", "command_python", "python_facts"]

PYTHON_TIMEOUT = 5.0

_RACY_NS = 2_000_000_000
_CACHE_ENTRIES = 16
_PATH_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONSAFEPATH",
    "PYTHONPLATLIBDIR",
    "HOME",
)
_PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)?)?[a-z]?(\.exe)?$")


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
        path = file_util.which(prog, env.get("PATH", os.defpath))
    if path is None:
        return None, False
    names = {os.path.basename(path), os.path.basename(os.path.realpath(path))}
    return path, any(_PYTHON_NAME.match(n) for n in names)


# The scan, run by the asked Python (and here, for the working dir).
_SCAN = r"""
import os, re
def _version(path):
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
def scan(entry, dists):
    try:
        names = sorted(os.listdir(entry or "."))
    except OSError:
        return
    for n in names:
        for ext in (".dist-info", ".egg-info"):
            if n.endswith(ext):
                name, _, ver = n[: -len(ext)].partition("-")
                ver = ver.split("-")[0] or _version(os.path.join(entry or ".", n))
                key = re.sub(r"[-_.]+", "-", name).lower()
                if name and ver and key not in dists:
                    dists[key] = ver
def mtime(path):
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return None
"""

_QUERY = (
    _SCAN
    + r"""
import json, site, sys
paths = sys.path if getattr(sys.flags, "safe_path", False) else sys.path[1:]
user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
seen = [[p, mtime(p)] for p in paths + ([user] if user and user not in paths else [])]
dists = {}
for entry in paths:
    scan(entry, dists)
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "implementation": sys.implementation.name,
    "executable": sys.executable,
    "prefix": sys.prefix,
    "packages": dists,
    "paths": seen,
}))
"""
)

_ns: dict[str, Any] = {}


def _scan(path: str) -> dict[str, str]:
    if not _ns:
        exec(compile(_SCAN, "<python_env scan>", "exec"), _ns)
    found: dict[str, str] = {}
    _ns["scan"](path, found)
    return found


def python_facts(
    exe: str,
    env: Mapping[str, str],
    cwd: str,
    cache: str | None = None,
    timeout: float = PYTHON_TIMEOUT,
) -> dict[str, Any]:
    """What Python `exe`, with `env` in `cwd`, says of itself: version,
    implementation, executable, prefix, packages (name -> version); or
    `note` when it could not say. `cache`: a file to keep answers in."""
    key = _cache_key(exe, env) if cache else None
    facts = _cached(cache, key) if cache and key else None
    if facts is None:
        facts = _ask(exe, env, cwd, timeout)
        if "note" in facts:
            return facts
        if cache and key:
            _store(cache, key, facts)
    facts = dict(facts)
    facts.pop("paths", None)
    local = _scan(cwd)
    facts["packages"] = dict(
        local, **{k: v for k, v in facts["packages"].items() if k not in local}
    )
    return facts


def _ask(exe: str, env: Mapping[str, str], cwd: str, timeout: float) -> dict[str, Any]:
    env = dict(env, PYTHONDONTWRITEBYTECODE="1")
    import subprocess  # a Python is asked only when not cached

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
    if not isinstance(facts, dict) or not isinstance(facts.get("packages"), dict):
        return {"note": f"{exe} gave an answer that is not a package list"}
    return facts


def _cache_key(exe: str, env: Mapping[str, str]) -> str | None:
    real = os.path.realpath(exe)
    try:
        st = os.stat(real)
    except OSError:
        return None
    parts = [exe, real, str(st.st_size), str(st.st_mtime_ns), os.uname().nodename]
    parts += [f"{name}={env.get(name)}" for name in _PATH_ENV]
    return "\0".join(parts)


def _cached(cache: str, key: str) -> dict[str, Any] | None:
    entry = _read_cache(cache).get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("paths"), list):
        return None
    for path, mtime in entry["paths"]:
        try:
            now = os.stat(path).st_mtime_ns
        except OSError:
            now = None
        if now != mtime:
            return None
    return entry


def _store(cache: str, key: str, facts: dict[str, Any]) -> None:
    limit = time.time_ns() - _RACY_NS
    if any(m is not None and m > limit for _p, m in facts.get("paths") or []):
        return  # changed a moment ago: another change could share its mtime
    from . import file_util

    entries = _read_cache(cache)
    entries.pop(key, None)
    entries[key] = facts
    kept = dict(list(entries.items())[-_CACHE_ENTRIES:])
    if not os.path.isdir(os.path.dirname(cache)):
        return  # its dir is made by its owner, never here
    try:
        file_util.write_atomic(cache, json.dumps(kept).encode("utf-8"), 0o644)
    except OSError:
        pass  # a cache: the next run asks again


def _read_cache(cache: str) -> dict[str, Any]:
    try:
        with open(cache, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
