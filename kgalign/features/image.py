"""Image features per entity: fetched images -> encoder vectors, cached per image.

An entity's image is its first source (in ``images.tsv`` order) that was
fetched, verified and decoded; other sources are ignored. Vectors are cached
per image under ``CACHE/image-features/<model key>/ab/<sha256 of bytes>.npy``
so an interrupted run continues where it stopped and identical images
(shared between datasets or entities) are encoded once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kgalign.data.store import Dataset
from kgalign.features.images_fetch import FetchResult
from kgalign.fsutil import atomic_path, remove_stale
from kgalign.progress import Progress


class FeatureCache:
    """One ``.npy`` vector per (model key, image content hash)."""

    def __init__(self, root: str | os.PathLike, model_key: str):
        self.root = Path(root) / "image-features" / model_key
        self.tmp = self.root / ".tmp"  # all temporaries here: leftovers of a killed run are found at once
        remove_stale(self.tmp)

    def _path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.npy"

    def get(self, sha: str, dim: int | None = None) -> np.ndarray | None:
        """The cached vector, or None when absent, unreadable or not of shape ``(dim,)``."""
        p = self._path(sha)
        if not p.is_file():
            return None
        try:
            vec = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return vec if dim is None or vec.shape == (dim,) else None

    def put(self, sha: str, vec: np.ndarray) -> None:
        with atomic_path(self._path(sha), tmp_dir=self.tmp) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(vec, dtype=np.float32))


def _load_tensor(path: str, encoder):
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return encoder.preprocess(im), None
    except Exception as exc:  # corrupt data that passed verify()
        return None, f"cannot decode image: {type(exc).__name__}: {exc}"


def encode_images(
    items: list[tuple[str, str]], encoder, cache: FeatureCache, batch_size: int, workers: int, progress: bool = False
) -> dict[str, str]:
    """Encode ``(sha256, file path)`` items not yet in ``cache``. Returns {sha: reason} for failures."""
    import torch

    # a cached vector that cannot be read (truncated by a crash, edited) is encoded again, not reported as failed
    todo = [(s, p) for s, p in dict(items).items() if cache.get(s, encoder.dim) is None]
    failed: dict[str, str] = {}
    with Progress(len(todo), "image features", enabled=progress) as bar, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            loaded = list(pool.map(lambda it: _load_tensor(it[1], encoder), chunk))
            good = [(s, t) for (s, _), (t, err) in zip(chunk, loaded, strict=False) if t is not None]
            for (s, _), (t, err) in zip(chunk, loaded, strict=False):
                if t is None:
                    failed[s] = err
            if good:
                vecs = encoder.encode(torch.stack([t for _, t in good]))
                for (s, _), v in zip(good, vecs, strict=False):
                    cache.put(s, v)  # written per image: Ctrl-C loses at most one batch
            bar.update(len(chunk))
    return failed


def image_features(
    ds: Dataset,
    fetched: dict[str, FetchResult],
    encoder,
    cache: FeatureCache,
    batch_size: int = 16,
    workers: int = 2,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Returns matrix float32 (n, dim), mask bool (n,), failures ``[{entity, source, reason}]``."""
    n = ds.num_entities
    candidates: dict[int, list[FetchResult]] = {}
    failures: list[dict] = []
    for e, src in zip(np.asarray(ds.image_entity).tolist(), ds.image_source, strict=False):
        r = fetched.get(src)
        if r is None:
            continue
        if r.ok:
            candidates.setdefault(e, []).append(r)
        else:
            failures.append({"entity": e, "source": src, "reason": r.reason})
    chosen: dict[int, FetchResult] = {}
    bad_sha: dict[str, str] = {}
    pending = dict(candidates)
    while pending:
        first = {e: rs[0] for e, rs in pending.items()}
        items = [(r.sha256, r.path) for r in first.values() if r.sha256 not in bad_sha]
        bad_sha.update(encode_images(items, encoder, cache, batch_size, workers, progress))
        nxt = {}
        for e, r in first.items():
            if r.sha256 in bad_sha:
                failures.append({"entity": e, "source": r.source, "reason": bad_sha[r.sha256]})
                if len(pending[e]) > 1:
                    nxt[e] = pending[e][1:]
            else:
                chosen[e] = r
        pending = nxt
    mat = np.zeros((n, encoder.dim), np.float32)
    mask = np.zeros(n, bool)
    for e, r in chosen.items():
        v = cache.get(r.sha256)
        if v is None or v.shape != (encoder.dim,):
            failures.append({"entity": e, "source": r.source, "reason": "cached feature vector unreadable"})
            continue
        mat[e] = v
        mask[e] = True
    failures.sort(key=lambda f: (f["entity"], f["source"]))
    return mat, mask, failures
