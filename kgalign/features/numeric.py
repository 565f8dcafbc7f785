"""Numeric attribute values per entity, normalised per attribute (for MPSEA's DNEF).

Dates are already fractional years in the dataset store. Per attribute column:

1. several values of one entity are reduced to their median;
2. the values are transformed per column, robust to outliers and units:
   - ``quantile`` (default): the empirical CDF, ``(average rank - 0.5) / m``
     over the m entities that have the attribute, in (0, 1); invariant to any
     increasing change of units (cm vs m, years vs days);
   - ``robust``: ``(x - median) / IQR`` (if the IQR is 0: the standard
     deviation, then 1), clipped to [-clip, clip]; invariant to affine units.

Returns the values (n, k) with 0 where absent and a presence matrix (n, k) of
0/1 so models can tell a real 0 from a missing value.
"""

from __future__ import annotations

import numpy as np

from kgalign.data.store import Dataset
from kgalign.features.bags import _topk

TRANSFORMS = ("quantile", "robust")


def _column_transform(v: np.ndarray, how: str, clip: float) -> np.ndarray:
    if how == "quantile":
        from scipy.stats import rankdata

        return ((rankdata(v, method="average") - 0.5) / len(v)).astype(np.float64)
    med = np.median(v)
    q75, q25 = np.percentile(v, [75, 25])
    scale = q75 - q25
    if not scale > 0:
        scale = float(np.std(v))
    if not scale > 0:
        scale = 1.0
    return np.clip((v - med) / scale, -clip, clip)


def numeric_features(ds: Dataset, topk: int = 1000, transform: str = "quantile", clip: float = 5.0):
    """Returns (values float32 (n, k), present float32 (n, k), mask bool (n,), meta).

    Columns: the ``topk`` numeric attributes with most entities. Non-finite
    values are ignored.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown numeric transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
    n = ds.num_entities
    ent = np.asarray(ds.num_entity, np.int64)
    key = np.asarray(ds.num_key, np.int64)
    val = np.asarray(ds.num_value, np.float64)
    finite = np.isfinite(val)
    ent, key, val = ent[finite], key[finite], val[finite]
    pairs = np.unique(np.stack([ent, key], 1), axis=0) if len(ent) else np.zeros((0, 2), np.int64)
    counts = np.bincount(pairs[:, 1], minlength=len(ds.attributes)) if len(pairs) else np.zeros(len(ds.attributes), np.int64)
    cols = _topk(counts, topk)
    k = len(cols)
    values = np.zeros((n, k), np.float32)
    present = np.zeros((n, k), np.float32)
    stats = []
    for j, a in enumerate(cols.tolist()):
        sel = key == a
        e, v = ent[sel], val[sel]
        order = np.argsort(e, kind="stable")
        e, v = e[order], v[order]
        uniq, start, cnt = np.unique(e, return_index=True, return_counts=True)
        per_entity = v[start].copy()
        for i in np.flatnonzero(cnt > 1):  # only entities with several values need a median
            per_entity[i] = np.median(v[start[i] : start[i] + cnt[i]])
        values[uniq, j] = _column_transform(per_entity, transform, clip)
        present[uniq, j] = 1.0
        stats.append(
            {
                "attribute": a,
                "entities": int(len(uniq)),
                "median": float(np.median(per_entity)),
                "min": float(per_entity.min()),
                "max": float(per_entity.max()),
            }
        )
    mask = present.any(axis=1) if k else np.zeros(n, bool)
    meta = {"columns": cols.tolist(), "transform": transform, "clip": clip if transform == "robust" else None, "column_stats": stats}
    return values, present, mask, meta
