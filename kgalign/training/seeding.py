"""Seeding and capturing every random generator the trainer depends on.

Generators: Python ``random``, NumPy's global RNG, torch's CPU generator, every
CUDA device's generator, and the trainer's own batch-shuffling generator. States
are split into tensors (for safetensors) and JSON scalars, so checkpoints never
need pickle.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy, torch (CPU) and all CUDA devices with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def capture_rng(shuffle: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Current RNG states as ``(tensors, json_state)``.

    tensors: ``rng.torch`` uint8, ``rng.cuda.<i>`` uint8 per device,
    ``rng.numpy.keys`` uint32 (624,), ``rng.shuffle`` uint8.
    json_state: the Python state and NumPy's scalar fields.
    """
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = st.clone()
    if shuffle is not None:
        tensors["rng.shuffle"] = shuffle.get_state().clone()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # safetensors has no uint32 in older versions everywhere; int64 holds it exactly.
    tensors["rng.numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64).copy())
    version, pystate, gauss = random.getstate()
    js = {
        "python": {"version": version, "state": list(pystate), "gauss_next": gauss},
        "numpy": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
    }
    return tensors, js


def restore_rng(tensors: dict[str, torch.Tensor], js: dict, shuffle: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng`. CUDA states are restored only where present."""
    torch.set_rng_state(tensors["rng.torch"].to(torch.uint8).cpu())
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        n = torch.cuda.device_count()
        for k in cuda:
            i = int(k.rsplit(".", 1)[1])
            if i < n:
                torch.cuda.set_rng_state(tensors[k].to(torch.uint8).cpu(), i)
    if shuffle is not None and "rng.shuffle" in tensors:
        shuffle.set_state(tensors["rng.shuffle"].to(torch.uint8).cpu())
    npj = js["numpy"]
    keys = tensors["rng.numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((npj["name"], keys, npj["pos"], npj["has_gauss"], npj["cached_gaussian"]))
    py = js["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
