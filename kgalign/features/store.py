"""Feature matrices stored beside a dataset: ``DATASET/features/``.

Each modality ``NAME`` is two plain NumPy files plus an entry in
``features/manifest.json``::

    NAME.npy        float32 (n_entities, dim); rows of unavailable entities are zero
    NAME.mask.npy   bool (n_entities,): True where the entity has this modality

The store never fills missing rows with random vectors: models decide how to
treat masked entities. Writes are atomic per file; the manifest is written last.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import atomic_path, atomic_write_text

MANIFEST = "manifest.json"


def features_dir(dataset_path: str | os.PathLike) -> Path:
    return Path(dataset_path) / "features"


def _damaged(path: Path, problem: str) -> InputError:
    return InputError(f"{problem}; run `kgalign features DATASET --force` to compute it again", str(path))


def read_manifest(dataset_path: str | os.PathLike) -> dict:
    p = features_dir(dataset_path) / MANIFEST
    if not p.is_file():
        return {}
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _damaged(p, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
        raise _damaged(p, "expected a JSON object of feature entries")
    return manifest


def _file_record(path: Path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def save_feature(dataset_path: str | os.PathLike, name: str, matrix: np.ndarray, mask: np.ndarray, meta: dict | None = None) -> None:
    """Store one modality. ``meta`` (featurizer, parameters, ...) goes to the manifest.

    A write error (disk full) is one InputError naming the features folder; the old files stay.
    """
    try:
        _save_feature(dataset_path, name, matrix, mask, meta)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write the {name} features: {exc.strerror or exc}", str(features_dir(dataset_path))) from None


def _save_feature(dataset_path, name: str, matrix: np.ndarray, mask: np.ndarray, meta: dict | None) -> None:
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
        "files": {f"{name}.npy": _file_record(d / f"{name}.npy"), f"{name}.mask.npy": _file_record(d / f"{name}.mask.npy")},
    }
    atomic_write_text(d / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _load_npy(path: Path, entry: dict, checksums: bool) -> np.ndarray:
    rec = (entry.get("files") or {}).get(path.name)
    if isinstance(rec, dict):
        size = path.stat().st_size
        if size != rec.get("bytes"):
            raise _damaged(path, f"is {size} bytes, the manifest recorded {rec.get('bytes')} (truncated or changed)")
        if checksums and _file_record(path)["sha256"] != rec.get("sha256"):
            raise _damaged(path, "its sha256 differs from the one the manifest recorded (changed)")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise _damaged(path, f"not a readable .npy file ({exc})") from None


def load_feature(
    dataset_path: str | os.PathLike, name: str, n_entities: int | None = None, checksums: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One modality, checked against its manifest entry: sizes, shapes, dtypes (and sha256 with ``checksums``).

    ``n_entities``: the dataset's entity count, which every matrix must have as rows.
    """
    d = features_dir(dataset_path)
    f, m = d / f"{name}.npy", d / f"{name}.mask.npy"
    if not f.is_file() or not m.is_file():
        raise MissingResourceError(f"{dataset_path}: no {name!r} features; run `kgalign features {dataset_path}` first")
    entry = read_manifest(dataset_path).get(name, {})
    mat, mask = _load_npy(f, entry, checksums), _load_npy(m, entry, checksums)
    rows = n_entities if n_entities is not None else entry.get("entities", mat.shape[0] if mat.ndim else 0)
    dim = entry.get("dim", mat.shape[1] if mat.ndim == 2 else None)
    if mat.ndim != 2 or mat.shape != (rows, dim) or mat.dtype.kind != "f":
        raise _damaged(f, f"expected a float matrix of shape ({rows}, {dim}), found {mat.dtype} {mat.shape}")
    if mask.shape != (rows,) or mask.dtype != np.bool_:
        raise _damaged(m, f"expected a bool vector of shape ({rows},), found {mask.dtype} {mask.shape}")
    return mat, mask


def _dataset_entities(dataset_path: str | os.PathLike) -> int | None:
    """Entity count from the dataset manifest (None when it holds none)."""
    p = Path(dataset_path) / "manifest.json"
    try:
        counts = json.loads(p.read_text(encoding="utf-8"))["counts"]
        return int(counts["kg1"]["entities"]) + int(counts["kg2"]["entities"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_features(dataset_path: str | os.PathLike, names: list[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All stored modalities (or ``names``) as ``{name: (matrix, mask)}``, each checked (see load_feature)."""
    names = list(read_manifest(dataset_path)) if names is None else names
    n = _dataset_entities(dataset_path)
    return {name: load_feature(dataset_path, name, n) for name in names}


def check_features(dataset_path: str | os.PathLike, n_entities: int) -> dict[str, str]:
    """`kgalign info --check`: every stored modality with sizes, sha256, shapes. Returns {name: "ok"}."""
    return {name: "ok" for name in read_manifest(dataset_path) if load_feature(dataset_path, name, n_entities, checksums=True)}
