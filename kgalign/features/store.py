"""Feature matrices stored beside a dataset: ``DATASET/features/``.

Each modality ``NAME`` is plain NumPy files plus an entry in
``features/manifest.json``, in one of three storages (the entry's ``storage``)::

    dense (default; entries without ``storage`` are dense)
      NAME.npy          float32 (n_entities, dim); rows of unavailable entities are zero
    float16
      NAME.npy          float16 (n_entities, dim); loaded as float32
    csr (bag-of-words features of large datasets)
      NAME.data.npy     float32 (nnz,)   the non-zero values, row by row
      NAME.indices.npy  int32 (nnz,)     their columns
      NAME.indptr.npy   int64 (n_entities + 1,): row i is data[indptr[i]:indptr[i+1]]
    always
      NAME.mask.npy     bool (n_entities,): True where the entity has this modality

``load_features`` returns dense float32 matrices whatever the storage (so every
model reads any dataset); ``dense=False`` returns csr-stored ones as
``scipy.sparse.csr_array`` (float32) instead. The store never fills missing rows
with random vectors: models decide how to treat masked entities. Writes are atomic
per file; the manifest is written last.
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


STORAGES = ("dense", "float16", "csr")
CSR_PARTS = ("data", "indices", "indptr")


def is_sparse(matrix) -> bool:
    """True for a scipy.sparse matrix or array (without importing scipy when it is not loaded)."""
    return hasattr(matrix, "tocsr") and hasattr(matrix, "nnz")


def stored_files(name: str, storage: str = "dense") -> list[str]:
    """The file names one modality occupies in a storage (mask last)."""
    body = [f"{name}.{part}.npy" for part in CSR_PARTS] if storage == "csr" else [f"{name}.npy"]
    return body + [f"{name}.mask.npy"]


def save_feature(
    dataset_path: str | os.PathLike, name: str, matrix, mask: np.ndarray, meta: dict | None = None, storage: str | None = None
) -> None:
    """Store one modality. ``meta`` (featurizer, parameters, ...) goes to the manifest.

    ``matrix``: (n, d) dense array or scipy.sparse matrix. ``storage``: dense, float16 or csr;
    None stores sparse input as csr and dense input as dense float32.
    A write error (disk full) is one InputError naming the features folder; the old files stay.
    """
    storage = storage or ("csr" if is_sparse(matrix) else "dense")
    if storage not in STORAGES:
        raise ValueError(f"unknown feature storage {storage!r}; choose one of {', '.join(STORAGES)}")
    try:
        _save_feature(dataset_path, name, matrix, mask, meta, storage)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write the {name} features: {exc.strerror or exc}", str(features_dir(dataset_path))) from None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _save_feature(dataset_path, name: str, matrix, mask: np.ndarray, meta: dict | None, storage: str) -> None:
    mask = np.ascontiguousarray(mask, dtype=bool)
    shape = tuple(matrix.shape)
    if len(shape) != 2 or mask.shape != (shape[0],):
        raise ValueError(f"feature {name}: matrix {shape} and mask {mask.shape} do not match")
    d = features_dir(dataset_path)
    d.mkdir(parents=True, exist_ok=True)
    if storage == "csr":
        from scipy import sparse

        csr = sparse.csr_array(matrix, dtype=np.float32)
        csr.sum_duplicates()
        parts = {
            "data": np.ascontiguousarray(csr.data, dtype=np.float32),
            "indices": np.ascontiguousarray(csr.indices, dtype=np.int32),
            "indptr": np.ascontiguousarray(csr.indptr, dtype=np.int64),
        }
        for part in CSR_PARTS:
            _save_npy(d / f"{name}.{part}.npy", parts[part])
    else:
        dense = matrix.toarray() if is_sparse(matrix) else matrix
        _save_npy(d / f"{name}.npy", np.ascontiguousarray(dense, dtype=np.float16 if storage == "float16" else np.float32))
    _save_npy(d / f"{name}.mask.npy", mask)
    files = stored_files(name, storage)
    manifest = read_manifest(dataset_path)
    manifest[name] = {
        "dim": int(shape[1]),
        "available": int(mask.sum()),
        "entities": int(shape[0]),
        **(meta or {}),
        "storage": storage,
        "files": {f: _file_record(d / f) for f in files},
    }
    atomic_write_text(d / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for other in STORAGES:  # files of an earlier storage of this modality are stale now
        for f in set(stored_files(name, other)) - set(files):
            (d / f).unlink(missing_ok=True)


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


def _load_csr(d: Path, name: str, entry: dict, checksums: bool, rows: int, dim: int):
    """The three csr files, checked (dtypes, lengths, column range, row order) -> scipy.sparse.csr_array."""
    from scipy import sparse

    data, indices, indptr = (_load_npy(d / f"{name}.{part}.npy", entry, checksums) for part in CSR_PARTS)
    where = d / f"{name}.indptr.npy"
    if data.ndim != 1 or data.dtype.kind != "f" or indices.ndim != 1 or indices.dtype.kind not in "iu" or len(indices) != len(data):
        raise _damaged(d / f"{name}.data.npy", f"expected float data and integer indices of one length, found {data.dtype} {data.shape}")
    if indptr.shape != (rows + 1,) or indptr.dtype.kind not in "iu" or indptr[0] != 0 or indptr[-1] != len(data):
        raise _damaged(where, f"expected {rows + 1} row offsets from 0 to {len(data)}, found {indptr.dtype} {indptr.shape}")
    if (np.diff(indptr) < 0).any():
        raise _damaged(where, "row offsets decrease")
    if len(indices) and (indices.min() < 0 or indices.max() >= dim):
        raise _damaged(d / f"{name}.indices.npy", f"a column index is outside 0..{dim - 1}")
    return sparse.csr_array((data.astype(np.float32, copy=False), indices, indptr), shape=(rows, dim))


def load_feature(
    dataset_path: str | os.PathLike, name: str, n_entities: int | None = None, checksums: bool = False, dense: bool = True
) -> tuple:
    """One modality, checked against its manifest entry: sizes, shapes, dtypes (and sha256 with ``checksums``).

    ``n_entities``: the dataset's entity count, which every matrix must have as rows.
    Returns ``(matrix, mask)``: float32 ``(n, d)`` ndarray, or with ``dense=False`` a
    ``scipy.sparse.csr_array`` for csr-stored features; mask bool ``(n,)``.
    """
    d = features_dir(dataset_path)
    entry = read_manifest(dataset_path).get(name, {})
    storage = entry.get("storage", "dense")
    if storage not in STORAGES:
        raise _damaged(d / MANIFEST, f"unknown storage {storage!r} of the {name!r} features")
    files = stored_files(name, storage)
    if not all((d / f).is_file() for f in files):
        raise MissingResourceError(f"{dataset_path}: no {name!r} features; run `kgalign features {dataset_path}` first")
    m = d / files[-1]
    mask = _load_npy(m, entry, checksums)
    rows = n_entities if n_entities is not None else entry.get("entities", mask.shape[0] if mask.ndim else 0)
    if mask.shape != (rows,) or mask.dtype != np.bool_:
        raise _damaged(m, f"expected a bool vector of shape ({rows},), found {mask.dtype} {mask.shape}")
    if storage == "csr":
        mat = _load_csr(d, name, entry, checksums, rows, int(entry.get("dim", 0)))
        return (mat.toarray() if dense else mat), mask
    f = d / files[0]
    mat = _load_npy(f, entry, checksums)
    dim = entry.get("dim", mat.shape[1] if mat.ndim == 2 else None)
    if mat.ndim != 2 or mat.shape != (rows, dim) or mat.dtype.kind != "f":
        raise _damaged(f, f"expected a float matrix of shape ({rows}, {dim}), found {mat.dtype} {mat.shape}")
    return mat.astype(np.float32, copy=False), mask


def _dataset_entities(dataset_path: str | os.PathLike) -> int | None:
    """Entity count from the dataset manifest (None when it holds none)."""
    p = Path(dataset_path) / "manifest.json"
    try:
        counts = json.loads(p.read_text(encoding="utf-8"))["counts"]
        return int(counts["kg1"]["entities"]) + int(counts["kg2"]["entities"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_features(dataset_path: str | os.PathLike, names: list[str] | None = None, dense: bool = True) -> dict[str, tuple]:
    """All stored modalities (or ``names``) as ``{name: (matrix, mask)}``, each checked (see load_feature).

    ``dense=False``: csr-stored modalities come as ``scipy.sparse.csr_array`` (float32); the rest as before.
    """
    names = list(read_manifest(dataset_path)) if names is None else names
    n = _dataset_entities(dataset_path)
    return {name: load_feature(dataset_path, name, n, dense=dense) for name in names}


def check_features(dataset_path: str | os.PathLike, n_entities: int) -> dict[str, str]:
    """`kgalign info --check`: every stored modality with sizes, sha256, shapes. Returns {name: "ok"}."""
    return {name: "ok" for name in read_manifest(dataset_path) if load_feature(dataset_path, name, n_entities, checksums=True, dense=False)}
