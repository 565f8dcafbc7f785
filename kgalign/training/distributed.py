"""torch.distributed support for runs launched with torchrun.

Every rank holds the full graph and runs the full forward pass; each batch of
training links is split across ranks (rank r takes links r, r+W, ...) and DDP
averages the gradients. Parameters are identical on every rank after each step, so every rank holds
the same embeddings; evaluations and the bootstrapping candidate search split
their query rows across the ranks and combine the pieces with collectives
(kgalign/evaluation/sharded.py), so every rank gets the same, one-process
result and decisions such as early stopping agree; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(info: DistInfo, device: torch.device) -> None:
    import torch.distributed as dist

    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def destroy_process_group(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if ``flag`` is set on any rank (so all ranks stop at the same step)."""
    if not info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def query_shard(info: DistInfo):
    """This rank's :class:`~kgalign.evaluation.sharded.QueryShard` (evaluations and candidate searches split
    their query rows across the ranks); None in one process, where they run unsharded."""
    if not info.enabled:
        return None
    from kgalign.evaluation.sharded import QueryShard

    return QueryShard(info.rank, info.world_size)


def shard_links(links: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's share of a batch: rows ``rank, rank + W, ...``."""
    return links[info.rank :: info.world_size] if info.enabled else links


class TrainStep(torch.nn.Module):
    """``forward(links) -> (total, parts, out)`` with ``out = model()`` and
    ``(total, parts) = model.loss(out, links)``.

    DDP only synchronises parameters used inside its wrapped ``forward``; models use
    some parameters only in ``loss()`` (e.g. uncertainty weights), so the whole
    training step is the wrapped forward.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, links: torch.Tensor):
        out = self.model()
        total, parts = self.model.loss(out, links)
        return total, parts, out


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device, step: torch.nn.Module | None = None) -> torch.nn.Module:
    """A :class:`TrainStep` for ``model`` (or the given ``step``, e.g. a mini-batch step that owns
    ``model``), inside DDP when running distributed."""
    model = step if step is not None else TrainStep(model)
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    # static_graph: the same parameters take part in every step, and any that never get a
    # gradient (an unused branch) are handled without find_unused_parameters' per-step graph walk.
    # broadcast_buffers=False: the models hold the dataset's feature matrices as (non-persistent)
    # buffers, identical on every rank; broadcasting them each step would move hundreds of MB.
    # Training-time state (e.g. NoCo's noise scales) changes only in model.after_step() from the
    # full-graph forward pass, which every rank computes identically, so replicas stay equal.
    return DDP(model, device_ids=ids, static_graph=True, broadcast_buffers=False)


def sync_state(model: torch.nn.Module, info: DistInfo) -> None:
    """Make the model's persistent buffers (training-time state such as NoCo's noise scales) equal on every rank.

    Needed when ranks update that state from different rows (mini-batch and loss-rows steps see only their
    share of the batch): floating buffers are averaged, others taken from rank 0. The feature buffers are
    not persistent and are left alone.
    """
    if not info.enabled:
        return
    import torch.distributed as dist

    persistent = set(model.state_dict(keep_vars=True))
    for name, buf in model.named_buffers():
        if name not in persistent:
            continue
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(info.world_size)
        else:
            dist.broadcast(buf, src=0)
