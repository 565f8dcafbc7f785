"""Mini-batch training and layer-wise embedding: memory set by the batch, not the graph.

- :class:`MiniBatchStep` is the training step (``forward(links) -> (total, parts, out)``,
  as :class:`~kgalign.training.distributed.TrainStep`): it samples the batch's subgraph
  (kgalign/training/sampling.py), runs the GAT over it, then the per-row rest of the
  model (projections, fusion, NoCo's noise and confidence networks) on the batch's link
  entities alone, whose feature rows are the only ones gathered (``rows_only``, the
  default, ``train.loss_rows_only``); ``rows_only=False`` runs the whole unchanged model
  on every subgraph node inside ``model.on(sub)``. Its sampler draws from
  ``numpy.random.default_rng([seed, rank, draw])``: the draw counter is the whole
  sampler state (checkpointed by :class:`SamplerState`), so a resumed run samples
  exactly what an uninterrupted one would.
- :func:`embed_layerwise` computes every entity's joint embedding exactly, one GAT layer
  at a time over chunks of target entities (two ``(n, dim)`` activations at most), then
  the per-row rest of the model over chunks of entities.
- :func:`decide` is the documented rule full graph vs mini-batch (docs/training.md).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.nn.functional as F

from kgalign.models.subgraph import Subgraph
from kgalign.training.loop import Callback
from kgalign.training.sampling import Adjacency, FeatureSource, batch_subgraph

log = logging.getLogger("kgalign.training")

GIB = 1024**3


class MiniBatchStep(torch.nn.Module):
    """One training step on the sampled subgraph of a batch of links.

    Args:
        model: an ``AlignmentModel`` with ``supports_minibatch`` (built from placeholder inputs).
        adjacency: the entity graph; source: the feature rows.
        fanouts: neighbours per hop, one per GAT layer (-1 = all).
        seed, rank: the sampler's stream (each rank samples its own share of the batch).
        device: where the subgraph goes.
        rows_only: run the per-row modules on the batch's link entities only (the loss reads
            nothing else): same loss and gradients as ``False`` for row-wise models; the random
            draws (dropout, NoCo's noise) and NoCo's noise-scale statistic (a mean over the rows
            computed) differ. ``out`` then covers those rows, ``out.subgraph`` holds them.
    """

    def __init__(
        self,
        model,
        adjacency: Adjacency,
        source: FeatureSource,
        fanouts: list[int],
        seed: int,
        rank: int,
        device: torch.device,
        rows_only: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.adjacency, self.source, self.fanouts = adjacency, source, list(fanouts)
        self.seed, self.rank, self.device = int(seed), int(rank), device
        self.rows_only = bool(rows_only)
        self.draws = 0  # subgraphs sampled so far: the sampler's state

    def sample(self, links: torch.Tensor) -> Subgraph:
        rng = np.random.default_rng([self.seed, self.rank, self.draws])
        self.draws += 1
        sub = batch_subgraph(self.adjacency, self.source, links.cpu().numpy(), self.fanouts, rng, seed_features=self.rows_only)
        return sub.to(self.device)

    def forward(self, links: torch.Tensor):
        sub = self.sample(links)
        if self.rows_only:
            sub = seed_rows(sub, subgraph_structure(self.model, sub))
        with self.model.on(sub):
            out = self.model()
            total, parts = self.model.loss(out, sub.links)
        out.subgraph = sub  # the loop runs after_step/step_metrics on it (kgalign/training/loop.py)
        return total, parts, out


def subgraph_structure(model, sub: Subgraph) -> torch.Tensor:
    """The structural encoder (GAT) over a sampled subgraph: (k, dim) rows for ``sub.nodes``, with
    their gradient, exactly as ``model()`` inside ``model.on(sub)`` computes them (the GAT's input
    is the learned entity table's rows, so the subgraph's feature rows are not read)."""
    enc = model.graph_encoder()
    enc.rows = sub.nodes
    try:
        return enc(sub.edge_index)
    finally:
        enc.rows = None


def seed_rows(sub: Subgraph, structure: torch.Tensor) -> Subgraph:
    """The subgraph of ``sub``'s seeds alone (no edges) with ``structure``'s rows for them as the
    precomputed ``graph``; the links keep their local ids (the seeds come first)."""
    s = int(sub.seeds)
    return Subgraph(
        nodes=sub.nodes[:s],
        edge_index=sub.edge_index.new_zeros((2, 0)),
        features={m: f[:s] for m, f in sub.features.items()},
        masks={m: k[:s] for m, k in sub.masks.items()},
        links=sub.links,
        graph=structure[:s],
        seeds=s,
    )


class SamplerState(Callback):
    """Checkpoints the sampler's draw counter (``cb.sampler`` in ``last.json``)."""

    key = "sampler"

    def __init__(self, step: MiniBatchStep) -> None:
        self.step = step

    def state_dict(self):
        return {}, {"draws": self.step.draws, "fanouts": self.step.fanouts}

    def load_state_dict(self, tensors, meta) -> None:
        self.step.draws = int(meta["draws"])


def _chunk_edges(adjacency: Adjacency, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets a..b-1 with all their incoming edges: (nodes, local (2, E) edges, local ids of the targets)."""
    targets = np.arange(a, b, dtype=np.int64)
    src, dst = adjacency.in_edges(targets, -1, None)
    nodes = np.unique(np.concatenate([targets, src]))
    edges = np.stack([np.searchsorted(nodes, src), np.searchsorted(nodes, dst)])
    return nodes, edges, np.searchsorted(nodes, targets)


@torch.no_grad()
def embed_layerwise(model, adjacency: Adjacency, source: FeatureSource, chunk: int = 65536, out: np.ndarray | None = None) -> torch.Tensor:
    """All entities' L2-normalised joint embeddings (n, D) float32, as ``model.embed()`` computes them.

    Layer by layer, each over chunks of ``chunk`` target entities with all their incoming
    edges (exact: no sampling), so at most two ``(n, dim)`` activations exist besides the
    entity table; then the rest of the model (projections, fusion) over chunks of rows.
    ``out``: an optional (n, D) float16/float32 array (e.g. a ``np.memmap``) to fill; the
    result then shares it when it is float32.
    """
    enc = model.graph_encoder()
    n = model.num_entities
    device = enc.entity.device
    was_training = model.training
    model.eval()
    try:
        x = enc.entity.detach()
        for i in range(len(enc.convs)):
            nxt = None
            for a in range(0, n, chunk):
                nodes, edges, tgt = _chunk_edges(adjacency, a, min(n, a + chunk))
                y = enc.layer(i, x[torch.from_numpy(nodes).to(device)], torch.from_numpy(edges).to(device))
                if nxt is None:
                    nxt = torch.empty((n, y.shape[1]), dtype=y.dtype, device=device)
                nxt[a : a + len(tgt)] = y[torch.from_numpy(tgt).to(device)]
            x = nxt
        result = None
        for a in range(0, n, chunk):
            rows = np.arange(a, min(n, a + chunk), dtype=np.int64)
            feats, masks = source.gather(rows)
            ids = torch.from_numpy(rows)
            sub = Subgraph(ids, torch.zeros((2, 0), dtype=torch.long), feats, masks, None, x[ids.to(device)]).to(device)
            with model.on(sub):
                joint = F.normalize(model()["joint"].float(), dim=-1).cpu()
            if result is None:
                if out is None:
                    out = np.empty((n, joint.shape[1]), dtype=np.float32)
                result = out
            result[a : a + len(rows)] = joint.numpy().astype(result.dtype, copy=False)
    finally:
        model.train(was_training)
    return torch.from_numpy(np.asarray(result, dtype=np.float32))


# ---------------------------------------------------------------- the rule full graph vs mini-batch
def full_graph_bytes(num_entities: int, num_edges: int, feature_dims: dict[str, int], hidden: int, heads: int, layers: int) -> int:
    """Estimated peak bytes of one full-graph training step (float32), the rule's left side.

    ``n * sum(d_m) * 4`` (feature rows) ``+ 16 n h`` (entity table, its gradient and two
    AdamW moments) ``+ layers * (24 heads (E + n) + 24 n h)`` (per GAT layer: attention
    scores, softmax, dropout mask and their gradients over the edges with self loops;
    projected and aggregated rows and their gradients) ``+ 32 n h M`` (per-modality
    embeddings, augmentation, fusion and the joint embedding, forward and backward; M =
    modalities + graph). An order-of-magnitude rule: it counts float32 tensors, not the
    allocator's overhead or the optimizer's temporaries (docs/benchmarks.md compares it with
    measured peaks where available).
    """
    n, h, m = int(num_entities), int(hidden), len(feature_dims) + 1
    feats = n * sum(feature_dims.values()) * 4
    table = 16 * n * h
    gat = layers * (24 * heads * (num_edges + n) + 24 * n * h)
    rest = 32 * n * h * m
    return feats + table + gat + rest


def memory_budget(device: torch.device, budget_gib: float | None) -> int:
    """The rule's right side: ``budget_gib`` when given, else 80 % of a GPU's memory or half of the physical RAM."""
    if budget_gib is not None:
        return int(float(budget_gib) * GIB)
    if device.type == "cuda":
        return int(0.8 * torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf: assume 8 GiB
        return 4 * GIB


def decide(setting, estimate: int, budget: int, supported: bool, model_name: str) -> bool:
    """``train.minibatch``: true / false as given; ``auto``: mini-batch when the full-graph
    estimate exceeds the budget and the model supports it."""
    if setting is True:
        if not supported:
            from kgalign.errors import InputError

            raise InputError(
                f"train.minibatch=true, but model {model_name!r} does not support mini-batch training "
                "(its forward pass needs the whole graph); use train.minibatch=false or a model such as noco, meaformer or mclea"
            )
        return True
    if setting is False:
        return False
    if estimate <= budget:
        return False
    if not supported:
        log.warning(
            "the full-graph step needs about %.1f GiB (budget %.1f GiB), but %s cannot train mini-batch; training full-graph",
            estimate / GIB,
            budget / GIB,
            model_name,
        )
        return False
    return True


def fanouts_for(fanout, layers: int) -> list[int]:
    """``train.fanout`` (an int or a list) as one fan-out per GAT layer (a short list repeats its last value)."""
    values = [int(fanout)] if isinstance(fanout, int) else [int(v) for v in fanout]
    return (values + [values[-1]] * layers)[:layers]
