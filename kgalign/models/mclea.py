"""MCLEA (Lin et al., COLING 2022) in kgalign's model framework.

Per-modality encoders (GAT for structure, Linear for the feature modalities),
global learnable modality weights, and the intra-modal contrastive loss (ICL)
plus the inter-modal alignment loss (IAL: KL distillation from the joint
embedding into each modality). Defaults and their sources: docs/models/mclea.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kgalign.models.base import AlignmentModel, ModelOutput, MultiModalEncoder, modality_means
from kgalign.models.fusion import GlobalWeightFusion, weighted_concat
from kgalign.models.inputs import ModelInputs
from kgalign.models.layers import reset_children
from kgalign.models.losses import UncertaintyWeights, ial_loss, joint_and_icl_losses, teacher_logits


class MCLEA(AlignmentModel):
    """MCLEA model (registry name ``mclea``).

    Args (defaults: docs/models/mclea.md):
        inputs: the dataset's :class:`ModelInputs`.
        hidden: width of the entity table and GAT output.
        feature_dim: width of every feature-modality embedding (MCLEA: 100).
        gat_heads, gat_layers, gat_concat, gat_attn_dropout: structural encoder.
        gat_impl, gat_weight, gat_bias, gat_identity_init: its implementation (sparse | pyg), weight layout (full |
            diagonal, the reference codes'), bias and identity start (docs/models/noco.md, "Learning per step").
        tau: ICL temperature; tau2: IAL temperature; alpha: direction mix.
        ial_weight: factor on the Kendall-weighted IAL sum (MCLEA's zoom^2 = 0.01).
        l2_inputs: modalities whose raw features are L2-normalised first.
        joint_from_blocks: the joint term's logits assembled from the per-modality ICL terms' similarity
            blocks (:func:`~kgalign.models.losses.joint_and_modality_log_probs`; same values and gradients;
            cheaper in fp32, not shown in bf16: docs/benchmarks.md); False computes them from the joint embedding.

    ``forward()``: ``{"graph": (n, hidden), m: (n, feature_dim), "joint": (n, hidden + (M-1)*feature_dim)}``;
    ``out.aux["weights"]`` (n, M).
    """

    supports_minibatch = True  # per-row fusion after the encoder: trains on sampled subgraphs (models/subgraph.py)

    def __init__(
        self,
        inputs: ModelInputs,
        hidden: int = 300,
        feature_dim: int = 100,
        gat_heads: int = 2,
        gat_layers: int = 2,
        gat_concat: bool = True,
        gat_attn_dropout: float = 0.0,
        gat_impl: str = "sparse",
        gat_weight: str = "full",
        gat_bias: bool = False,
        gat_identity_init: bool = True,
        tau: float = 0.1,
        tau2: float = 4.0,
        alpha: float = 0.5,
        ial_weight: float = 0.01,
        l2_inputs: tuple = ("image",),
        joint_from_blocks: bool = True,
    ):
        super().__init__(inputs)
        feats = self.features()
        self.encoder = MultiModalEncoder(
            self.num_entities,
            {m: f.shape[1] for m, f in feats.items()},
            hidden,
            {m: feature_dim for m in feats},
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
        self.fusion = GlobalWeightFusion(len(self.names))
        self.icl_weights = UncertaintyWeights(self.names)
        self.ial_weights = UncertaintyWeights(self.names)
        self.register_buffer("modality_mask", self.mask_matrix(self.names), persistent=False)
        self.tau, self.tau2, self.alpha, self.ial_weight = tau, tau2, alpha, ial_weight
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
        weights = self.fusion(self.modality_mask)
        out = ModelOutput({m: enc[m] for m in self.names}, aux={"weights": weights})
        out["joint"] = weighted_concat(embs, weights)
        return out

    def loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, dict[str, float]]:
        """``ICL(joint) + sum_m K(ICL(x_m)) + ial_weight * sum_m K'(IAL(x_m, joint))``.

        Returns the total and ``{"joint", "icl", "ial"}``.
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
        teacher = teacher_logits(out["joint"], links, self.tau2)  # once for every modality's IAL
        ial = {m: ial_loss(out[m], None, links, self.tau2, self.alpha, self.present(m), teacher) for m in self.names}
        l_icl, l_ial = self.icl_weights(icl), self.ial_weights(ial)
        total = l_joint + l_icl + self.ial_weight * l_ial
        return total, {"joint": float(l_joint.detach()), "icl": float(l_icl.detach()), "ial": float(l_ial.detach())}
