"""Approximate nearest neighbours by inner product with FAISS (the optional ``kgalign[ann]`` extra).

faiss is imported lazily (inside functions) so that nothing else needs it; asking for it
when it is not installed raises :class:`kgalign.errors.MissingResourceError` with the
install command. Inputs are L2-normalised float32 rows, so inner product = cosine.

Index kinds (``kind``):

- ``flat``: ``IndexFlatIP``, exact brute force (BLAS), the reference.
- ``ivf``: ``IndexIVFFlat`` with ``nlist`` spherical k-means cells (``niter`` iterations) trained
  on a sample of at most ``train_per_cell * nlist`` vectors; a query scans its ``nprobe``
  nearest cells. :func:`refill` reuses the trained cells for the other side (both sides live
  in one embedding space), so only one k-means runs per alignment.
- ``hnsw``: ``IndexHNSWFlat`` graph with ``hnsw_m`` links per node,
  ``ef_construction`` while building and ``ef_search`` while searching.
- ``auto``: ``flat`` up to ``flat_max`` indexed vectors, ``ivf`` above.

Results are padded with index -1 and score -inf where an index returns fewer than k
neighbours (an IVF query whose probed cells hold fewer than k vectors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kgalign.errors import MissingResourceError

INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")
# Below this many indexed vectors a flat index is fast enough (100k x 50k x 300 ~ 3 TFLOP worst case).
DEFAULT_FLAT_MAX = 50_000


@dataclass
class AnnOptions:
    """Index choice and parameters; ``None`` means chosen from the index size."""

    kind: str = "auto"
    nlist: int | None = None  # IVF cells; default 4 * sqrt(n), clamped to [16, 65536] and n // 39
    nprobe: int = 32
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    flat_max: int = DEFAULT_FLAT_MAX
    threads: int | None = None  # OpenMP threads for faiss; None keeps faiss's default
    seed: int = 0
    niter: int = 10  # k-means iterations (the cost of training is nlist x sample x d x niter)
    train_per_cell: int = 40  # training vectors per cell (faiss warns below 39)

    def check(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index must be one of {', '.join(INDEX_KINDS)}, got {self.kind!r}")
        for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError(f"nlist must be at least 1, got {self.nlist}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")


def require_faiss():
    """The faiss module, or a MissingResourceError that says how to install it."""
    try:
        import faiss
    except ImportError:
        raise MissingResourceError(
            "approximate search needs faiss, which is not installed: pip install 'kgalign[ann]' (or faiss-cpu); or use --search exact"
        ) from None
    return faiss


def faiss_available() -> bool:
    try:
        require_faiss()
    except MissingResourceError:
        return False
    return True


def resolve_kind(n_indexed: int, opts: AnnOptions) -> str:
    if opts.kind != "auto":
        return opts.kind
    return "flat" if n_indexed <= opts.flat_max else "ivf"


def default_nlist(n_indexed: int) -> int:
    """4 sqrt(n) cells (FAISS's rule of thumb), at least 39 training vectors per cell."""
    nlist = int(round(4 * math.sqrt(max(1, n_indexed))))
    return max(1, min(65536, max(16, nlist), n_indexed // 39))


def build_index(base: np.ndarray, opts: AnnOptions):
    """An inner-product index over ``base`` (n, d) float32 (L2-normalised). Returns (index, description)."""
    faiss = require_faiss()
    if opts.threads is not None:
        faiss.omp_set_num_threads(int(opts.threads))
    base = np.ascontiguousarray(base, dtype=np.float32)
    n, d = base.shape
    kind = resolve_kind(n, opts)
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
        desc = "Flat"
    elif kind == "ivf":
        nlist = min(opts.nlist or default_nlist(n), max(1, n))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True  # centroids on the unit sphere: cells by cosine
        index.cp.seed = int(opts.seed)
        index.cp.niter = int(opts.niter)
        sample = base
        if n > opts.train_per_cell * nlist:
            rng = np.random.default_rng(opts.seed)
            sample = base[np.sort(rng.choice(n, opts.train_per_cell * nlist, replace=False))]
        index.train(sample)
        index.nprobe = min(int(opts.nprobe), nlist)
        desc = f"IVF{nlist},Flat nprobe={index.nprobe}"
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(opts.hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(opts.ef_construction)
        index.hnsw.efSearch = int(opts.ef_search)
        desc = f"HNSW{opts.hnsw_m},Flat efSearch={opts.ef_search}"
    else:
        raise ValueError(f"index must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
    if n:
        index.add(base)
    return index, desc


def refill(index, base: np.ndarray, opts: AnnOptions, desc: str):
    """The same index kind over other vectors: a trained IVF keeps its cells (no second k-means),
    flat is emptied and refilled; HNSW is rebuilt. Returns (index, description)."""
    faiss = require_faiss()
    if isinstance(index, (faiss.IndexIVFFlat, faiss.IndexFlat)) and index.ntotal:
        index.reset()
        base = np.ascontiguousarray(base, dtype=np.float32)
        if base.shape[0]:
            index.add(base)
        return index, desc + (" (cells reused)" if isinstance(index, faiss.IndexIVFFlat) else "")
    return build_index(base, opts)


def search(index, queries: np.ndarray, k: int, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product: queries (m, d) -> scores float32 (m, k), ids int64 (m, k), best first.

    Missing neighbours: id -1, score -inf. Queries go in chunks so that faiss's
    per-query buffers stay small."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    m = queries.shape[0]
    k = int(k)
    scores = np.full((m, k), -np.inf, np.float32)
    ids = np.full((m, k), -1, np.int64)
    if k == 0 or m == 0 or index.ntotal == 0:
        return scores, ids
    for s in range(0, m, chunk):
        e = min(m, s + chunk)
        D, I = index.search(queries[s:e], k)
        scores[s:e], ids[s:e] = D, I
    scores[ids < 0] = -np.inf
    return scores, ids
