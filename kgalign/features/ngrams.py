"""Character n-gram hashing of entity names: a model-free name featurizer for millions of names.

Each name is lower-cased, padded with one space at each end and cut into its byte
n-grams (default 3); each n-gram adds ±1 to one of ``dim`` columns picked by a fixed
multiplicative hash (the hashing trick, no vocabulary), and the row is L2-normalised.
Names that share most n-grams get a cosine near 1, so a one-letter misspelling stays
close, while names in different scripts or transliterations do not (use a text
encoder for those). Vectorised with numpy: about a microsecond a name, no model.
"""

from __future__ import annotations

import numpy as np

KEY = "hash-ngram/1"
MAX_BYTES = 256  # longer names are cut: it bounds the memory of a chunk
CHUNK = 1 << 16  # names hashed at once: (CHUNK, MAX_BYTES) uint64 codes at most
_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing constant (odd): mixes all input bits upwards


def _chunk_entries(texts: list[str], dim: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, sign) of every n-gram of ``texts``; rows index ``texts``."""
    raw = np.array([(" " + t.lower() + " ").encode("utf-8")[:MAX_BYTES] for t in texts])
    width = raw.dtype.itemsize
    mat = raw.view(np.uint8).reshape(len(texts), width).astype(np.uint64)
    length = (mat != 0).sum(axis=1)
    span = max(width - n + 1, 0)
    code = np.zeros((len(texts), span), np.uint64)
    for k in range(n):
        code = code * np.uint64(257) + mat[:, k : k + span]
    valid = np.arange(span)[None, :] < (length - n + 1)[:, None]
    h = code[valid] * _MULT
    rows = np.nonzero(valid)[0]
    cols = ((h >> np.uint64(32)) % np.uint64(dim)).astype(np.int64)
    sign = np.where((h >> np.uint64(17)) & np.uint64(1), 1.0, -1.0).astype(np.float32)
    return rows, cols, sign


def hashed_ngrams(names: list[str | None], dim: int = 256, n: int = 3, sparse: bool = False) -> tuple:
    """Rows for ``names`` (None: no name). Returns matrix float32 (len(names), dim), L2-normalised rows
    (``sparse``: a scipy.sparse.csr_array), and mask bool (len(names),).

    Memory: O(total n-grams) for the sparse result (about 8 bytes each), plus the dense
    (len(names), dim) result unless ``sparse``.
    """
    from scipy import sparse as sp

    if dim < 1 or n < 1:
        raise ValueError(f"dim and n must be positive, got {dim}, {n}")
    mask = np.array([bool(t and t.strip()) for t in names], dtype=bool)
    which = np.flatnonzero(mask)
    parts_r, parts_c, parts_v = [], [], []
    for start in range(0, len(which), CHUNK):
        idx = which[start : start + CHUNK]
        r, c, v = _chunk_entries([names[i] for i in idx.tolist()], dim, n)
        parts_r.append(idx[r])
        parts_c.append(c)
        parts_v.append(v)
    rows = np.concatenate(parts_r) if parts_r else np.zeros(0, np.int64)
    cols = np.concatenate(parts_c) if parts_c else np.zeros(0, np.int64)
    vals = np.concatenate(parts_v) if parts_v else np.zeros(0, np.float32)
    mat = sp.csr_array((vals, (rows, cols)), shape=(len(names), dim), dtype=np.float32)
    mat.sum_duplicates()
    mat.eliminate_zeros()  # +1 and -1 in one column cancel
    per_row = np.diff(mat.indptr)
    row_of = np.repeat(np.arange(len(names)), per_row)
    norms = np.sqrt(np.bincount(row_of, weights=mat.data.astype(np.float64) ** 2, minlength=len(names)))
    mat.data = (mat.data / norms[row_of]).astype(np.float32)
    mask &= per_row > 0
    return (mat if sparse else mat.toarray()), mask
