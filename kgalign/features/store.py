"""Feature matrices stored beside a dataset: ``DATASET/features/``.

Each modality ``NAME`` is two plain NumPy files plus an entry in
``features/manifest.json``::

    NAME.npy        float32 (n_entities, dim); rows of unavailable entities are zero
    NAME.mask.npy   bool (n_entities,): True where the entity has this modality

The store never fills missing rows with random vectors: models decide how to
treat masked entities. Writes are atomic per file; the manifest is written last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from kgalign.errors import MissingResourceError
from kgalign.fsutil import atomic_path, atomic_write_text

MANIFEST = "manifest.json"


def features_dir(dataset_path: str | os.PathLike) -> Path:
    return Path(dataset_path) / "features"


def read_manifest(dataset_path: str | os.PathLike) -> dict:
    p = features_dir(dataset_path) / MANIFEST
    if not p.is_file():
        return {}
    return json.loads(p.read_text(encoding="utf-8"))


def save_feature(dataset_path: str | os.PathLike, name: str, matrix: np.ndarray, mask: np.ndarray, meta: dict | None = None) -> None:
    """Store one modality. ``meta`` (featurizer, parameters, ...) goes to the manifest."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    mask = np.ascontiguousarray(mask, dtype=bool)
    if matrix.ndim != 2 or mask.shape != (matrix.shape[0],):
        raise ValueError(f"feature {name}: matrix {matrix.shape} and mask {mask.shape} do not match")
    d = features_dir(dataset_path)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(d / f"{name}.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, matrix)
    with atomic_path(d / f"{name}.mask.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, mask)
    manifest = read_manifest(dataset_path)
    manifest[name] = {
        "dim": int(matrix.shape[1]),
        "available": int(mask.sum()),
        "entities": int(matrix.shape[0]),
        **(meta or {}),
    }
    atomic_write_text(d / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def load_feature(dataset_path: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = features_dir(dataset_path)
    f, m = d / f"{name}.npy", d / f"{name}.mask.npy"
    if not f.is_file() or not m.is_file():
        raise MissingResourceError(f"{dataset_path}: no {name!r} features; run `kgalign features {dataset_path}` first")
    return np.load(f, allow_pickle=False), np.load(m, allow_pickle=False)


def load_features(dataset_path: str | os.PathLike, names: list[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All stored modalities (or ``names``) as ``{name: (matrix, mask)}``."""
    names = list(read_manifest(dataset_path)) if names is None else names
    return {n: load_feature(dataset_path, n) for n in names}
