"""Iterative training (bootstrapping): propose new training pairs from embeddings.

Only embeddings are used: the candidate pools are every KG1 / KG2 entity that is
not yet in a training pair (valid and test entities included, exactly like any
other unlabelled entity), and a pair is proposed when the two entities are each
other's nearest neighbour by cosine similarity (no CSLS), as in MEAformer and
MCLEA. Gold valid/test links are never consulted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@torch.no_grad()
def mutual_nearest_neighbours(emb: torch.Tensor, left: torch.Tensor, right: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """Pairs ``(l, r)`` with ``l`` in ``left``, ``r`` in ``right`` that are mutual nearest neighbours.

    Args:
        emb: (n, D) L2-normalised embeddings (global ids).
        left, right: LongTensor (a,), (b,) candidate global ids.
    Returns:
        LongTensor (k, 2) of global ids, sorted by ``l``.
    """
    if len(left) == 0 or len(right) == 0:
        return torch.zeros((0, 2), dtype=torch.long)
    el, er = emb[left].float(), emb[right].float()
    row_best = torch.empty(len(left), dtype=torch.long, device=emb.device)
    for s in range(0, len(left), block):
        row_best[s : s + block] = (el[s : s + block] @ er.T).argmax(dim=1)
    col_best = torch.empty(len(right), dtype=torch.long, device=emb.device)
    for s in range(0, len(right), block):
        col_best[s : s + block] = (er[s : s + block] @ el.T).argmax(dim=1)
    idx = torch.arange(len(left), device=emb.device)
    mutual = col_best[row_best] == idx
    left, right = left.to(emb.device), right.to(emb.device)
    return torch.stack([left[idx[mutual]], right[row_best[mutual]]], dim=1).cpu()


def candidate_pools(kg: np.ndarray, train_links: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Global ids of KG1 and KG2 entities that are in no training pair. ``kg``: (n,) 1/2."""
    used1 = np.zeros(len(kg), bool)
    used2 = np.zeros(len(kg), bool)
    if len(train_links):
        used1[train_links[:, 0]] = True
        used2[train_links[:, 1]] = True
    left = np.flatnonzero((kg == 1) & ~used1)
    right = np.flatnonzero((kg == 2) & ~used2)
    return torch.from_numpy(left).long(), torch.from_numpy(right).long()


def intersect_pairs(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """Pairs present in both (k, 2) tensors, sorted."""
    ka = a[:, 0].numpy() * n + a[:, 1].numpy()
    kb = b[:, 0].numpy() * n + b[:, 1].numpy()
    keep = np.intersect1d(ka, kb)
    return torch.from_numpy(np.stack([keep // n, keep % n], axis=1).reshape(-1, 2)).long()


@dataclass
class ILSchedule:
    """When to look for candidates, when to restart the candidate set, when to add it.

    Counted in epochs completed since ``start`` (``r``): candidates are computed
    when ``r % step == 0``; the set is replaced (not intersected) at the first
    check of every ``reset_every`` cycle (``r % reset_every == step % reset_every``)
    or when it is empty; it is appended to the training links and cleared when
    ``r % add_every == 0``. MEAformer's script values are step 5, reset 25, add 50.
    """

    start: int
    step: int = 5
    reset_every: int = 25
    add_every: int = 50

    def actions(self, epochs_done: int) -> tuple[bool, bool, bool]:
        """``(check, reset, add)`` at the end of the epoch that makes ``epochs_done``."""
        r = epochs_done - self.start
        if r <= 0:
            return False, False, False
        check = r % self.step == 0
        reset = check and (r % self.reset_every == self.step % self.reset_every)
        add = r % self.add_every == 0
        return check, reset, add
