"""Slurm's own commands, run as processes: sbatch, squeue, scancel,
scontrol (and sacct where accounting is on).

No Python binding: these commands are on every Slurm login node, speak
to the cluster its admins configured (SLURM_CONF, munge), and cost one
short process per call. Every call has a timeout, so a controller that
does not answer never hangs gage.

Job states are Slurm's names (`PENDING`, `RUNNING`, `COMPLETED`,
`TIMEOUT`, ...); a job Slurm no longer knows reads `UNKNOWN`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import NamedTuple

from ..types import GageError

__all__ = [
    "FINAL_STATES",
    "Job",
    "SlurmError",
    "cancel",
    "job_info",
    "live_jobs",
    "missing",
    "queue",
    "submit",
]

COMMANDS = ("sbatch", "squeue", "scancel", "scontrol")

TIMEOUT = 30.0
"""Seconds any one Slurm command may take (GAGE_SLURM_TIMEOUT)."""

FINAL_STATES = frozenset(
    (
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "UNKNOWN",
    )
)
"""States of a job that has ended (Slurm may still requeue a PREEMPTED
or NODE_FAIL job: it then reads PENDING again)."""


class SlurmError(GageError):
    """A Slurm command failed or is not installed."""


class Job(NamedTuple):
    """A job as Slurm reports it: its state, Slurm's reason for it, and
    the exit code of its batch script (`0:0`, `1:0`, `0:15`), if known."""

    id: str
    state: str
    reason: str = ""
    exit_code: str = ""


def missing() -> list[str]:
    """Slurm commands not found on PATH (empty when Slurm is here)."""
    return [c for c in COMMANDS if not shutil.which(c)]


def submit(script: str, args: list[str]) -> str:
    """Submit a batch script (given as text, on sbatch's stdin) with
    sbatch `args`; its job id."""
    out = _run(["sbatch", "--parsable", *args], input=script)
    job_id = out.strip().splitlines()[-1].split(";")[0] if out.strip() else ""
    if not job_id:
        raise SlurmError(f"sbatch printed no job id (output: {out.strip()!r})")
    return job_id


def cancel(ids: list[str], signal: str | None = None) -> None:
    """scancel the jobs (with `signal`: send it to their processes)."""
    if ids:
        _run(["scancel", *(["--signal", signal] if signal else []), *ids])


def queue(ids: list[str]) -> dict[str, Job]:
    """The jobs squeue knows among `ids` (ended ones too, while Slurm
    keeps them), by id. One squeue call for them all."""
    if not ids:
        return {}
    out = _run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"])
    jobs = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0] in ids:
            jobs[parts[0]] = Job(parts[0], parts[1], _reason(parts[2]))
    return jobs


def job_info(job_id: str) -> Job:
    """A job's state, reason and exit code: from sacct when Slurm keeps
    accounting, else scontrol (while the controller remembers it), else
    `UNKNOWN`."""
    try:
        out = _run(["scontrol", "show", "job", "-o", job_id])
    except SlurmError:
        out = ""
    fields = dict(
        f.split("=", 1) for f in out.split() if "=" in f and not f.startswith("=")
    )
    if fields.get("JobState"):
        return Job(
            job_id,
            fields["JobState"],
            _reason(fields.get("Reason", "")),
            fields.get("ExitCode", ""),
        )
    return _sacct(job_id)


def _sacct(job_id: str) -> Job:
    if not shutil.which("sacct"):
        return Job(job_id, "UNKNOWN")
    try:
        out = _run(
            [
                "sacct",
                "-n",
                "-P",
                "-X",
                "-j",
                job_id,
                "-o",
                "JobID,State,Reason,ExitCode",
            ]
        )
    except SlurmError:
        return Job(job_id, "UNKNOWN")
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 4 and parts[0] == job_id:
            state = parts[1].split()[0] if parts[1] else "UNKNOWN"
            return Job(job_id, state, _reason(parts[2]), parts[3])
    return Job(job_id, "UNKNOWN")


_LIVE_CACHE: dict[str, tuple[float, dict[str, str] | None]] = {}
_LIVE_TTL = 2.0


def live_jobs() -> dict[str, str] | None:
    """This user's jobs that have not ended, id -> state (one squeue
    call, reused for 2 s); None when Slurm cannot be asked."""
    now = time.monotonic()
    cached = _LIVE_CACHE.get("jobs")
    if cached and now - cached[0] < _LIVE_TTL:
        return cached[1]
    try:
        out = _run(["squeue", "-h", "-u", str(os.getuid()), "-o", "%i|%T"], timeout=5)
    except SlurmError:
        _LIVE_CACHE["jobs"] = (now, None)
        return None
    jobs = {}
    for line in out.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and state not in FINAL_STATES:
            jobs[job_id] = state
    _LIVE_CACHE["jobs"] = (now, jobs)
    return jobs


def _reason(text: str) -> str:
    text = text.strip()
    return "" if text in ("None", "(null)") else text


def _run(
    args: list[str], input: str | None = None, timeout: float | None = None
) -> str:
    timeout = timeout or _timeout()
    try:
        p = subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C for gage is not for them
        )
    except FileNotFoundError:
        raise SlurmError(
            f"Slurm's '{args[0]}' command is not on PATH: run gage on a "
            "Slurm login node (or add Slurm's bin dir to PATH)"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmError(
            f"'{args[0]}' did not answer in {timeout:g} s: is the Slurm "
            "controller up? (scontrol ping; GAGE_SLURM_TIMEOUT sets the limit)"
        ) from None
    if p.returncode != 0:
        err = (p.stderr or p.stdout).strip().splitlines()
        raise SlurmError(
            f"'{args[0]}' failed (exit {p.returncode}): "
            + (err[-1] if err else "no message")
        )
    return p.stdout


def _timeout() -> float:
    try:
        val = float(os.environ.get("GAGE_SLURM_TIMEOUT") or TIMEOUT)
    except ValueError:
        return TIMEOUT
    return val if val > 0 else TIMEOUT
