"""NoCo: noise-augmented multi-modal entity alignment with confidence-based dynamic fusion.

Luo et al., Sci China Inf Sci 2026, 69(7): 172105. Implemented from the paper
(Sec. 3.2-3.4); every choice and every departure from the paper or its public
code is listed in docs/models/noco.md.

Pipeline (n entities, M modalities, d = ``hidden``)::

    h_m  = encoder_m(inputs)                    (n, d)   GAT for "graph", Linear otherwise
    h~_m = NoiseAugment_m(h_m)                  (n, d)   noise only in training
    w~   = ConfidenceFusion(h~_1..M, mask)      (n, M)
    joint = concat_m(w~_m * h~_m / ||h~_m||)     (n, M*d)
    L = L_joint + L_icl + L_licl (+ conf_loss_weight * L_conf)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from kgalign.errors import InputError
from kgalign.models.base import AlignmentModel, ModelOutput, MultiModalEncoder, modality_means
from kgalign.models.fusion import ConfidenceFusion, weighted_concat
from kgalign.models.inputs import ModelInputs
from kgalign.models.layers import reset_children
from kgalign.models.losses import UncertaintyWeights, joint_and_modality_log_probs, pair_log_probs
from kgalign.models.noise import ModalityNoiseAugment

_P_MIN = 1e-6


def _lean_log_probs(emb: Tensor, links: Tensor, tau: float, present: Tensor | None):
    """:func:`pair_log_probs` that keeps none of its (B, B) similarity blocks for
    backward but recomputes them (about 80 MB less per term at B = 2,570; NoCo
    has ten per-modality terms). Same values and gradients; used with ``icl_recompute=True``."""
    if not (torch.is_grad_enabled() and emb.requires_grad):
        return pair_log_probs(emb, links, tau, present)
    return checkpoint(pair_log_probs, emb, links, tau, present, use_reentrant=False)


class NoCo(AlignmentModel):
    """NoCo model (registry name ``noco``).

    Args (defaults: docs/models/noco.md):
        inputs: the dataset's :class:`ModelInputs`.
        hidden: width of every modality embedding.
        gat_heads, gat_layers, gat_concat, gat_attn_dropout: structural encoder.
        gat_impl, gat_weight, gat_bias, gat_identity_init: its implementation (sparse | pyg), weight layout (full |
            diagonal, the reference codes'), bias and identity start (docs/models/noco.md, "Learning per step").
        tau, alpha: ICL temperature and direction mix.
        noise: False disables the noise (ablation "w/o NA"); the maps stay.
        noise_modalities: modalities to augment; None means every feature modality, not the graph
            (augmenting the structural embedding stalls early learning: docs/models/noco.md).
        noise_size, noise_steps, noise_mlp_layers, noise_target_cos, noise_rate:
            :class:`~kgalign.models.noise.ModalityNoiseAugment` settings.
        uni_conf_hidden, global_conf_hidden, calib_eps: :class:`ConfidenceFusion`.
        calib_on_unit: distribution uniformity (Eq. 8-9) on L2-normalised embeddings.
        conf_loss_weight: weight of the confidence regression loss (0 disables it).
        icl_weighting: ``"sum"`` (paper Eq. 16-17) or ``"kendall"`` (public code).
        l2_inputs: modalities whose raw features are L2-normalised first.
        joint_from_blocks: the joint term's logits assembled from the LICL terms' per-modality similarity
            blocks (:func:`~kgalign.models.losses.joint_and_modality_log_probs`; same values and gradients;
            cheaper in fp32, not shown in bf16: docs/benchmarks.md); False computes them from the joint embedding.
        icl_recompute: recompute the per-modality terms' (B, B) blocks in backward instead of keeping them
            (less memory, about +25 % loss FLOPs; with ``joint_from_blocks`` only the ICL terms on ``h_m``).

    ``forward()`` returns the augmented embeddings ``h~_m`` per modality and the
    joint embedding; ``out.aux`` holds ``clean`` (dict of ``h_m``) and the fusion
    tensors ``weights``, ``uni_conf``, ``global_conf`` (n, M).
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
        tau: float = 0.1,
        alpha: float = 0.5,
        noise: bool = True,
        noise_modalities: list[str] | None = None,
        noise_size: int = 256,
        noise_steps: int = 1,
        noise_mlp_layers: int = 2,
        noise_target_cos: float = 0.9,
        noise_rate: float = 1.0,
        uni_conf_hidden: int = 150,
        global_conf_hidden: int = 32,
        calib_eps: float = 1e-3,
        calib_on_unit: bool = True,
        conf_loss_weight: float = 0.1,
        icl_weighting: str = "sum",
        l2_inputs: tuple = ("image",),
        joint_from_blocks: bool = True,
        icl_recompute: bool = False,
    ):
        super().__init__(inputs)
        if icl_weighting not in ("sum", "kendall"):
            raise InputError(f"noco: icl_weighting must be 'sum' or 'kendall', got {icl_weighting!r}")
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
        unknown = sorted(set(noise_modalities or ()) - set(self.names))
        if unknown:
            raise InputError(f"noco: noise_modalities {unknown} are not among this dataset's modalities {self.names}")
        aug = [m for m in self.names if m != "graph"] if noise_modalities is None else [m for m in self.names if m in set(noise_modalities)]
        self.noise = ModalityNoiseAugment(
            aug,
            hidden,
            noise_size=noise_size,
            steps=noise_steps,
            mlp_layers=noise_mlp_layers,
            target_cos=noise_target_cos,
            rate=noise_rate,
            enabled=noise,
        )
        self.fusion = ConfidenceFusion([hidden] * len(self.names), uni_conf_hidden, global_conf_hidden, calib_eps, du_on_unit=calib_on_unit)
        self.register_buffer("modality_mask", self.mask_matrix(self.names), persistent=False)
        self.tau, self.alpha = tau, alpha
        self.conf_loss_weight = conf_loss_weight
        self.icl_weighting = icl_weighting
        self.joint_from_blocks, self.icl_recompute = joint_from_blocks, icl_recompute
        self.loss_weights = UncertaintyWeights(self.names) if icl_weighting == "kendall" else None
        self.to(self.edge_index.device)  # parameters follow the inputs' device

    def reset_parameters(self) -> None:
        reset_children(self)

    def after_step(self, out: ModelOutput) -> None:
        if "noise_state" in out.aux:
            self.noise.update_state(out.aux["noise_state"])

    @torch.no_grad()
    def step_metrics(self, out: ModelOutput) -> dict[str, float]:
        metrics = modality_means(self.names, self.modality_mask, weight=out.aux["weights"], confidence=out.aux["uni_conf"])
        scales = (out.aux["noise_state"]["scale"] if "noise_state" in out.aux else self.noise.scale).tolist()
        metrics.update({f"noise.{m}": scales[i] for i, m in enumerate(self.noise.names)})
        return metrics

    def forward(self) -> ModelOutput:
        clean = self.encoder(self.features(), self.masks(), self.edge_index)
        aug, noise_state = self.noise(clean, {m: self.present(m) for m in self.names})
        # Keep absent modalities at zero after the augmentation (noise, bias terms).
        embs = [aug[m] * self.modality_mask[:, i : i + 1].to(aug[m].dtype) for i, m in enumerate(self.names)]
        fused = self.fusion(embs, self.modality_mask)
        out = ModelOutput(dict(zip(self.names, embs, strict=False)), aux={"clean": clean, **fused})
        if noise_state is not None:
            out.aux["noise_state"] = noise_state
        out["joint"] = weighted_concat(embs, fused["weights"])
        return out

    def _modality_sum(self, losses: dict[str, Tensor]) -> Tensor:
        if self.loss_weights is not None:
            return self.loss_weights(losses)
        return torch.stack(list(losses.values())).sum()

    def loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, dict[str, float]]:
        """``L = L_joint + L_icl + L_licl + conf_loss_weight * L_conf``.

        Args:
            out: this model's ``forward()`` result.
            links: LongTensor (B, 2) of global ids (KG1, KG2).
        Returns:
            total loss (scalar) and ``{"joint", "icl", "licl", "conf"}`` as floats.
        """
        a = self.alpha
        log_probs = _lean_log_probs if self.icl_recompute else pair_log_probs
        presents = [self.present(m) for m in self.names]
        if self.joint_from_blocks:
            lp, licl_lps = joint_and_modality_log_probs([out[m] for m in self.names], out.aux["weights"], links, self.tau, presents)
        else:
            lp = pair_log_probs(out["joint"], links, self.tau)
            licl_lps = [log_probs(out[m], links, self.tau, p) for m, p in zip(self.names, presents, strict=True)]
        l_joint = -(a * lp[0] + (1 - a) * lp[1]).mean()
        icl, licl, probs = {}, {}, {}
        for m, present, (ab, ba, valid) in zip(self.names, presents, licl_lps, strict=True):
            licl[m] = -(a * ab + (1 - a) * ba).sum() / valid.sum().clamp(min=1)
            probs[m] = (ab.detach().exp(), ba.detach().exp(), valid)
            c_ab, c_ba, c_valid = log_probs(out.aux["clean"][m], links, self.tau, present)
            icl[m] = -(a * c_ab + (1 - a) * c_ba).sum() / c_valid.sum().clamp(min=1)
        l_icl, l_licl = self._modality_sum(icl), self._modality_sum(licl)
        total = l_joint + l_icl + l_licl
        parts = {"joint": float(l_joint.detach()), "icl": float(l_icl.detach()), "licl": float(l_licl.detach())}
        if self.conf_loss_weight > 0:
            l_conf = self.confidence_loss(out, links, probs)
            total = total + self.conf_loss_weight * l_conf
            parts["conf"] = float(l_conf.detach())
        return total, parts

    def confidence_loss(self, out: ModelOutput, links: Tensor, probs: dict[str, tuple[Tensor, Tensor, Tensor]]) -> Tensor:
        """Train the confidence networks as PDF does (L1 regression onto targets).

        Uni-Conf_m(e) regresses onto the probability that modality m gives the
        true counterpart of e (Eq. 14 on h~_m, detached). Global-Conf_m regresses
        onto PDF's holo-confidence of those probabilities,
        ``sum_{j != m} log p_j / sum_j log p_j`` over the modalities e has.
        Inputs are detached: these targets train only the confidence networks.
        """
        ents = torch.cat([links[:, 0], links[:, 1]])
        target = torch.stack([torch.cat([probs[m][0], probs[m][1]]) for m in self.names], 1)  # (2B, M)
        valid_pair = torch.stack([torch.cat([probs[m][2], probs[m][2]]) for m in self.names], 1)
        mask = self.modality_mask[ents] & valid_pair
        emb = [out[m][ents].detach() for m in self.names]
        uni = torch.cat([torch.sigmoid(net(x).float()) for net, x in zip(self.fusion.uni, emb, strict=False)], -1)
        glob = torch.sigmoid(self.fusion.glob((uni * mask).detach().to(emb[0].dtype)).float())
        logs = torch.log(target.clamp(_P_MIN, 1 - _P_MIN)) * mask
        total = logs.sum(-1, keepdim=True)
        holo = (total - logs) / total.clamp(max=-_P_MIN)
        maskf = mask.float()
        denom = maskf.sum().clamp(min=1)
        return ((uni - target).abs() * maskf).sum() / denom + ((glob - holo).abs() * maskf).sum() / denom

    def noise_scales(self) -> dict[str, float]:
        """Current eps_m per augmented modality (for logging)."""
        return self.noise.noise_scales()
