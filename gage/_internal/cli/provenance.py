"""The environment section of `gage show` (`--env`: all of it)."""

from __future__ import annotations

from typing import Any


def print_environment(run: Any, full: bool = False) -> None:
    """Print where `run` came from: git state, interpreter, machine;
    nothing for a run that recorded none."""
    from ..store import run_records

    git = _read(run_records.read_git, run)
    envd = _read(run_records.read_environment, run)
    if git is None and envd is None:
        if full:
            print("Environment: not recorded")
        return
    print("Environment:")
    rows = (_full_rows if full else _short_rows)(run, git or {}, envd or {})
    width = max(len(k) for k, _v in rows) + 1
    for key, val in rows:
        print(f"  {key + ':':<{width}} {val}")
    packages = ((envd or {}).get("python") or {}).get("packages") or {}
    if full and packages:
        print(f"  packages ({len(packages)}):")
        for name, version in sorted(packages.items()):
            print(f"    {name} {version}")


def _read(read: Any, run: Any) -> dict | None:
    try:
        data = read(run)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _short_rows(run: Any, git: dict, envd: dict) -> list[tuple[str, str]]:
    rows = []
    if git:
        rows.append(("git", _git_line(git)))
    if envd:
        rows.append(("python", _python_line(envd)))
        rows.append(("machine", _machine_line(envd)))
    return rows


def _git_line(git: dict) -> str:
    status = git.get("status")
    if status == "not-a-repo":
        return "not a git work tree"
    if status != "ok":
        return git.get("note") or str(status)
    commit = (git.get("commit") or "")[:8] or "no commits"
    branch = git.get("branch") or "detached HEAD"
    line = f"{commit} ({branch}), {'dirty' if git.get('dirty') else 'clean'}"
    diff = git.get("diff") or {}
    if git.get("dirty") and diff:
        line += (
            f" (diff {diff.get('size')} bytes, sha256 {str(diff.get('sha256'))[:8]})"
        )
    return line


def _python_line(envd: dict) -> str:
    python = envd.get("python")
    if not python:
        notes = envd.get("notes") or []
        return notes[0] if notes else "not recorded"
    n = len(python.get("packages") or {})
    return f"{python.get('version')} ({python.get('executable')}), {n} packages"


def _machine_line(envd: dict) -> str:
    host = envd.get("host") or {}
    parts = [
        str(host.get("host")),
        f"{host.get('os')} {host.get('machine')}",
        f"{host.get('cpus')} CPUs",
    ]
    if host.get("memory"):
        parts.append(_gib(host["memory"]))
    gpus = envd.get("gpus") or []
    parts.append(", ".join(g.get("name", "?") for g in gpus) if gpus else "no GPU")
    return ", ".join(parts)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _full_rows(run: Any, git: dict, envd: dict) -> list[tuple[str, str]]:
    from ..store import run_records

    rows = []
    if git:
        rows.append(("git", _git_line(git)))
        for key in ("commit", "branch", "remote", "path"):
            if git.get(key):
                rows.append((f"git {key}", str(git[key])))
        diff = git.get("diff") or {}
        if git.get("dirty"):
            rows.append(
                ("git diff", f"{diff.get('size')} bytes, sha256 {diff.get('sha256')}")
            )
            kept = diff.get("kept") or 0
            if kept:
                more = "" if kept == diff.get("size") else f", first {kept} bytes"
                rows.append(("git diff file", run_records.git_diff_path(run) + more))
    if envd:
        rows.extend(_env_rows(envd))
    return rows


def _env_rows(envd: dict) -> list[tuple[str, str]]:
    rows = []
    python = envd.get("python") or {}
    command = envd.get("command") or {}
    if python:
        rows.append(
            ("python", f"{python.get('version')} {python.get('implementation')}")
        )
        rows.append(("executable", str(python.get("executable"))))
    rows.append(("command", str(command.get("program"))))
    host = envd.get("host") or {}
    rows.append(("host", str(host.get("host"))))
    os_line = f"{host.get('os')} {host.get('release')} {host.get('machine')}"
    if host.get("distro"):
        os_line += f" ({host['distro']})"
    rows.append(("os", os_line))
    rows.append(("cpus", str(host.get("cpus"))))
    if host.get("memory"):
        rows.append(("memory", _gib(host["memory"])))
    gpus = envd.get("gpus") or []
    rows.append(("gpus", "; ".join(_gpu(g) for g in gpus) if gpus else "none"))
    env = sorted((envd.get("env") or {}).items())
    if env:
        rows.append(("env", ", ".join(f"{k}={_unset(v)}" for k, v in env)))
    for note in envd.get("notes") or []:
        rows.append(("note", note))
    return rows


def _unset(val: Any) -> str:
    return "(unset)" if val is None else str(val)


def _gpu(g: dict) -> str:
    return f"{g.get('name')} ({g.get('memory')} MiB, driver {g.get('driver')})"
