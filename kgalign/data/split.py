"""Splitting the reference links into train / valid / test.

- ``random``: a permutation from ``numpy.random.default_rng(seed)``; the first
  ``int(train*n)`` links train, the next ``int(valid*n)`` valid, then test
  (``int(test*n)`` of them, or all the rest when no test ratio is given);
  anything left over is ``unused``.
- ``legacy``: the MCLEA/MEAformer/NoCo split, bit for bit: the link list in file
  order is shuffled by ``numpy.random.RandomState(42).shuffle`` (the same stream
  as ``np.random.seed(42); np.random.shuffle(list)``), the first
  ``int(train*n)`` pairs train, the rest test. ``legacy_valid=f`` then moves
  ``int(f*n)`` links, chosen with ``default_rng(seed)``, from test to valid;
  train is untouched.
- ``given``: labels from split files; links in none of them are ``unused``.
"""

from __future__ import annotations

import numpy as np

from kgalign.errors import InputError

METHODS = ("random", "legacy", "given")
LEGACY_SEED = 42


def random_split(n: int, train: float = 0.2, valid: float = 0.1, test: float | None = None, seed: int = 0) -> list[str]:
    _check_ratios(train, valid, test)
    perm = np.random.default_rng(seed).permutation(n)
    n_tr, n_va = int(train * n), int(valid * n)
    n_te = n - n_tr - n_va if test is None else int(test * n)
    labels = ["unused"] * n
    for rank, i in enumerate(perm.tolist()):
        if rank < n_tr:
            labels[i] = "train"
        elif rank < n_tr + n_va:
            labels[i] = "valid"
        elif rank < n_tr + n_va + n_te:
            labels[i] = "test"
    return labels


def legacy_split(pairs: list[tuple[int, int]], train: float = 0.2, legacy_valid: float = 0.0, seed: int = 0) -> list[str]:
    """``pairs`` in file order (any hashable items; only their positions matter)."""
    if not 0.0 <= train <= 1.0:
        raise InputError(f"train ratio must be in [0, 1], got {train}")
    if not 0.0 <= legacy_valid < 1.0:
        raise InputError(f"--legacy-valid must be in [0, 1), got {legacy_valid}")
    n = len(pairs)
    order = list(range(n))
    # shuffling positions equals shuffling the pair list itself: the shuffle only moves items
    np.random.RandomState(LEGACY_SEED).shuffle(order)
    n_tr = int(n * train)
    labels = ["test"] * n
    for i in order[:n_tr]:
        labels[i] = "train"
    n_va = int(legacy_valid * n)
    if n_va:
        test_idx = np.array(order[n_tr:], np.int64)
        if n_va > len(test_idx):
            raise InputError(f"--legacy-valid {legacy_valid} asks for {n_va} links but the legacy test part has {len(test_idx)}")
        pick = np.random.default_rng(seed).choice(len(test_idx), size=n_va, replace=False)
        for i in test_idx[np.sort(pick)].tolist():
            labels[i] = "valid"
    return labels


def _check_ratios(train: float, valid: float, test: float | None) -> None:
    parts = [train, valid] + ([test] if test is not None else [])
    if any(p < 0 or p > 1 for p in parts) or sum(parts) > 1 + 1e-9:
        raise InputError(f"split ratios must be in [0, 1] and sum to at most 1, got train={train} valid={valid} test={test}")
