"""The full-graph training step with the per-row part of the model on the loss's rows only.

A step's loss reads the embeddings of the batch's link ends (2 x batch rows), but
``model()`` computes every per-entity module (feature projections, fusion attention,
noise and confidence networks) for all n entities. :class:`RowStep` runs the structural
encoder (GAT) over the whole graph as before, then the rest of the model on the batch's
rows alone, through the same ``model.on(subgraph)`` mechanism as mini-batch training
(kgalign/models/subgraph.py): the subgraph's nodes are the batch's entities and its
precomputed structural rows are the full-graph GAT's output, which keeps its gradient.

Same mathematics for row-wise models: the loss and its gradients equal the all-rows
step's (tests/test_training_rowstep.py); what differs is what is computed for rows the
loss never reads, and therefore the random draws (dropout masks, NoCo's noise) and NoCo's
noise-scale statistic, which becomes the mean over the batch's rows instead of all rows.
``train.loss_rows_only: false`` restores the all-rows step.
"""

from __future__ import annotations

import torch

from kgalign.models.subgraph import Subgraph


class RowStep(torch.nn.Module):
    """``forward(links (B, 2) global ids) -> (total, parts, out)``, ``out`` covering the batch's rows.

    ``out.subgraph`` carries the rows, so the loop runs ``after_step``/``step_metrics`` on them.
    """

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, links: torch.Tensor):
        model = self.model
        if getattr(model, "supports_row_step", False):  # a model with its own row step (MPSEA: no GraphEncoder)
            return model.rows_step(links)
        graph = model.graph_encoder()(model.edge_index)  # (n, dim), the whole graph, with its gradient
        rows, inverse = torch.unique(links.reshape(-1), return_inverse=True)
        feats, masks = model.features(), model.masks()
        sub = Subgraph(
            nodes=rows,
            edge_index=links.new_zeros((2, 0)),
            features={m: feats[m][rows] for m in model.feature_names},
            masks={m: masks[m][rows] for m in model.feature_names},
            links=inverse.view(-1, 2),
            graph=graph[rows],
        )
        with model.on(sub):
            out = model()
            total, parts = model.loss(out, sub.links)
        out.subgraph = sub
        return total, parts, out
