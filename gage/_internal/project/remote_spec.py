"""Remote tables: `["$remotes".NAME]` in gage.toml or the user config.

A remote is a place runs and their files are pushed to and pulled from
(`gage push`, `gage pull`). Each is a table of the `$remotes` setting:

    ["$remotes".team]
    url = "s3://bucket/prefix"        # or ssh://user@host:port/path, or /a/dir
    endpoint-url = "http://..."       # an S3-compatible store

`"$remote" = "NAME"` names the default. The same tables may sit in the
user config file (`$GAGE_CONFIG`, else `$XDG_CONFIG_HOME/gage/config.toml`,
else `~/.config/gage/config.toml`), so that what is personal stays out of
the project; credentials come from each backend's usual places (AWS env
vars and files, ssh config and agent), never from these files.

Every key is checked when the file is read: an unknown key or a wrong
value is a GagefileError naming FILE:LINE, the remote and the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

from ..types import GagefileError, describe

__all__ = [
    "REMOTE_KEYS",
    "RemoteSpec",
    "check_remotes",
    "read_user_config",
    "user_config_path",
]

REMOTE_KEYS = {
    "url": "where the remote is: a directory, ssh://[USER@]HOST[:PORT]/PATH "
    "or s3://BUCKET[/PREFIX]",
    "endpoint-url": "the endpoint of an S3-compatible store (s3:// only)",
    "region": "the S3 region (s3:// only)",
    "profile": "the AWS profile to take credentials from (s3:// only)",
    "key-file": "an SSH private key file (ssh:// only; default: ssh config, agent)",
    "known-hosts": "an SSH known_hosts file (ssh:// only)",
    "timeout": "seconds to wait for the remote before giving up (default 30)",
    "jobs": "transfers at once (default 8)",
}

SCHEMES = ("file", "ssh", "sftp", "s3")

PROJECT_KEYS = ["$remote", "$remotes"]
"""The settings of gage.toml (and of the user config) that name remotes."""


@dataclass(frozen=True)
class RemoteSpec:
    """A remote as a table defines it: its name, url and options (the
    table's other keys), and `source`, the file that defined it."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def scheme(self) -> str:
        return url_scheme(self.url)

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout", 30))

    @property
    def jobs(self) -> int:
        return int(self.options.get("jobs", 8))


def url_scheme(url: str) -> str:
    m = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    return m.group(1).lower() if m else "file"


Fail = Callable[[str | None, str | None, str], NoReturn]


def check_remotes(val: Any, base_dir: str, source: str, fail: Fail) -> dict:
    """`$remotes` as {name: RemoteSpec}; `fail(remote, key, msg)` raises
    naming the file and line. Relative directory urls are relative to
    `base_dir` (the dir of the file that names them)."""
    if not isinstance(val, dict):
        fail(
            None,
            "$remotes",
            f"'$remotes' must hold tables (e.g. [\"$remotes\".team]), "
            f"got {describe(val)}",
        )
    return {
        name: _check_remote(name, table, base_dir, source, fail)
        for name, table in val.items()
    }


def _check_remote(
    name: str, table: Any, base_dir: str, source: str, fail: Fail
) -> RemoteSpec:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        fail(
            name,
            None,
            f"remote name {name!r} must be letters, digits, '-', '_' "
            "or '.': rename the table",
        )
    if not isinstance(table, dict):
        fail(
            name,
            None,
            f"remote '{name}' must be a table with a url, got {describe(table)}",
        )
    for key, v in table.items():
        if key not in REMOTE_KEYS:
            fail(
                name,
                key,
                f"remote '{name}': unknown key '{key}' "
                f"(known keys: {', '.join(REMOTE_KEYS)})",
            )
        _check_value(name, key, v, fail)
    url = table.get("url")
    if url is None:
        fail(
            name,
            None,
            f"remote '{name}' has no url: add url = "
            '"/a/dir", "ssh://host/path" or "s3://bucket/prefix"',
        )
    scheme = url_scheme(url)
    if scheme not in SCHEMES:
        fail(
            name,
            "url",
            f"remote '{name}': url scheme '{scheme}' is not "
            f"supported (use {', '.join(SCHEMES)})",
        )
    for key in ("endpoint-url", "region", "profile"):
        if key in table and scheme != "s3":
            fail(name, key, f"remote '{name}': '{key}' applies to s3:// urls only")
    for key in ("key-file", "known-hosts"):
        if key in table and scheme not in ("ssh", "sftp"):
            fail(name, key, f"remote '{name}': '{key}' applies to ssh:// urls only")
    if scheme == "file":
        path = url[len("file://") :] if url.startswith("file://") else url
        url = os.path.join(base_dir, os.path.expanduser(path))
    options = {k: v for k, v in table.items() if k != "url"}
    for key in ("key-file", "known-hosts"):
        if key in options:
            options[key] = os.path.join(base_dir, os.path.expanduser(options[key]))
    return RemoteSpec(name, url, options, source)


def _check_value(name: str, key: str, v: Any, fail: Fail) -> None:
    if key in ("timeout", "jobs"):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        if key == "jobs":
            ok = ok and isinstance(v, int)
        if not ok:
            what = "a positive integer" if key == "jobs" else "a positive number"
            fail(
                name, key, f"remote '{name}': '{key}' must be {what}, got {describe(v)}"
            )
    elif not isinstance(v, str) or not v:
        fail(
            name,
            key,
            f"remote '{name}': '{key}' must be a non-empty string, got {describe(v)}",
        )


def check_setting(name: str, val: Any, path: str, lines: list[str]) -> Any:
    """The value of `$remote` or `$remotes` in the file at `path` (its
    `lines`), checked; errors name `path:LINE`."""
    fail = line_fail(_display_path(path), "\n".join(lines))
    if name == "$remote":
        if not isinstance(val, str) or not val:
            fail(None, name, f"'$remote' must be a remote name, got {describe(val)}")
        return val
    return check_remotes(val, os.path.dirname(path), path, fail)


def _display_path(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


# ---------------------------------------------------------------------------
# User config


def user_config_path() -> str:
    """`$GAGE_CONFIG`, else `$XDG_CONFIG_HOME/gage/config.toml`, else
    `~/.config/gage/config.toml`."""
    env = os.environ.get("GAGE_CONFIG")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "gage", "config.toml")


def read_user_config(path: str | None = None) -> tuple[str | None, dict]:
    """(default remote, {name: RemoteSpec}) from the user config file;
    (None, {}) when there is none. Errors name the file and line."""
    from ..util import file_util

    path = path or user_config_path()
    try:
        with file_util.open_regular(path) as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        return None, {}
    except (OSError, UnicodeDecodeError) as e:
        raise GagefileError(f"cannot read {path}: {e}: fix or remove it") from None
    toml = file_util.tomllib()
    try:
        data = toml.loads(text)
    except (toml.TOMLDecodeError, ValueError) as e:
        raise GagefileError(f"{path}: TOML syntax error: {e}") from None
    fail = line_fail(path, text)
    for key in data:
        if key not in PROJECT_KEYS:
            known = ", ".join(PROJECT_KEYS)
            fail(None, key, f"unknown key '{key}' (known keys: {known})")
    lines = text.splitlines()
    default = data.get("$remote")
    if default is not None:
        check_setting("$remote", default, path, lines)
    return default, check_setting("$remotes", data.get("$remotes", {}), path, lines)


def line_fail(path: str, text: str) -> Fail:
    """A `fail(remote, key, msg)` that raises GagefileError naming
    `path:LINE` of the remote's table (or key) in `text`."""
    lines = text.splitlines()

    def fail(remote: str | None, key: str | None, msg: str) -> NoReturn:
        line = remote_line(lines, remote, key)
        where = f"{path}:{line}" if line else path
        raise GagefileError(f"{where}: {msg}", path=path, key=key)

    return fail


def remote_line(lines: list[str], remote: str | None, key: str | None) -> int | None:
    """1-based line of `key` in the table of `remote` (or of the table,
    or of a top-level key when `remote` is None)."""
    start = 0
    if remote is not None:
        name = _name_pat(remote)
        header = re.compile(rf"\s*\[\s*{_name_pat('$remotes')}\s*\.\s*{name}\s*\]")
        found = _find(lines, header, 0)
        if found is None:
            found = _find(lines, re.compile(rf".*{re.escape(remote)}"), 0)
        if found is None or key is None:
            return found + 1 if found is not None else None
        start = found + 1
    elif key is None:
        return None
    pat = re.compile(rf"\s*{_name_pat(key)}\s*=")
    found = _find(lines, pat, start, stop_at_table=remote is not None)
    if found is None:
        return start if remote is not None else None
    return found + 1


def _name_pat(name: str) -> str:
    e = re.escape(name)
    return rf"(?:{e}|\"{e}\"|'{e}')"


def _find(
    lines: list[str], pat: re.Pattern[str], start: int, stop_at_table: bool = False
) -> int | None:
    for i in range(start, len(lines)):
        if stop_at_table and lines[i].lstrip().startswith("["):
            return None
        if pat.match(lines[i]):
            return i
    return None
