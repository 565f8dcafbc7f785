"""Mini-batch inputs: a subgraph of the entity graph with its feature rows.

A model that supports mini-batch training (``AlignmentModel.supports_minibatch``) is
built once from :func:`placeholder_inputs` (the sizes of the real inputs, no feature
rows), and runs on one :class:`Subgraph` at a time inside ``with model.on(sub):``:
its ``forward()`` then covers the subgraph's ``k`` nodes (local ids ``0..k-1``,
``nodes[i]`` is the global id of local node ``i``) and its ``loss()`` takes links in
local ids. The entity table keeps all ``n`` rows; only the selected rows enter the
computation. Sampling the subgraph is the training layer's job
(``kgalign/training/sampling.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from kgalign.models.inputs import ModelInputs


@dataclass
class Subgraph:
    """A subgraph and the rows it needs.

    Attributes:
        nodes: LongTensor (k,), global entity ids; the batch's entities first.
        edge_index: LongTensor (2, E) in local ids, messages flow ``edge_index[0] -> edge_index[1]``.
        features: ``{modality: FloatTensor (k, d)}``, the nodes' feature rows.
        masks: ``{modality: BoolTensor (k,)}``.
        links: LongTensor (B, 2), the batch's links in local ids (None for inference chunks).
        graph: FloatTensor (k, dim) precomputed structural embeddings that replace the GAT
            (layer-wise inference, or the loss's rows of a GAT output with its gradient), or None.
        seeds: how many leading nodes are the batch's link entities (None: not recorded). A
            sampled subgraph may carry feature rows for these alone (``features[m]`` is then
            ``(seeds, d)``): the structural encoder reads the learned entity table, not features,
            so the other nodes need none when only the seeds' rows run the per-row modules.
    """

    nodes: Tensor
    edge_index: Tensor
    features: dict[str, Tensor] = field(default_factory=dict)
    masks: dict[str, Tensor] = field(default_factory=dict)
    links: Tensor | None = None
    graph: Tensor | None = None
    seeds: int | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.shape[0])

    def to(self, device: torch.device | str) -> Subgraph:
        def move(t):
            return None if t is None else t.to(device, non_blocking=True)

        return Subgraph(
            move(self.nodes),
            move(self.edge_index),
            {m: move(f) for m, f in self.features.items()},
            {m: move(k) for m, k in self.masks.items()},
            move(self.links),
            move(self.graph),
            self.seeds,
        )


def placeholder_inputs(
    num_entities: int,
    feature_dims: dict[str, int],
    masks: dict[str, Tensor] | None = None,
    device: torch.device | str = "cpu",
) -> ModelInputs:
    """:class:`ModelInputs` with the sizes of a dataset but no feature rows, to build a mini-batch model.

    Each feature is a zero-stride ``(n, d)`` view of one zero row (no memory), created on
    ``device`` so that moving the model there copies nothing; ``external=True`` makes the
    model refuse a forward pass outside ``model.on(subgraph)``. ``masks`` (n,) (the real
    ones, small) let the model record which entities have which modality; default all True.
    """
    dev = torch.device(device)
    feats = {m: torch.zeros(1, d, device=dev).expand(num_entities, d) for m, d in feature_dims.items()}
    masks = {m: (masks or {}).get(m, torch.ones(num_entities, dtype=torch.bool)).to(dev) for m in feature_dims}
    return ModelInputs(
        num_entities=num_entities,
        edge_index=torch.zeros((2, 0), dtype=torch.long, device=dev),
        rel_triples=torch.zeros((0, 3), dtype=torch.long, device=dev),
        features=feats,
        masks=masks,
        external=True,
    )
