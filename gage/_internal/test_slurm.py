"""A single-node Slurm cluster on this machine, for tests, topics and
benches (never used by the library).

`start(dir)` writes a munge key and a slurm.conf in `dir` (state, spool,
logs and pid files there too; free ports; this machine's CPUs and memory
as node `localhost`), starts `munged`, `slurmctld` and `slurmd` as root,
and waits until the node is idle. `Cluster.env` points Slurm's commands
at it (SLURM_CONF); `Cluster.stop()` ends the three daemons.

`unavailable()` says why no cluster can run here (None when one can).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")

START_TIMEOUT = 30.0


def unavailable() -> str | None:
    """Why a Slurm cluster cannot run here, or None."""
    if os.environ.get("GAGE_TEST_NO_SLURM"):
        return "GAGE_TEST_NO_SLURM is set"
    missing = [c for c in DAEMONS + COMMANDS if not _which(c)]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} missing): run "
            "scripts/os-deps/slurm.sh as root (apt-get install slurm-wlm munge)"
        )
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root: not root here"
    return None


def _which(cmd: str) -> str | None:
    return shutil.which(cmd) or shutil.which(cmd, path="/usr/sbin:/sbin")


@dataclass
class Cluster:
    """A Slurm cluster the tests started (its dir, config and env)."""

    dir: str
    conf: str
    env: dict[str, str]
    cpus: int
    procs: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        """Cancel the jobs left, end the daemons, then any slurmstepd of
        this cluster still there (its SLURM_CONF in its environment)."""
        if self.procs:
            _cancel_all(self)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()
        _kill_stepds(self.conf)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, check=check, timeout=30
        )

    def log(self, name: str) -> str:
        try:
            with open(os.path.join(self.dir, "log", name + ".log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""


def _cancel_all(cluster: Cluster) -> None:
    r = cluster.run("squeue", "-h", "-o", "%i", check=False)
    ids = r.stdout.split()
    if not ids:
        return
    cluster.run("scancel", *ids, check=False)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
            return
        time.sleep(0.2)


def _kill_stepds(conf: str) -> None:
    """End slurmstepd processes of the cluster whose config is `conf`."""
    want = f"SLURM_CONF={conf}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                if f.read().strip() != b"slurmstepd":
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if want not in f.read().split(b"\0"):
                    continue
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def start(dir: str) -> Cluster:
    """Start a cluster whose files are all in `dir` (see the module doc)."""
    for sub in ("munge", "state", "spool", "log"):
        os.makedirs(os.path.join(dir, sub), mode=0o700, exist_ok=True)
    os.chmod(dir, 0o755)
    key = os.path.join(dir, "munge", "munge.key")
    with open(key, "wb") as f:
        f.write(os.urandom(1024))
    os.chmod(key, 0o400)
    sock = os.path.join(dir, "munge", "munge.socket")
    # At least 4 CPUs (the node's config wins: config_overrides), so that
    # a few one-CPU jobs run at once on a small machine.
    cpus = max(4, os.cpu_count() or 1)
    conf = os.path.join(dir, "slurm.conf")
    with open(conf, "w") as f:
        f.write(_conf(dir, sock, cpus))
    env = dict(os.environ, SLURM_CONF=conf)
    for name in list(env):
        if name.startswith(("SLURM_", "SBATCH_", "SQUEUE_")) and name != "SLURM_CONF":
            del env[name]
    cluster = Cluster(dir, conf, env, cpus)
    try:
        _start_daemons(cluster, key, sock)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemons(cluster: Cluster, key: str, sock: str) -> None:
    d = cluster.dir
    log = os.path.join(d, "log")
    cluster.procs.append(
        _daemon(
            cluster,
            "munged",
            "-F",
            "-f",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={os.path.join(d, 'munge', 'munged.pid')}",
            f"--seed-file={os.path.join(d, 'munge', 'munged.seed')}",
            f"--log-file={os.path.join(log, 'munged.log')}",
        )
    )
    _wait(lambda: os.path.exists(sock), "munged to create its socket", cluster)
    cluster.procs.append(_daemon(cluster, "slurmctld", "-D", "-i", "-f", cluster.conf))
    _wait(lambda: _ping(cluster), "slurmctld to answer", cluster)
    cluster.procs.append(
        _daemon(cluster, "slurmd", "-D", "-N", "localhost", "-f", cluster.conf)
    )
    _wait(lambda: _node_idle(cluster), "node localhost to be idle", cluster)


def _ping(cluster: Cluster) -> bool:
    r = cluster.run("scontrol", "ping", check=False)
    return r.returncode == 0 and "UP" in r.stdout


def _node_idle(cluster: Cluster) -> bool:
    r = cluster.run("sinfo", "-h", "-N", "-o", "%t", check=False)
    return r.returncode == 0 and r.stdout.strip() == "idle"


def _daemon(cluster: Cluster, name: str, *args: str) -> subprocess.Popen:
    out = open(os.path.join(cluster.dir, "log", name + ".out"), "ab")
    try:
        return subprocess.Popen(
            [_which(name) or name, *args],
            env=cluster.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        out.close()


def _wait(cond, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for p in cluster.procs:
            if p.poll() is not None:
                raise RuntimeError(
                    f"{p.args!r} exited ({p.returncode}) waiting for {what}: "
                    + _logs(cluster)
                )
        if cond():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}: " + _logs(cluster))


def _logs(cluster: Cluster) -> str:
    parts = []
    for name in ("munged", "slurmctld", "slurmd"):
        for suffix in (".log", ".out"):
            text = (
                cluster.log(name)
                if suffix == ".log"
                else _read(os.path.join(cluster.dir, "log", name + suffix))
            )
            if text:
                parts.append(f"--- {name}{suffix}\n" + text[-2000:])
    return "\n".join(parts)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _real_memory() -> int:
    """MB of memory for the node: a little under what the machine has."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return max(1, int(line.split()[1]) // 1024 - 256)
    return 1024


def _conf(dir: str, sock: str, cpus: int) -> str:
    def p(*parts: str) -> str:
        return os.path.join(dir, *parts)

    return f"""\
# Written by gage's tests (tests/slurm_cluster.py): a single-node cluster.
ClusterName=gagetest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={p("state")}
SlurmdSpoolDir={p("spool")}
SlurmctldPidFile={p("slurmctld.pid")}
SlurmdPidFile={p("slurmd.pid")}
SlurmctldLogFile={p("log", "slurmctld.log")}
SlurmdLogFile={p("log", "slurmd.log")}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MinJobAge=300
KillWait=2
OverTimeLimit=0
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_real_memory()} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""
