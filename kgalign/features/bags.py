"""Bag-of-relations and bag-of-attribute-keys features (MCLEA / MEAformer style).

Both pick the top-k columns by frequency over the two graphs together (ties:
lower id first) and have ``min(k, distinct used)`` columns; no zero padding.
"""

from __future__ import annotations

import numpy as np

from kgalign.data.store import Dataset


def _topk(counts: np.ndarray, k: int) -> np.ndarray:
    """Ids of the ``k`` largest non-zero counts, most frequent first, ties by id."""
    used = np.flatnonzero(counts > 0)
    order = np.lexsort((used, -counts[used]))  # primary: count desc; secondary: id asc
    return used[order][:k]


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]):
    """A scipy.sparse.csr_array (float32) summing ``values`` at ``(rows, cols)``; memory O(nnz), not O(n * d)."""
    from scipy import sparse

    mat = sparse.csr_array((values.astype(np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    return mat


def _row_mask(mat, n: int) -> np.ndarray:
    return np.diff(mat.indptr) > 0 if mat.shape[1] else np.zeros(n, bool)


def relation_features(ds: Dataset, topk: int = 1000, sparse: bool = False) -> tuple:
    """Relation counts per entity over the ``topk`` most frequent relations.

    A triple (h, r, t) with r in the top k adds 1 to column r of h and 1 to
    column r of t (a self loop adds 2), as MCLEA/MEAformer do: undirected counts.
    Frequency = number of triples using the relation.

    Returns matrix float32 (n, d) (``sparse``: a scipy.sparse.csr_array), mask bool
    (n,) = row has a non-zero count, meta with ``columns`` (relation ids in column order).
    Memory: O(triples) for the counts, plus the dense (n, d) result unless ``sparse``.
    """
    n = ds.num_entities
    tri = np.asarray(ds.relation_triples, dtype=np.int64).reshape(-1, 3)
    counts = np.bincount(tri[:, 1], minlength=len(ds.relations)) if len(tri) else np.zeros(len(ds.relations), np.int64)
    cols = _topk(counts, topk)
    col_of = np.full(max(len(ds.relations), 1), -1, np.int64)
    col_of[cols] = np.arange(len(cols))
    c = col_of[tri[:, 1]] if len(tri) else np.zeros(0, np.int64)
    keep = c >= 0
    d = len(cols)
    rows = np.concatenate([tri[keep, 0], tri[keep, 2]])
    mat = _csr(rows, np.concatenate([c[keep], c[keep]]), np.ones(len(rows), np.float32), (n, d))
    mask = _row_mask(mat, n)
    return (mat if sparse else mat.toarray()), mask, {"columns": cols.tolist(), "counting": "head+tail counts"}


def entity_attribute_pairs(ds: Dataset) -> np.ndarray:
    """Distinct (entity, attribute id) pairs from attribute triples and numeric values, (p, 2), sorted."""
    ent = np.concatenate([np.asarray(ds.attr_entity, np.int64), np.asarray(ds.num_entity, np.int64)])
    key = np.concatenate([np.asarray(ds.attr_key, np.int64), np.asarray(ds.num_key, np.int64)])
    if len(ent) == 0:
        return np.zeros((0, 2), np.int64)
    width = int(key.max()) + 1
    code = np.sort(ent * width + key)  # one int64 key per pair: much faster than unique(axis=0)
    code = code[np.concatenate([[True], code[1:] != code[:-1]])]
    return np.stack([code // width, code % width], axis=1)


def attribute_features(ds: Dataset, topk: int = 1000, sparse: bool = False) -> tuple:
    """Binary bag of attribute keys over the ``topk`` keys used by most entities.

    Numeric-valued keys (``numeric.tsv``) count as keys too. Returns matrix
    float32 (n, d) of 0/1 (``sparse``: a scipy.sparse.csr_array), mask bool (n,) =
    entity has any top-k key, meta.
    """
    n = ds.num_entities
    pairs = entity_attribute_pairs(ds)
    counts = np.bincount(pairs[:, 1], minlength=len(ds.attributes)) if len(pairs) else np.zeros(len(ds.attributes), np.int64)
    cols = _topk(counts, topk)
    col_of = np.full(max(len(ds.attributes), 1), -1, np.int64)
    col_of[cols] = np.arange(len(cols))
    c = col_of[pairs[:, 1]] if len(pairs) else np.zeros(0, np.int64)
    keep = c >= 0
    mat = _csr(pairs[keep, 0], c[keep], np.ones(int(keep.sum()), np.float32), (n, len(cols)))
    mask = _row_mask(mat, n)
    return (mat if sparse else mat.toarray()), mask, {"columns": cols.tolist(), "counting": "binary"}
