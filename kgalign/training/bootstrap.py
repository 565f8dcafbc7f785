"""Iterative training (bootstrapping): propose new training pairs from embeddings.

Only embeddings are used: the candidate pools are every KG1 / KG2 entity that is
not yet in a training pair (valid and test entities included, exactly like any
other unlabelled entity), and a pair is proposed when the two entities are each
other's nearest neighbour by cosine similarity (no CSLS), as in MEAformer and
MCLEA. Gold valid/test links are never consulted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from kgalign.training.loop import Callback

log = logging.getLogger("kgalign.training")


@torch.no_grad()
def mutual_nearest_neighbours(emb: torch.Tensor, left: torch.Tensor, right: torch.Tensor, shard=None) -> torch.Tensor:
    """Pairs ``(l, r)`` with ``l`` in ``left``, ``r`` in ``right`` that are mutual nearest neighbours.

    Uses evaluation's blocked exact search (ties go to the lower candidate index).

    Args:
        emb: (n, D) L2-normalised embeddings (global ids).
        left, right: LongTensor (a,), (b,) candidate global ids.
        shard: a :class:`~kgalign.evaluation.sharded.QueryShard` under torchrun: each rank searches
            its share of the rows, all get the same pairs as one process.
    Returns:
        LongTensor (k, 2) of global ids, sorted by ``l``.
    """
    from kgalign.evaluation.similarity import blocked_topk

    if len(left) == 0 or len(right) == 0:
        return torch.zeros((0, 2), dtype=torch.long)
    left, right = left.to(emb.device), right.to(emb.device)
    el, er = emb[left].float(), emb[right].float()
    if shard is None:
        row_best = blocked_topk(el, er, 1)[1][:, 0]
        col_best = blocked_topk(er, el, 1)[1][:, 0]
    else:
        from kgalign.evaluation.sharded import nearest_sharded

        row_best, col_best = nearest_sharded(el, er, shard), nearest_sharded(er, el, shard)
    idx = torch.arange(len(left), device=emb.device)
    mutual = col_best[row_best] == idx
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


class Bootstrapping(Callback):
    """Iterative training: from epoch ``start`` on, propose mutual nearest neighbours
    as new training pairs (MEAformer's schedule, :class:`ILSchedule`).

    At the start it reloads the selected weights (``reload_best``) and begins a new
    schedule phase with fresh optimizers at ``lr * lr_factor``. Pairs in
    ``excluded`` (known negatives) are never proposed.
    """

    key = "iterative"

    def __init__(
        self,
        schedule: ILSchedule,
        *,
        kg: np.ndarray,
        num_entities: int,
        lr: float,
        lr_factor: float,
        warmup: float,
        phase_schedule: str,
        reload_best: bool,
        selection=None,
        excluded: np.ndarray | None = None,
        notify=None,
        shard=None,
    ):
        self.il = schedule
        self.kg = kg
        self.num_entities = num_entities
        self.lr, self.lr_factor, self.warmup, self.phase_schedule = lr, lr_factor, warmup, phase_schedule
        self.reload_best = reload_best
        self.selection = selection  # a ModelSelection, for the weights to reload and its patience
        self.excluded = None if excluded is None or len(excluded) == 0 else np.asarray(excluded, np.int64).reshape(-1, 2)
        self.notify = notify or (lambda msg: log.info("%s", msg))
        self.shard = shard  # QueryShard under torchrun (the search's rows split across ranks)
        self.started = False
        self.additions = 0  # bootstrapped additions so far (early stopping is armed from the first)
        self.candidates = torch.zeros((0, 2), dtype=torch.long)

    def on_epoch_start(self, loop) -> None:
        if self.started or loop.epoch < self.il.start or loop.partial is not None:
            return
        if self.reload_best and self.selection is not None and self.selection.restore_best(loop.model, loop.device):
            loop.forget_embeddings()
            self.notify(
                f"iterative training from epoch {loop.epoch}: reloaded the weights of epoch "
                f"{self.selection.selection.best_epoch} (selected on {self.selection.selection.split})"
            )
        loop.start_phase(self.lr * self.lr_factor, self.warmup, self.phase_schedule)
        if self.selection is not None:
            self.selection.selection.bad_evals = 0
        self.started = True

    def armed(self) -> bool:
        """Early stopping counts from the first addition: before it the training links are still the seeds, and a
        patience shorter than ``add_every`` would stop the run before bootstrapping added anything."""
        return self.started and self.additions > 0

    def _without_excluded(self, pairs: torch.Tensor) -> torch.Tensor:
        if self.excluded is None or len(pairs) == 0:
            return pairs
        n = self.num_entities
        keys = pairs[:, 0].numpy() * n + pairs[:, 1].numpy()
        bad = np.isin(keys, self.excluded[:, 0] * n + self.excluded[:, 1])
        return pairs[torch.from_numpy(~bad)]

    def on_epoch_end(self, loop, record: dict) -> None:
        if not self.started:
            return
        check, reset, add = self.il.actions(loop.epoch)
        info = {}
        if check:
            emb = loop.embeddings()
            left, right = candidate_pools(self.kg, loop.links)
            mnn = self._without_excluded(mutual_nearest_neighbours(emb, left.to(emb.device), right.to(emb.device), self.shard))
            reset = reset or len(self.candidates) == 0
            self.candidates = mnn if reset else intersect_pairs(self.candidates, mnn, self.num_entities)
            info.update(mutual_nn=len(mnn), candidates=len(self.candidates), reset=bool(reset))
        if add and len(self.candidates):
            new = self.candidates.numpy().astype(np.int64)
            loop.links = np.concatenate([loop.links, new])
            loop.source = np.concatenate([loop.source, np.full(len(new), loop.epoch, dtype=np.int64)])
            self.candidates = torch.zeros((0, 2), dtype=torch.long)
            self.additions += 1
            if self.selection is not None:  # new training links: the patience counter starts over
                self.selection.selection.bad_evals = 0
            info["added"] = len(new)
            self.notify(f"epoch {loop.epoch}: added {len(new)} bootstrapped pairs ({len(loop.links)} training links now)")
        if info:
            record["bootstrap"] = info

    def state_dict(self):
        return {"il.candidates": self.candidates}, {"il_started": self.started, "il_additions": self.additions}

    def load_state_dict(self, tensors, meta) -> None:
        self.candidates = tensors.get("il.candidates", torch.zeros((0, 2), dtype=torch.long)).long()
        self.started = bool(meta["il_started"])
        self.additions = int(meta.get("il_additions", 0))
