"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

``checkpoints/last.safetensors`` holds tensors under prefixes:
``model.*`` (state dict), ``best.*`` (weights of the best evaluation so far),
``optim.<param index>.<key>`` (optimizer state), ``rng.*`` (generator states),
``links.train`` int64 (L, 2) and ``links.source`` int64 (L,) (0 seed,
otherwise the epoch that bootstrapped the pair), ``il.candidates`` int64 (C, 2).
``checkpoints/last.json`` holds epoch, config hash, optimizer param groups,
GradScaler scalars, schedule phase, early-stopping state, RNG scalars. Both
files carry the same random token, so a crash between the two writes is
detected instead of silently mixing two checkpoints.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import atomic_path, atomic_write_text


def _plain(t: torch.Tensor) -> torch.Tensor:
    # safetensors refuses shared or strided storage; copies are cheap at checkpoint time.
    return t.detach().to("cpu").contiguous().clone()


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors and JSON (param groups, scalar state)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = _plain(val)
            else:
                scalars.setdefault(str(idx), {})[key] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], js: dict) -> dict:
    """Rebuild a state dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if not name.startswith("optim."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = val
    for idx, sc in js.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(sc)
    groups = []
    for g in js["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], meta: dict, name: str = "last") -> None:
    """Write ``NAME.safetensors`` then ``NAME.json`` atomically, tied by a token."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    with atomic_path(directory / f"{name}.safetensors") as tmp:
        save_file({k: _plain(v) for k, v in tensors.items()}, str(tmp), metadata={"token": token, "format": "kgalign-checkpoint-1"})
    meta = dict(meta, token=token, format="kgalign-checkpoint-1")
    atomic_write_text(directory / f"{name}.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")


def load_checkpoint(directory: str | Path, name: str = "last") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on CPU)."""
    directory = Path(directory)
    st, js = directory / f"{name}.safetensors", directory / f"{name}.json"
    if not st.is_file() or not js.is_file():
        raise MissingResourceError(f"{directory}: no checkpoint ({name}.safetensors / {name}.json) to resume from")
    from safetensors import safe_open

    with safe_open(str(st), framework="pt") as f:
        token = (f.metadata() or {}).get("token")
    meta = json.loads(js.read_text(encoding="utf-8"))
    if meta.get("token") != token:
        raise InputError("checkpoint tensors and metadata are from different saves (interrupted while writing?)", str(js))
    return load_file(str(st)), meta


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights from a ``best.safetensors`` file."""
    return load_file(str(path))


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def add_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in tensors.items()}
