"""A project, two runs homes (two machines) and `gage` in a process, for
the remote tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

TIMEOUT = 120

GAGE_TOML = """\
[prep]
exec = "python prep.py"
depends = { type = "project-files", files = "data.bin" }

[train]
exec = "python train.py"
config = "train.py#lr"
depends = { type = "run-files", run-select = "prep", files = "prepared.txt" }
"""

PREP = """\
import hashlib, os
data = open("data.bin", "rb").read()
open("prepared.txt", "w").write(hashlib.sha256(data).hexdigest())
os.makedirs("many", exist_ok=True)
for i in range(int(os.environ.get("N_SMALL", "3"))):
    open(f"many/f{i}.txt", "w").write(f"file {i}\\n")
"""

TRAIN = """\
lr = 0.1
print("loss:", round(1 - lr, 3))
open("model.txt", "w").write(open("prepared.txt").read() + str(lr))
"""


@dataclass
class Machine:
    """A project dir and a runs home: one machine."""

    project: str
    home: str
    config: str  # the user config file (GAGE_CONFIG)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAGE_")}
        env.update(GAGE_RUNS=self.home, GAGE_CONFIG=self.config, NO_COLOR="1")
        env.update(extra)
        return env

    def gage(self, *args: str, check: bool = True, **env: str):
        p = subprocess.run(
            [sys.executable, "-m", "gage", *args],
            cwd=self.project,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if check and p.returncode != 0:
            raise AssertionError(
                f"gage {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}"
            )
        return p

    def gage_json(self, *args: str, **env: str):
        return json.loads(self.gage(*args, "--json", **env).stdout)

    def runs(self) -> list[dict]:
        return self.gage_json("runs")

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "gage", *args],
            cwd=self.project,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )


def make_project(path: str, data_size: int = 100_000, seed: int = 1) -> str:
    import random

    os.makedirs(path, exist_ok=True)
    for name, text in (
        ("gage.toml", GAGE_TOML),
        ("prep.py", PREP),
        ("train.py", TRAIN),
    ):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    with open(os.path.join(path, "data.bin"), "wb") as f:
        f.write(random.Random(seed).randbytes(data_size))
    return path


def machine(
    tmp,
    name: str,
    config_text: str = "",
    home: str | None = None,
    project: str | None = None,
) -> Machine:
    base = os.path.join(str(tmp), name)
    project = project or make_project(os.path.join(base, "project"))
    config = os.path.join(base, "config.toml")
    os.makedirs(base, exist_ok=True)
    with open(config, "w") as f:
        f.write(config_text)
    return Machine(project, home or os.path.join(base, "runs"), config)


def remote_objects(root: str) -> dict[str, str]:
    """digest -> path of every object of a directory remote."""
    out = {}
    top = os.path.join(root, "objects", "sha256")
    for sub in os.listdir(top) if os.path.isdir(top) else []:
        for name in os.listdir(os.path.join(top, sub)):
            if not name.startswith(".tmp-"):  # a file on its way
                out[sub + name] = os.path.join(top, sub, name)
    return out


def temp_files(root: str) -> list[str]:
    """Files on their way (a temp name) anywhere on a directory remote."""
    return [
        os.path.join(d, name)
        for d, _dirs, names in os.walk(root)
        for name in names
        if name.startswith(".tmp-")
    ]


def sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def pin_data(project: str) -> str:
    """Pin prep's data.bin by its sha256 in gage.toml; the digest."""
    digest = sha256(os.path.join(project, "data.bin"))
    path = os.path.join(project, "gage.toml")
    with open(path) as f:
        text = f.read()
    old = 'files = "data.bin" }'
    assert old in text
    with open(path, "w") as f:
        f.write(text.replace(old, f'files = "data.bin", sha256 = "{digest}" }}'))
    return digest


def fresh_clone(tmp, name: str, src: Machine, config_text: str) -> Machine:
    """A machine whose project is `src`'s without its data (a fresh clone
    of a repository that does not hold the data)."""
    import shutil

    project = os.path.join(str(tmp), name, "project")
    shutil.copytree(src.project, project, ignore=shutil.ignore_patterns("data.bin"))
    return machine(tmp, name, config_text, project=project)


def check_fetched(m: Machine, digest: str, remote: str) -> None:
    """`m` has no data.bin: `gage run prep --remote` fetches it (object
    cache, never the project) and the run has it."""
    out = m.gage("run", "prep", "-y", "--remote", remote).stdout
    assert f"Fetched data.bin (sha256 {digest[:12]}) from remote '{remote}'" in out
    assert not os.path.exists(os.path.join(m.project, "data.bin"))
    obj = os.path.join(m.home, ".objects", "sha256", digest[:2], digest[2:])
    assert sha256(obj) == digest
    [run] = m.runs()
    assert run["status"] == "completed"
    assert sha256(os.path.join(run["run_dir"], "data.bin")) == digest
    m.gage("check", run["id"])
