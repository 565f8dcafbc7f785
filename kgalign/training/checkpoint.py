"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

``checkpoints/last.safetensors`` holds tensors under prefixes:
``model.*`` (state dict), ``optim.<optimizer>.optim.<param index>.<key>`` (the state
of each named optimizer), ``rng.*`` (generator states), ``links.train`` int64 (L, 2)
and ``links.source`` int64 (L,) (0 seed, otherwise the epoch that bootstrapped the
pair), ``partial.perm`` (an interrupted epoch's order), and ``cb.<callback>.*`` for
the training callbacks' state (``cb.selection.best.*``: the selected weights;
``cb.iterative.il.candidates``). ``checkpoints/last.json`` holds epoch, config hash,
each optimizer's param groups, GradScaler scalars, schedule phase, the partial
epoch, the callbacks' JSON state (selection, early stopping), RNG scalars. Both
files carry the same random token, so a crash between the two writes is
detected instead of silently mixing two checkpoints.

Before a save, the previous pair is kept as ``prev.safetensors`` + ``prev.json``
(hard links, so ``last.*`` never disappears). Loading takes the newest intact
pair: when ``last.*`` is truncated, empty or mismatched, ``prev.*`` is used with a
warning; when neither is intact, one error names the damaged file and why.
Temporaries of a save killed half-way are removed on the next save or load.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import atomic_path, atomic_write_text, remove_stale

log = logging.getLogger("kgalign.training")
FORMAT = "kgalign-checkpoint-2"  # 2: named optimizers and callback state (engine issue)
PREVIOUS = "prev"  # the checkpoint before the last one


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


def _keep_previous(directory: Path, name: str) -> None:
    """Keep the current NAME.* as prev.* (atomic per file; NAME.* stays in place)."""
    for ext in ("safetensors", "json"):
        src, dst = directory / f"{name}.{ext}", directory / f"{PREVIOUS}.{ext}"
        if not src.is_file():
            return
        if dst.exists() and os.path.samefile(src, dst):
            # already kept (a save killed after this step): renaming a hard link onto its twin is a no-op
            # that would leave the temporary behind
            continue
        with atomic_path(dst) as tmp:
            tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:  # no hard links on this file system
                shutil.copyfile(src, tmp)


def _looks_intact(directory: Path, name: str) -> bool:
    """Cheap check (headers only): both files there and carrying the same token."""
    try:
        from safetensors import safe_open

        meta = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        with safe_open(str(directory / f"{name}.safetensors"), framework="pt") as f:
            token = (f.metadata() or {}).get("token")
        return isinstance(meta, dict) and token is not None and meta.get("token") == token
    except Exception:  # missing, truncated or not a checkpoint at all: nothing worth keeping
        return False


def save_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], meta: dict, name: str = "last") -> None:
    """Write ``NAME.safetensors`` then ``NAME.json`` atomically, tied by a token; keep the previous pair as prev.*.

    A write error (disk full) is one InputError naming the folder; the checkpoints already there stay intact.
    """
    directory = Path(directory)
    try:
        _save(directory, tensors, meta, name)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write the checkpoint: {exc.strerror or exc}", str(directory)) from None


def _save(directory: Path, tensors: dict[str, torch.Tensor], meta: dict, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if name == "last" and _looks_intact(directory, name):
        _keep_previous(directory, name)
    token = secrets.token_hex(8)
    with atomic_path(directory / f"{name}.safetensors") as tmp:
        try:
            save_file({k: _plain(v) for k, v in tensors.items()}, str(tmp), metadata={"token": token, "format": FORMAT})
        except Exception as exc:  # safetensors reports I/O errors (disk full) as its own type
            if "I/O error" not in str(exc):
                raise
            raise OSError(str(exc).split("I/O error: ", 1)[-1]) from None
    meta = dict(meta, token=token, format=FORMAT)
    atomic_write_text(directory / f"{name}.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")


def _read_pair(directory: Path, name: str) -> tuple[tuple[dict, dict] | None, str | None]:
    """``((tensors, meta), None)`` for an intact pair, else ``(None, why)`` naming the file."""
    st, js = directory / f"{name}.safetensors", directory / f"{name}.json"
    for p in (st, js):
        if not p.is_file():
            return None, f"{p}: missing"
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{js}: not valid JSON ({'empty file' if js.stat().st_size == 0 else exc})"
    if isinstance(meta, dict) and str(meta.get("format", "")).startswith("kgalign-checkpoint-") and meta["format"] != FORMAT:
        return None, f"{js}: written by another kgalign version ({meta['format']}; this one reads {FORMAT})"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None, f"{js}: not a kgalign checkpoint (format is not {FORMAT})"
    try:
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            token = (f.metadata() or {}).get("token")
        tensors = load_file(str(st))
    except Exception as exc:  # safetensors raises its own error type (and OSError) for damaged files
        size = st.stat().st_size
        return None, f"{st}: not a readable safetensors file ({'empty file' if size == 0 else exc})"
    if meta.get("token") != token:
        return None, f"{js}: tensors and metadata are from different saves (interrupted while writing?)"
    return (tensors, meta), None


def has_checkpoint(directory: str | Path, name: str = "last") -> bool:
    """True when ``NAME.*`` or the previous pair exists (intact or not: loading says which)."""
    directory = Path(directory)
    return any((directory / f"{n}.{ext}").exists() for n in (name, PREVIOUS) for ext in ("json", "safetensors"))


def load_checkpoint(directory: str | Path, name: str = "last") -> tuple[dict[str, torch.Tensor], dict]:
    """Read the newest intact checkpoint written by :func:`save_checkpoint` (tensors on CPU).

    Raises MissingResourceError when there is none at all, InputError naming the damaged file otherwise.
    """
    directory = Path(directory)
    remove_stale(directory)
    names = [name, PREVIOUS] if name == "last" else [name]
    present = [n for n in names if (directory / f"{n}.json").exists() or (directory / f"{n}.safetensors").exists()]
    if not present:
        raise MissingResourceError(f"{directory}: no checkpoint ({name}.safetensors / {name}.json) to resume from")
    problems = []
    for n in present:
        pair, why = _read_pair(directory, n)
        if pair is not None:
            if problems:
                log.warning("%s; resuming from the previous checkpoint %s.* (epoch %s)", problems[0], n, pair[1].get("epoch"))
            return pair
        problems.append(why)
    raise InputError(
        "damaged checkpoint: " + "; ".join(problems) + "; no intact checkpoint to resume from: start again with --force",
    )


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights from a ``best.safetensors`` file."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise MissingResourceError(f"{path}: no such weights file") from None
    except Exception as exc:  # safetensors' own error type for damaged files
        raise InputError(f"not a readable safetensors file ({exc})", str(path)) from None


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def add_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in tensors.items()}
