"""MEAformer (Chen et al., ACM MM 2023) in kgalign's model framework.

Modality embeddings (GAT + per-modality Linear) form M tokens per entity; a
cross-modal attention layer over those tokens gives entity-level modality
weights (the attention each modality receives). The joint embedding is the
weighted concatenation of the *pre-transformer* embeddings; the transformer
outputs are used only in the late loss term, as in the reference code.
Defaults and their sources: docs/models/meaformer.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kgalign.models.base import AlignmentModel, ModelOutput, MultiModalEncoder, modality_means
from kgalign.models.fusion import CrossModalAttentionFusion, weighted_concat
from kgalign.models.inputs import ModelInputs
from kgalign.models.layers import reset_children
from kgalign.models.losses import UncertaintyWeights, icl_loss, joint_and_icl_losses


class MEAformer(AlignmentModel):
    """MEAformer model (registry name ``meaformer``).

    Args (defaults: docs/models/meaformer.md):
        inputs: the dataset's :class:`ModelInputs`.
        hidden: width of every modality embedding (tokens must share it).
        gat_heads, gat_layers, gat_concat, gat_attn_dropout: structural encoder.
        gat_impl, gat_weight, gat_bias, gat_identity_init: its implementation (sparse | pyg), weight layout (full |
            diagonal, the reference codes'), bias and identity start (docs/models/noco.md, "Learning per step").
        fusion_heads, fusion_layers, fusion_dropout, fusion_ffn: the cross-modal
            attention (``fusion_ffn`` 0 = no FFN block, the FB-dataset setting).
        tau, alpha: ICL temperature and direction mix.
        l2_inputs: modalities whose raw features are L2-normalised first.
        joint_from_blocks: the joint term's logits assembled from the per-modality ICL terms' similarity
            blocks (:func:`~kgalign.models.losses.joint_and_modality_log_probs`; same values and gradients;
            cheaper in fp32, not shown in bf16: docs/benchmarks.md); False computes them from the joint embedding.

    ``forward()``: ``{m: (n, hidden)}`` (pre-transformer), ``"joint"`` (n, M*hidden);
    ``out.aux``: ``hidden`` (n, M, hidden) transformer outputs, ``weights`` (n, M).
    """

    supports_minibatch = True  # per-row fusion after the encoder: trains on sampled subgraphs (models/subgraph.py)

    def __init__(
        self,
        inputs: ModelInputs,
        hidden: int = 300,
        gat_heads: int = 2,
        gat_layers: int = 2,
        gat_concat: bool = True,
        gat_attn_dropout: float = 0.0,
        gat_impl: str = "sparse",
        gat_weight: str = "full",
        gat_bias: bool = False,
        gat_identity_init: bool = True,
        fusion_heads: int = 1,
        fusion_layers: int = 1,
        fusion_dropout: float = 0.1,
        fusion_ffn: int = 0,
        tau: float = 0.1,
        alpha: float = 0.5,
        l2_inputs: tuple = ("image",),
        joint_from_blocks: bool = True,
    ):
        super().__init__(inputs)
        feats = self.features()
        self.encoder = MultiModalEncoder(
            self.num_entities,
            {m: f.shape[1] for m, f in feats.items()},
            hidden,
            {m: hidden for m in feats},
            heads=gat_heads,
            layers=gat_layers,
            concat=gat_concat,
            attn_dropout=gat_attn_dropout,
            gat_impl=gat_impl,
            gat_weight=gat_weight,
            gat_bias=gat_bias,
            gat_identity_init=gat_identity_init,
            l2_inputs=tuple(l2_inputs),
        )
        self.names = self.encoder.names
        self.fusion = CrossModalAttentionFusion(hidden, fusion_heads, fusion_layers, fusion_dropout, fusion_ffn)
        self.loss_weights = UncertaintyWeights(self.names)
        self.register_buffer("modality_mask", self.mask_matrix(self.names), persistent=False)
        self.tau, self.alpha = tau, alpha
        self.joint_from_blocks = joint_from_blocks
        self.to(self.edge_index.device)  # parameters follow the inputs' device

    def reset_parameters(self) -> None:
        reset_children(self)

    @torch.no_grad()
    def step_metrics(self, out: ModelOutput) -> dict[str, float]:
        return modality_means(self.names, self.modality_mask, weight=out.aux["weights"])

    def forward(self) -> ModelOutput:
        enc = self.encoder(self.features(), self.masks(), self.edge_index)
        embs = [enc[m] for m in self.names]
        hidden, weights = self.fusion(torch.stack(embs, 1), self.modality_mask)
        out = ModelOutput({m: enc[m] for m in self.names}, aux={"hidden": hidden, "weights": weights})
        out["joint"] = weighted_concat(embs, weights)
        return out

    def loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, dict[str, float]]:
        """``ICL(joint) + sum_m K(ICL(x_m)) + sum_m K(ICL(H_m))`` with shared Kendall weights.

        Returns the total and ``{"joint", "icl", "licl"}`` (GMI, ECIA, IIR in MEAformer's terms).
        """
        l_joint, icl = joint_and_icl_losses(
            {m: out[m] for m in self.names},
            out["joint"],
            out.aux["weights"],
            links,
            {m: self.present(m) for m in self.names},
            self.tau,
            self.alpha,
            self.joint_from_blocks,
        )
        hidden = out.aux["hidden"]
        licl = {m: icl_loss(hidden[:, i], links, self.tau, self.alpha, self.present(m)) for i, m in enumerate(self.names)}
        l_icl, l_licl = self.loss_weights(icl), self.loss_weights(licl)
        total = l_joint + l_icl + l_licl
        return total, {"joint": float(l_joint.detach()), "icl": float(l_icl.detach()), "licl": float(l_licl.detach())}
