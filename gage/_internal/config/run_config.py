"""Run config: read it from project files, check assignments, apply it.

An op def's `config` says where config lives, as `FILE_GLOB#KEY_GLOB`
patterns (`train.py#lr,epochs`, `conf/*.yaml#model.*`, `hello.py` for
every key in a file, `-train.py#seed` to exclude) or tables with `keys`,
`description`, `prefix` and `strip-prefix`. Rules apply in order; the
last one that matches a key decides.

- `assigns.parse_assigns` parses command-line `NAME=VALUE` assignments.
- `read_project_config` reads the default values from project files.
- `resolve_config` checks assignments against the defaults and returns
  the full run config (written to `config.json` by `init_run_meta`).
- `apply.apply_run_config` writes the run config into the staged copies of the
  files in the run dir, records the diff in `log/patched` and the
  modified files in `log/files`.

Each file format has its own module (`config_py`, `config_json`,
`config_toml`, `config_yaml`) with `read(text)` and `patch(text, values)`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import importlib
import json
import os
from dataclasses import dataclass
from typing import Any

from ..types import ConfigError, OpDef
from ..util import file_util, patterns
from ..util.file_util import file_kind, open_regular
from .assigns import Assigns, parse_value, short_text
from .assigns import parse_assigns as parse_assigns

__all__ = [
    "ConfigValue",
    "config_files",
    "parse_assigns",
    "read_project_config",
    "resolve_config",
]


@dataclass(frozen=True)
class ConfigValue:
    """A config key's default: its value, the file (relative path) it is
    read from, the key in that file, and a description.

    `also` holds the same name in other files (`config = ["a.json#*",
    "b.yaml#*"]` where both define `lr`), each with its own value: the
    first file read gives the default, and applying config writes the
    run's value to every file (`files`).
    """

    value: Any
    file: str
    file_key: str
    description: str = ""
    also: tuple[ConfigValue, ...] = ()

    @property
    def files(self) -> list[str]:
        """Every file that defines the key, the default's first."""
        return [self.file] + [cv.file for cv in self.also]

    def locations(self) -> list[ConfigValue]:
        """One ConfigValue per file that defines the key."""
        return [dataclasses.replace(self, also=())] + list(self.also)


# ---------------------------------------------------------------------------
# Project config


def read_project_config(project_dir: str, opdef: OpDef) -> dict[str, ConfigValue]:
    """Config keys and their defaults from the files an op def names."""
    return read_file_config(project_dir, opdef)


def config_files(root: str, opdef: OpDef) -> set[str]:
    """Paths (relative, `/`-separated) of the files that provide the op's
    config keys under `root` (a project or run dir)."""
    return {f for cv in read_file_config(root, opdef).values() for f in cv.files}


@dataclass(frozen=True)
class _Rule:
    """A config rule: files (and keys) included or excluded."""

    include: bool
    file_glob: str
    key_globs: tuple[str, ...] | None
    description: str = ""
    prefix: str = ""
    strip_prefix: str = ""


_TABLE_KEYS = ("keys", "description", "prefix", "strip-prefix")


def read_file_config(root: str, opdef: OpDef) -> dict[str, ConfigValue]:
    """Config keys from the files the op's `config` names under `root`.

    A ConfigError raised here is about the op's `config` (a file or key
    it names is missing or unreadable): it carries `op` and
    `key="config"`, so the CLI can name the line in gage.toml.
    """
    try:
        return _read_config_rules(root, opdef)
    except ConfigError as e:
        raise ConfigError(str(e), op=opdef.name, key="config", path=e.path) from None


def _read_config_rules(root: str, opdef: OpDef) -> dict[str, ConfigValue]:
    files = _FileCache(root)
    config: dict[str, ConfigValue] = {}
    for rule in _rules(opdef):
        paths = _match_files(root, rule)
        if rule.include:
            _include(rule, paths, files, config)
        else:
            _exclude(rule, paths, config)
    return config


def _rules(opdef: OpDef) -> list[_Rule]:
    rules = []
    for item in opdef.get_config():
        if isinstance(item, str):
            rules.append(_parse_rule(item, {}, opdef))
        elif isinstance(item, dict):
            rules.extend(_table_rules(item, opdef))
        else:
            raise ConfigError(
                f"Invalid config {item!r} for op '{opdef.name}': expected "
                "'FILE#KEYS' or a table with 'keys'"
            )
    return rules


def _table_rules(table: dict[str, Any], opdef: OpDef) -> list[_Rule]:
    unknown = sorted(set(table) - set(_TABLE_KEYS))
    if unknown:
        raise ConfigError(
            f"Unknown key '{unknown[0]}' in config for op '{opdef.name}': "
            f"use {', '.join(_TABLE_KEYS)}"
        )
    keys = table.get("keys")
    if not keys:
        raise ConfigError(
            f"Config table for op '{opdef.name}' needs 'keys' "
            "(e.g. keys = 'train.py#lr')"
        )
    specs = [keys] if isinstance(keys, str) else list(keys)
    return [_parse_rule(spec, table, opdef) for spec in specs]


def _parse_rule(spec: str, table: dict[str, Any], opdef: OpDef) -> _Rule:
    if not isinstance(spec, str) or not spec.strip().lstrip("-"):
        raise ConfigError(
            f"Invalid config {spec!r} for op '{opdef.name}': expected 'FILE#KEYS'"
        )
    spec = spec.strip()
    include = not spec.startswith("-")
    file_glob, _, keys = spec.lstrip("-").strip().partition("#")
    key_globs = tuple(k.strip() for k in keys.split(",") if k.strip()) or None
    return _Rule(
        include,
        file_glob.strip(),
        key_globs,
        str(table.get("description") or ""),
        str(table.get("prefix") or ""),
        str(table.get("strip-prefix") or ""),
    )


def _match_files(root: str, rule: _Rule) -> list[str]:
    if not patterns.has_magic(rule.file_glob):
        path = os.path.normpath(rule.file_glob).replace(os.sep, "/")
        full = os.path.join(root, path)
        if os.path.isfile(full):
            return [path]
        if os.path.exists(full):  # a FIFO, a device (through a link or not)
            kind = file_kind(os.stat(full))
            raise ConfigError(
                f"Config file '{rule.file_glob}' in {root} is a {kind}, not a "
                "regular file: config is read from regular files only"
            )
        if rule.include:
            raise ConfigError(f"Config file '{rule.file_glob}' not found in {root}")
        return []
    found: list[str] = []
    for path in patterns.matches(root, rule.file_glob):
        full = os.path.join(root, path)
        if os.path.isdir(full) and not os.path.islink(full):
            found.extend(f"{path}/{sub}" for sub, _e in file_util.walk_files(full))
        else:
            found.append(path)
    return sorted(
        m for m in found if os.path.isfile(os.path.join(root, m)) and _has_format(m)
    )


def _include(
    rule: _Rule,
    paths: list[str],
    files: _FileCache,
    config: dict[str, ConfigValue],
) -> None:
    matched: set[str] = set()
    all_keys: list[str] = []
    for path in paths:
        file_keys = files.read(path)
        all_keys.extend(file_keys)
        for file_key, val in file_keys.items():
            if rule.key_globs is not None and not _match_keys(file_key, rule.key_globs):
                continue
            matched.update(
                g for g in rule.key_globs or () if fnmatch.fnmatchcase(file_key, g)
            )
            name = _config_name(file_key, rule)
            cur = config.get(name)
            desc = rule.description or (cur.description if cur else "")
            new = ConfigValue(val, path, file_key, desc)
            config[name] = _add_location(cur, new) if cur else new
    for key_glob in rule.key_globs or ():
        if not glob.has_magic(key_glob) and key_glob not in matched:
            raise ConfigError(
                f"Config key '{key_glob}' not found in {rule.file_glob} "
                f"(keys are: {', '.join(all_keys) or 'none'})"
            )


def _add_location(cur: ConfigValue, new: ConfigValue) -> ConfigValue:
    """`cur` with `new`'s file as a place that defines the key too; a
    later rule for a file already there replaces its entry."""
    locs = cur.locations()
    files = [cv.file for cv in locs]
    if new.file in files:
        locs[files.index(new.file)] = new
    else:
        locs.append(new)
    return _from_locations(locs, new.description)


def _from_locations(locs: list[ConfigValue], description: str) -> ConfigValue:
    first, rest = locs[0], locs[1:]
    return dataclasses.replace(
        first,
        description=description,
        also=tuple(dataclasses.replace(cv, description="") for cv in rest),
    )


def _match_keys(key: str, key_globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(key, g) for g in key_globs)


def _config_name(file_key: str, rule: _Rule) -> str:
    if rule.strip_prefix and file_key.startswith(rule.strip_prefix):
        file_key = file_key[len(rule.strip_prefix) :]
    return rule.prefix + file_key


def _exclude(rule: _Rule, paths: list[str], config: dict[str, ConfigValue]) -> None:
    for name, cv in list(config.items()):
        locs = cv.locations()
        kept = [
            loc
            for loc in locs
            if loc.file not in paths
            or (
                rule.key_globs is not None
                and not _match_keys(loc.file_key, rule.key_globs)
            )
        ]
        if not kept:
            del config[name]
        elif len(kept) < len(locs):
            config[name] = _from_locations(kept, cv.description)


# Format modules by file extension, imported when a file needs one.
_FORMATS = {
    ".py": "config_py",
    ".json": "config_json",
    ".toml": "config_toml",
    ".yaml": "config_yaml",
    ".yml": "config_yaml",
}


def _has_format(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in _FORMATS


def file_format(path: str):
    name = _FORMATS.get(os.path.splitext(path)[1].lower())
    return importlib.import_module("." + name, __package__) if name else None


class _FileCache:
    """Reads each config file once."""

    def __init__(self, root: str):
        self.root = root
        self._keys: dict[str, dict[str, Any]] = {}

    def read(self, path: str) -> dict[str, Any]:
        try:
            return self._keys[path]
        except KeyError:
            pass
        fmt = file_format(path)
        if fmt is None:
            raise ConfigError(
                f"Cannot read config from {path}: unsupported file type "
                "(use .py, .json, .toml, .yaml or .yml)"
            )
        text = read_file_text(self.root, path)
        try:
            keys = fmt.read(text)
        except ConfigError as e:
            raise ConfigError(f"Cannot read config from {path}: {e}") from None
        except RecursionError:
            raise ConfigError(
                f"Cannot read config from {path}: values are nested too deeply"
            ) from None
        except (ValueError, SyntaxError) as e:  # e.g. an int over 4300 digits
            raise ConfigError(f"Cannot read config from {path}: {e}") from None
        self._keys[path] = keys
        return keys


def read_file_text(root: str, path: str) -> str:
    full = os.path.join(root, path)
    target = os.path.realpath(full)
    real_root = os.path.realpath(root)
    if not target.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ConfigError(
            f"Config file {path} is a link to {target}, outside the run dir "
            f"or project it is read in ({root}): config is read from files "
            "inside it only (copy the file in)"
        )
    try:
        with open_regular(full) as f:
            return f.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"Cannot read config from {path}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"Cannot read config from {path}: {e.strerror}") from None


# ---------------------------------------------------------------------------
# Resolve


def resolve_config(
    project_dir: str, opdef: OpDef, assigns: dict[str, Any]
) -> dict[str, Any]:
    """The run config: the project's defaults overlaid with `assigns`.

    Each assigned value is converted to the type of its default where it
    can be (`5` for a float default is `5.0`; a string is typed as on the
    command line). For `assigns` from `parse_assigns`, a key whose default
    is a string gets the text as typed (`ver=1.10` is `'1.10'`; quotes
    are removed: `ver='x y'` is `'x y'`).
    """
    defaults = read_project_config(project_dir, opdef)
    config = {name: cv.value for name, cv in defaults.items()}
    for name, val in assigns.items():
        cv = defaults.get(name)
        if cv is None:
            raise ConfigError(_unknown_key_msg(name, opdef, defaults), key=name)
        text = assigns.text(name) if isinstance(assigns, Assigns) else None
        if isinstance(cv.value, str) and text is not None and not _quoted(text):
            val = text
        config[name] = coerce(val, cv.value, name, cv.file)
    return config


def _quoted(text: str) -> bool:
    return text[:1] in ("'", '"')


def _unknown_key_msg(name: str, opdef: OpDef, defaults: dict[str, Any]) -> str:
    if not defaults:
        return f"Unknown config key '{name}': op '{opdef.name}' has no config keys"
    return (
        f"Unknown config key '{name}' for op '{opdef.name}': "
        f"valid keys are {', '.join(sorted(defaults))}"
    )


def coerce(val: Any, default: Any, name: str, file: str) -> Any:
    """`val` as the type of `default` where it can be; else ConfigError.

    One rule for null and booleans: null is a value only for a key whose
    default is null; true and false only for a key whose default is a
    bool. Messages spell values as the user types them (`true`, `null`).
    """
    if default is None:
        return val
    if val is None:
        raise ConfigError(_type_msg(val, default, name, file))
    given = val
    if isinstance(val, str) and not isinstance(default, str):
        try:
            val = parse_value(val)
        except ConfigError:
            raise ConfigError(_type_msg(given, default, name, file)) from None
    converted = _convert(val, default)
    if converted is _NO:
        raise ConfigError(_type_msg(given, default, name, file))
    return converted


_NO = object()


def _convert(val: Any, default: Any) -> Any:
    if isinstance(default, bool):
        return val if isinstance(val, bool) else _NO
    if isinstance(val, bool):
        return _NO
    if isinstance(default, int):
        if isinstance(val, int):
            return val
        if isinstance(val, float) and val.is_integer():
            return int(val)
        return _NO
    if isinstance(default, float):
        return float(val) if isinstance(val, (int, float)) else _NO
    if isinstance(default, str):
        if isinstance(val, str):
            return val
        return str(val) if isinstance(val, (int, float)) else _NO
    if isinstance(default, (list, tuple)):
        return type(default)(val) if isinstance(val, (list, tuple)) else _NO
    if isinstance(default, dict):
        return val if isinstance(val, dict) else _NO
    return val


_TYPE_NAMES = [
    (bool, "a bool (true or false)"),
    (int, "an int"),
    (float, "a float"),
    (str, "a string"),
    (tuple, "a tuple (e.g. [1, 2])"),
    (list, "a list (e.g. [1, 2])"),
    (dict, "a dict (e.g. {a: 1})"),
]


def _type_msg(val: Any, default: Any, name: str, file: str) -> str:
    expected = next(desc for type, desc in _TYPE_NAMES if isinstance(default, type))
    return f"Cannot set '{name}' to {short_text(_spell(val))} in {file}: expected {expected}"


def _spell(val: Any) -> str:
    """A value as a user types it: null, true, false, 'text', 1.5, [1, 2]."""
    if isinstance(val, str):
        return repr(val)
    try:
        return json.dumps(val)
    except (TypeError, ValueError):
        return repr(val)
