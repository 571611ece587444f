"""Real servers for the remote tests, on 127.0.0.1, started and stopped
by fixtures: OpenSSH's sshd (throwaway host and user keys and an
sshd_config in a temp dir; `scripts/os-deps/ssh.sh` installs it) and
moto's standalone S3 server (`moto[server]`, a dev dependency).

Each skips with the reason when its server cannot run here.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

_START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log) as f:
                raise RuntimeError(f"server exited {proc.returncode}: {f.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# ---------------------------------------------------------------------------
# SSH


@dataclass(frozen=True)
class SSHServer:
    port: int
    user: str
    key: str
    known_hosts: str
    dir: str

    def url(self, path: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def table(self, name: str, path: str, **extra) -> str:
        lines = [
            f'["$remotes".{name}]',
            f'url = "{self.url(path)}"',
            f'key-file = "{self.key}"',
            f'known-hosts = "{self.known_hosts}"',
        ]
        lines += [
            f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}"
            for k, v in extra.items()
        ]
        return "\n".join(lines).replace("'", '"') + "\n"


def _sshd() -> str | None:
    for path in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if path and os.access(path, os.X_OK):
            return path
    return None


def start_sshd(d: str) -> tuple[SSHServer, subprocess.Popen]:
    """Start sshd on 127.0.0.1 with keys and config made in dir `d`;
    RuntimeError when it does not come up (it is stopped then)."""
    exe = _sshd()
    if not exe or not shutil.which("ssh-keygen"):
        raise RuntimeError("no sshd/ssh-keygen (scripts/os-deps/ssh.sh installs them)")
    os.chmod(d, 0o755)
    for name in ("host_key", "user_key"):
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                os.path.join(d, name),
            ],
            check=True,
        )
    shutil.copy(os.path.join(d, "user_key.pub"), os.path.join(d, "authorized_keys"))
    port = free_port()
    config = os.path.join(d, "sshd_config")
    with open(config, "w") as f:
        f.write(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
            f"PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            "StrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n"
            "MaxSessions 32\nMaxStartups 64\nLogLevel ERROR\n"
        )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir
    with open(os.path.join(d, "host_key.pub")) as f:
        host_pub = " ".join(f.read().split()[:2])
    known_hosts = os.path.join(d, "known_hosts")
    with open(known_hosts, "w") as f:
        f.write(f"[127.0.0.1]:{port} {host_pub}\n")
    log = os.path.join(d, "sshd.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [exe, "-D", "-e", "-f", config],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_port(port, proc, log)
    except RuntimeError:
        stop(proc)
        raise
    server = SSHServer(
        port, getpass.getuser(), os.path.join(d, "user_key"), known_hosts, d
    )
    return server, proc


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # asyncssh names DSA keys
            import sshfs  # noqa: F401
    except ImportError:
        pytest.skip("the 'remote' extra is not installed (sshfs)")
    try:
        server, proc = start_sshd(str(tmp_path_factory.mktemp("sshd")))
    except RuntimeError as e:
        pytest.skip(f"sshd cannot run here: {e}")
    try:
        yield server
    finally:
        stop(proc)


# ---------------------------------------------------------------------------
# S3


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def table(self, name: str, url: str) -> str:
        return f'["$remotes".{name}]\nurl = "{url}"\nendpoint-url = "{self.endpoint}"\n'

    def make_bucket(self, name: str) -> None:
        import boto3

        boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1"
        ).create_bucket(Bucket=name)


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_moto(d: str, **env_extra: str) -> tuple[S3Server, subprocess.Popen]:
    """moto's S3 server on 127.0.0.1 (log in dir `d`); RuntimeError when
    it does not come up."""
    port = free_port()
    log = os.path.join(d, "moto.log")
    env = dict(os.environ, **S3_ENV, **env_extra)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    try:
        _wait_port(port, proc, log)
    except RuntimeError:
        stop(proc)
        raise
    return S3Server(f"http://127.0.0.1:{port}"), proc


def _need_moto() -> None:
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as e:
        pytest.skip(f"moto[server] or s3fs is not installed ({e.name})")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    _need_moto()
    try:
        server, proc = start_moto(str(tmp_path_factory.mktemp("moto")))
    except RuntimeError as e:
        pytest.skip(f"moto server cannot run here: {e}")
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop(proc)


@pytest.fixture(scope="module")
def s3_server_auth(tmp_path_factory):
    """moto's S3 server checking credentials (no key it knows works)."""
    _need_moto()
    try:
        server, proc = start_moto(
            str(tmp_path_factory.mktemp("moto-auth")), INITIAL_NO_AUTH_ACTION_COUNT="0"
        )
    except RuntimeError as e:
        pytest.skip(f"moto server cannot run here: {e}")
    try:
        yield server
    finally:
        stop(proc)
