"""Configuration files and overrides: YAML or JSON in, one resolved dict out.

Precedence (lowest first): built-in defaults < ``--config FILE`` <
``--set a.b=value`` < explicit command-line flags. A config is a nested dict of
plain JSON values; :func:`config_hash` fingerprints it so that a resumed run
can refuse a changed configuration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from kgalign.errors import InputError, MissingResourceError


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a YAML (``.yaml``/``.yml``) or JSON file whose top level is a mapping."""
    path = Path(path)
    if not path.is_file():
        raise MissingResourceError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", str(path), exc.lineno) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise InputError(f"invalid YAML: {problem}", str(path), line) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"top level must be a mapping, found {type(data).__name__}", str(path), 1)
    return _jsonable(data, str(path))


def _jsonable(value: Any, where: str, _path: tuple[int, ...] = ()) -> Any:
    """Normalise YAML values to JSON types (tuples to lists, keys to str); refuse self-references."""
    if isinstance(value, (dict, list, tuple)):
        if id(value) in _path:
            raise InputError("a YAML alias refers to a mapping or list that contains it (a self-reference)", where)
        inner = (*_path, id(value))
        if isinstance(value, dict):
            return {str(k): _jsonable(v, where, inner) for k, v in value.items()}
        return [_jsonable(v, where, inner) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InputError(f"unsupported value {value!r} of type {type(value).__name__}", where)


def parse_value(text: str) -> Any:
    """Parse one ``--set`` value as a YAML scalar/list: ``3`` -> 3, ``1e-4`` -> 1e-4,
    ``true`` -> True, ``[a, b]`` -> list, anything else stays a string."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads "1e-4" as a string; floats written that way are common here.
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            return value
    return _jsonable(value, "--set")


def parse_overrides(items: Iterable[str]) -> dict:
    """``["model.hidden=256", "train.lr=1e-3"]`` -> nested dict."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--set expects KEY=VALUE (e.g. model.hidden=256), got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise InputError(f"--set: bad key {key!r} in {item!r}")
        set_path(out, key, parse_value(raw.strip()))
    return out


def set_path(cfg: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = cfg
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = value


def get_path(cfg: dict, dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` merged into ``base`` recursively (override wins)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _drop(cfg: dict, dotted_keys: Iterable[str]) -> dict:
    out = copy.deepcopy(cfg)
    for key in dotted_keys:
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return out


def canonical_json(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(cfg: dict, exclude: Iterable[str] = ()) -> str:
    """sha256 (hex) of the canonical JSON of ``cfg`` without the ``exclude`` dotted keys."""
    return hashlib.sha256(canonical_json(_drop(cfg, exclude)).encode("utf-8")).hexdigest()


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def diff_configs(old: dict, new: dict, exclude: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new`` lines."""
    a, b = flatten(_drop(old, exclude)), flatten(_drop(new, exclude))
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            lines.append(f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
    return lines
