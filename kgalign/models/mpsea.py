"""MPSEA: multi-modal pre-synergistic fusion with mutual-information policy optimisation.

Li, Chen, Tan et al., CMC 2025, 85(2): 4133-4153. The paper's equations,
Algorithm 1 and tables are lost; every component is reconstructed from its
prose, and every choice made where the paper is silent (with the analogue
followed) is in docs/models/mpsea.md. Each component has a switch, so the
paper's ablations (Tables 5-6) run.

Pipeline (n entities, modalities m, d = ``hidden``)::

    x_graph = MultiWeightGAT()  | GAT              (n, d)   switch multi_weight_gat
    x_m     = Linear(feature_m) | DNEF(numeric)    (n, d)
    h_graph, s_graph = GraphStructureTransformer([x_graph, x_m...])
    h_m, s_m = MMPF([x_m...], prefixes from h_graph and x_image)   switches mmpf, mmpf_gph, mmpf_img,
                                                                    image FFN: outlook, outlook_conv
    w = softmax_m(s)                               (n, M)   cross-modal weights
    state = [J(base_level) || MI(J, x)]; a ~ pi(state)       CPRL (switch cprl)
    joint = concat_m(w_m * norm((1 - lam_a) x_m + lam_a h_m))
    L = ICL(joint) + sum_m K(ICL(x_m)) + sum_m K(ICL(h_m)) + L_policy + L_MI
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kgalign.errors import InputError
from kgalign.models.base import AlignmentModel, ModelOutput
from kgalign.models.fusion import masked_softmax, weighted_concat
from kgalign.models.inputs import ModelInputs, NumericFacts
from kgalign.models.layers import FeatureProjection, GraphEncoder
from kgalign.models.losses import UncertaintyWeights, icl_loss
from kgalign.models.mi import MutualInformationEstimator, rms_scaled
from kgalign.models.mmpf import GraphStructureTransformer, PreSynergisticFusion
from kgalign.models.numeric_encoder import DNEF
from kgalign.models.outlook import ImageFFN
from kgalign.models.policy import FusionPolicy, cprl_reward, reinforce_loss
from kgalign.models.relational_gat import MultiWeightGAT


class MPSEA(AlignmentModel):
    """MPSEA model (registry name ``mpsea``).

    Args (defaults and their reasons: docs/models/mpsea.md):
        inputs: the dataset's :class:`ModelInputs` (reads ``relation_edges`` and ``numeric``).
        hidden: width of every modality embedding (paper: 300).
        gat_heads, gat_layers, gat_concat, gat_attn_dropout: structural encoder (paper: 2 heads, 2 layers).
        multi_weight_gat: multi-weight GAT (True) or a plain GAT ("repl.GAT").
        gat_bands: cardinality bands per relation direction (relation groups = 2 * bands).
        gat_identity_init, gat_bias: the structural layers start at the identity, without a bias
            (as NoCo/MEAformer/MCLEA; docs/models/mpsea.md "Structural start").
        structure: use the graph-structure modality at all ("w/o structure").
        dnef: encode numbers with DNEF (True) or a Linear map of the dense numeric matrix.
        dnef_kernels: radial basis functions per numeric attribute.
        dnef_chunk: numeric facts per chunk whose activations DNEF recomputes in backward
            instead of keeping (0: keep all; less memory, a little more time, same results).
        fusion_heads, fusion_ffn, fusion_dropout: the two fusion transformers (paper: 5 heads).
        fusion_checkpoint: recompute the fusion layers in backward instead of keeping their
            activations (less memory, more time; the results are the same).
        fusion_input_norm: L2-normalise every token before the fusion transformers, so a
            modality's voice does not depend on its encoder's scale.
        unit_mix: mix the unit-length unfused and fused embeddings in the joint, so the level is
            a share of directions rather than of raw scales.
        mmpf: pre-synergistic injection at all ("w/o MMPF"); mmpf_gph / mmpf_img: its
            graph / visual key-value prefix ("w/o MMPF-gph", "w/o MMPF-img").
        outlook, outlook_conv: Outlook attention / convolution module in the image
            FFN ("w/o OA"; "w/o OC" switches both off).
        outlook_grid, outlook_kernel: patches the image token is read as, OA window.
        cprl: the policy and MI estimator ("w/o CPRL": the fixed ``base_level``).
        fusion_levels: the policy's actions, the share of the fused token in the joint embedding.
        base_level: the level of the policy's state and of the model without CPRL.
        reward_threshold, mi_weight: the paper's two sensitivity parameters.
        reward_bonus, reward_penalty: added above / subtracted below the threshold.
        entropy_weight: policy entropy bonus; policy_hidden, mi_hidden: network widths;
        mi_negatives: entities the MI score of the state is contrasted with.
        tau, alpha: ICL temperature and direction mix.
        l2_inputs: modalities whose raw features are L2-normalised first.
    """

    # Full-graph training runs the per-row modules on the loss's rows (``rows_step``, train.loss_rows_only).
    supports_row_step = True

    def __init__(
        self,
        inputs: ModelInputs,
        hidden: int = 300,
        gat_heads: int = 2,
        gat_layers: int = 2,
        gat_concat: bool = True,
        gat_attn_dropout: float = 0.0,
        multi_weight_gat: bool = True,
        gat_bands: int = 1,
        gat_identity_init: bool = True,
        gat_bias: bool = False,
        structure: bool = True,
        dnef: bool = True,
        dnef_kernels: int = 32,
        dnef_chunk: int = 0,
        fusion_heads: int = 5,
        fusion_ffn: int = 300,
        fusion_dropout: float = 0.1,
        fusion_checkpoint: bool = False,
        fusion_input_norm: bool = True,
        unit_mix: bool = True,
        mmpf: bool = True,
        mmpf_gph: bool = True,
        mmpf_img: bool = True,
        outlook: bool = True,
        outlook_conv: bool = True,
        outlook_grid: int = 20,
        outlook_kernel: int = 3,
        cprl: bool = True,
        fusion_levels: tuple = (0.0, 0.5, 1.0),
        base_level: float = 0.5,
        reward_threshold: float = 0.5,
        mi_weight: float = 0.1,
        reward_bonus: float = 0.5,
        reward_penalty: float = 0.5,
        entropy_weight: float = 0.01,
        policy_hidden: int = 64,
        mi_hidden: int = 64,
        mi_negatives: int = 256,
        tau: float = 0.1,
        alpha: float = 0.5,
        l2_inputs: tuple = ("image",),
    ):
        super().__init__(inputs)
        if hidden % fusion_heads:
            raise InputError(f"mpsea: hidden {hidden} must be divisible by fusion_heads {fusion_heads}")
        if (outlook or outlook_conv) and "image" in self.feature_names and hidden % outlook_grid:
            raise InputError(f"mpsea: hidden {hidden} must be divisible by outlook_grid {outlook_grid}")
        levels = [float(x) for x in fusion_levels]
        if not levels or not all(0.0 <= x <= 1.0 for x in levels) or not 0.0 <= base_level <= 1.0:
            raise InputError(f"mpsea: fusion_levels {list(fusion_levels)} and base_level {base_level} must lie in [0, 1]")
        if not structure and not self.feature_names:
            raise InputError("mpsea: structure=false needs at least one feature modality")
        self.names = (["graph"] if structure else []) + list(self.feature_names)
        self.tokens = [m for m in self.names if m != "graph"]
        self.hidden = hidden
        self.tau, self.alpha = tau, alpha
        self.cprl = cprl
        self.fusion_checkpoint = fusion_checkpoint
        self.fusion_input_norm, self.unit_mix = fusion_input_norm, unit_mix
        self.base_level = float(base_level)
        self.reward_threshold, self.mi_weight = reward_threshold, mi_weight
        self.reward_bonus, self.reward_penalty, self.entropy_weight = reward_bonus, reward_penalty, entropy_weight

        # --- encoders
        self.graph = None
        if structure:
            if multi_weight_gat:
                rel = inputs.relation_edges
                if rel is not None and rel.index.shape[1] > 0:
                    index, types, num_rel = rel.index, rel.type, rel.num_relations
                else:  # no typed edges: one relation, its two directions undistinguished
                    index, types, num_rel = inputs.edge_index, torch.zeros_like(inputs.edge_index[0]), 1
                self.graph = MultiWeightGAT(
                    self.num_entities,
                    hidden,
                    index.long(),
                    types.long(),
                    num_rel,
                    gat_heads,
                    gat_layers,
                    gat_concat,
                    gat_attn_dropout,
                    gat_bands,
                    bias=gat_bias,
                    identity_init=gat_identity_init,
                )
            else:
                self.graph = GraphEncoder(
                    self.num_entities,
                    hidden,
                    gat_heads,
                    gat_layers,
                    gat_concat,
                    gat_attn_dropout,
                    bias=gat_bias,
                    identity_init=gat_identity_init,
                )
        self.proj = nn.ModuleDict()
        self.dnef = None
        feats = self.features()
        for m in self.tokens:
            if m == "numeric" and dnef:
                facts = inputs.numeric
                if facts is None:
                    dense = inputs.features["numeric"]
                    facts = NumericFacts.from_matrices(dense.cpu().numpy(), (dense != 0).cpu().numpy())
                lo = float(facts.value.min()) if facts.value.numel() else 0.0
                hi = float(facts.value.max()) if facts.value.numel() else 1.0
                self.dnef = DNEF(facts.num_attributes, hidden, dnef_kernels, (lo, hi), dnef_chunk)
                self.register_buffer("num_entity", facts.entity.long(), persistent=False)
                self.register_buffer("num_attribute", facts.attribute.long(), persistent=False)
                self.register_buffer("num_value", facts.value.float(), persistent=False)
            else:
                self.proj[m] = FeatureProjection(feats[m].shape[1], hidden, l2_input=m in tuple(l2_inputs))

        # --- fusion
        self.gst = GraphStructureTransformer(hidden, fusion_heads, fusion_ffn, fusion_dropout) if structure and self.tokens else None
        self.mmpf = None
        if self.tokens:
            img = self.tokens.index("image") if "image" in self.tokens else None
            image_ffn = ImageFFN(hidden, fusion_ffn, outlook_grid, outlook, outlook_conv, 1, outlook_kernel, 3, fusion_dropout)
            self.mmpf = PreSynergisticFusion(
                hidden,
                fusion_heads,
                fusion_ffn,
                fusion_dropout,
                image_slot=img,
                graph_prefix=mmpf and mmpf_gph and structure,
                image_prefix=mmpf and mmpf_img,
                image_ffn=image_ffn if img is not None else None,
            )
        self.loss_weights = UncertaintyWeights(self.names)
        self.register_buffer("modality_mask", self.mask_matrix(self.names), persistent=False)

        # --- CPRL
        joint_dim = hidden * len(self.names)
        self.register_buffer("levels", torch.tensor(levels), persistent=False)
        self.policy = self.mi = None
        if cprl:
            self.policy = FusionPolicy(joint_dim + 1, policy_hidden, len(levels))
            self.mi = MutualInformationEstimator(joint_dim, joint_dim, mi_hidden)
            k = min(mi_negatives, self.num_entities)
            self.register_buffer("mi_pool", torch.linspace(0, self.num_entities - 1, k).round().long(), persistent=False)
        self.to(self.edge_index.device)  # parameters follow the inputs' device

    # ------------------------------------------------------------ parameters
    def aux_modules(self) -> list[nn.Module]:
        """The auxiliary networks (policy and MI estimator), trained only by their own losses."""
        return [m for m in (self.policy, self.mi) if m is not None]

    def optimizer_groups(self) -> list[dict]:
        """``main``: encoders, fusion, loss weights; ``cprl``: policy and MI estimator (no weight decay)."""
        aux = {id(p) for mod in self.aux_modules() for p in mod.parameters()}
        groups = [{"name": "main", "params": [p for p in self.parameters() if id(p) not in aux]}]
        if aux:
            groups.append(
                {
                    "name": "cprl",
                    "params": [p for mod in self.aux_modules() for p in mod.parameters()],
                    "lr_scale": 1.0,
                    "weight_decay": 0.0,
                }
            )
        return groups

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (reproducible under ``torch.manual_seed``)."""
        for mod in self.modules():
            if mod is self:
                continue
            if isinstance(mod, GraphEncoder):
                nn.init.normal_(mod.entity, std=1.0 / math.sqrt(max(self.num_entities, 1)))
            elif isinstance(mod, UncertaintyWeights):
                nn.init.zeros_(mod.log_vars)
            elif hasattr(mod, "reset_parameters"):
                mod.reset_parameters()

    # ------------------------------------------------------------ forward
    def _encode(self, rows: Tensor | None = None) -> dict[str, Tensor]:
        """Unfused modality embeddings ``{m: (n, d)}``, or ``(k, d)`` for the unique ``rows`` (k,) only.

        The structural encoder always runs over the whole graph (its output at a row depends
        on the row's neighbourhood); the feature encoders are row-wise, so restricting them
        to ``rows`` gives the same rows.
        """
        out = {}
        if self.graph is not None:
            g = self.graph() if isinstance(self.graph, MultiWeightGAT) else self.graph(self.edge_index)
            out["graph"] = g if rows is None else g[rows]
        feats, masks = self.features(), self.masks()
        if rows is not None:
            feats = {m: f[rows] for m, f in feats.items()}
            masks = {m: k[rows] for m, k in masks.items()}
        for m in self.tokens:
            if m in self.proj:
                out[m] = self.proj[m](feats[m], masks[m])
            else:
                out[m] = self._numeric(rows) * masks[m].unsqueeze(1)
        return out

    def _numeric(self, rows: Tensor | None) -> Tensor:
        """DNEF over the facts of all entities (n, d), or of the unique ``rows`` alone (k, d)."""
        if rows is None:
            return self.dnef(self.num_entity, self.num_attribute, self.num_value, self.num_entities)
        local = torch.full((self.num_entities,), -1, dtype=torch.long, device=rows.device)
        local[rows] = torch.arange(len(rows), device=rows.device)
        ent = local[self.num_entity]
        keep = ent >= 0
        return self.dnef(ent[keep], self.num_attribute[keep], self.num_value[keep], len(rows))

    def _joint(self, x: list[Tensor], h: list[Tensor], weights: Tensor, level: Tensor) -> Tensor:
        """``concat_m(w_m * norm((1 - lam) x_m + lam h_m))`` with ``level`` (n, 1) or a float
        (``x_m``, ``h_m`` first L2-normalised with ``unit_mix``)."""
        if self.unit_mix:
            x, h = [F.normalize(t, dim=-1) for t in x], [F.normalize(t, dim=-1) for t in h]
        mixed = [(1 - level) * a + level * b for a, b in zip(x, h, strict=True)]
        return weighted_concat(mixed, weights)

    def _fuse(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Graph structure transformer + MMPF: (n, M, d) unfused tokens and their (n, M) mask
        -> (fused tokens (n, M, d), scores (n, M)). Row-wise: any subset of rows may be fused."""
        hidden, scores = [], []
        if self.gst is not None:
            g, s_g = self.gst(x, mask)
            hidden, scores = [g], [s_g.unsqueeze(1)]
        elif self.graph is not None:
            hidden, scores = [x[:, 0]], [x.new_zeros(x.shape[0], 1).float()]
        if self.mmpf is not None:
            first = len(self.names) - len(self.tokens)
            hid, s_t = self.mmpf(x[:, first:], mask[:, first:], hidden[0] if hidden else None)
            hidden += list(hid.unbind(1))
            scores.append(s_t.float())
        return torch.stack(hidden, 1), torch.cat(scores, 1)

    def forward(self, rows: Tensor | None = None) -> ModelOutput:
        """All entities' embeddings, or (with ``rows`` (k,), unique global ids) those of ``rows`` alone.

        With ``rows``, every module after the structural encoder runs on those rows only
        (plus, with CPRL, the feature encoders on the MI estimator's ``mi_pool`` entities,
        whose unfused embeddings the MI score contrasts with); for each row the result is
        the all-rows forward's, up to the random draws (dropout, the policy's sampled action).
        """
        pool = self.mi_pool if self.policy is not None else None
        if rows is None:
            enc, mask = self._encode(), self.modality_mask
            x = [enc[m] for m in self.names]
            neg = None
        else:
            k = len(rows)
            ext, inv = (rows, None) if pool is None else torch.unique(torch.cat([rows, pool]), return_inverse=True)
            enc, mask = self._encode(ext), self.modality_mask[rows]
            both = [enc[m] if inv is None else enc[m][inv] for m in self.names]
            x = [t[:k] for t in both]
            neg = None if pool is None else self._modality_concat([t[k:] for t in both])
        stacked = torch.stack(x, 1)
        if self.fusion_input_norm:  # absent tokens are zero rows and stay zero
            stacked = F.normalize(stacked, dim=-1)
        if self.fusion_checkpoint and self.training and torch.is_grad_enabled():
            # Keep none of the fusion layers' activations; recompute them in backward (same RNG for dropout).
            hidden, scores = checkpoint(self._fuse, stacked, mask, use_reentrant=False)
        else:
            hidden, scores = self._fuse(stacked, mask)
        weights = masked_softmax(scores, mask)
        h = list(hidden.unbind(1))
        aux = {"hidden": hidden, "weights": weights, "mask": mask}
        if self.policy is None:
            joint = self._joint(x, h, weights, self.base_level)
        else:
            # The state is detached: CPRL's losses must not reach the encoders (docs/models/mpsea.md).
            with torch.no_grad():
                base = self._joint(x, h, weights, self.base_level).float()
                clean = self._modality_concat(x)
                if neg is None:
                    neg = clean[pool]
                mi = self.mi.pointwise(base, clean, neg)
            # J at RMS 1: at norm <= 1 over M*d entries the policy would see a constant state.
            state = torch.cat([rms_scaled(base), mi.unsqueeze(1)], 1)
            logits = self.policy(state.to(next(self.policy.parameters()).dtype))
            if self.training:
                action = torch.distributions.Categorical(logits=logits.detach()).sample()
            else:
                action = logits.detach().argmax(1)
            level = self.levels[action].unsqueeze(1)
            joint = self._joint(x, h, weights, level)
            aux.update(logits=logits, action=action, level=level.squeeze(1), mi_state=mi, clean=clean, negatives=neg)
        out = ModelOutput({m: t for m, t in zip(self.names, x, strict=True)}, aux=aux)
        out["joint"] = joint
        return out

    def rows_step(self, links: Tensor) -> tuple[Tensor, dict[str, float], ModelOutput]:
        """One training step's ``(total, parts, out)`` with every per-row module on the batch's rows.

        ``links`` (B, 2) global ids. The loss reads only the batch's rows (and the MI pool), so
        the loss and its gradients are the all-rows step's (tests/test_models_mpsea_rows.py);
        ``out`` covers ``unique(links)``. Used by the training loop when ``train.loss_rows_only``.
        """
        rows, inverse = torch.unique(links.reshape(-1), return_inverse=True)
        out = self.forward(rows)
        total, parts = self.loss(out, inverse.view(-1, 2))
        return total, parts, out

    @staticmethod
    def _modality_concat(x: list[Tensor]) -> Tensor:
        """(n, M*d): the L2-normalised unfused modality embeddings side by side (the MI's other variable)."""
        return torch.cat([F.normalize(t.float(), dim=-1) for t in x], 1)

    # ------------------------------------------------------------ loss
    def loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, dict[str, float]]:
        """``ICL(joint) + sum_m K(ICL(x_m)) + sum_m K(ICL(h_m))`` (+ ``L_policy + L_MI`` with CPRL).

        The CPRL terms are computed from detached embeddings, so their gradients
        reach only the policy and the MI estimator, and the main terms never
        reach those (the sampled action enters the joint embedding as a constant).

        Returns:
            total (scalar) and ``{"joint", "icl", "licl"}`` plus ``{"policy", "mi", "reward"}`` with CPRL.
        """
        l_joint = icl_loss(out["joint"], links, self.tau, self.alpha)
        hidden = out.aux["hidden"]
        mask = out.aux["mask"]  # (rows, M): the rows ``out`` covers (all entities, or a row step's)
        present = [None if m == "graph" else mask[:, i] for i, m in enumerate(self.names)]
        icl = {m: icl_loss(out[m], links, self.tau, self.alpha, present[i]) for i, m in enumerate(self.names)}
        licl = {m: icl_loss(hidden[:, i], links, self.tau, self.alpha, present[i]) for i, m in enumerate(self.names)}
        l_icl, l_licl = self.loss_weights(icl), self.loss_weights(licl)
        total = l_joint + l_icl + l_licl
        parts = {"joint": float(l_joint.detach()), "icl": float(l_icl.detach()), "licl": float(l_licl.detach())}
        if self.policy is not None and len(links) > 0:  # every step: DDP runs with static_graph
            l_policy, l_mi, reward = self.cprl_loss(out, links)
            total = total + l_policy + l_mi
            parts.update(policy=float(l_policy.detach()), mi=float(-l_mi.detach()), reward=float(reward))
        return total, parts

    def cprl_loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, Tensor, float]:
        """``(L_policy, L_MI, mean reward)`` of one batch of anchor pairs, from detached embeddings."""
        a, b = links[:, 0], links[:, 1]
        ents = torch.cat([a, b])
        joint = out["joint"].detach().float()
        clean = out.aux["clean"]
        # MI estimator: maximise the DV bound between the fused joint and the unfused modalities.
        l_mi = -self.mi.dv_bound(joint[ents], clean[ents])
        with torch.no_grad():
            mi = self.mi.pointwise(joint[ents], clean[ents], out.aux["negatives"])
            mi = mi / math.log(max(len(self.mi_pool), 2))  # about [-1, 1]: comparable with a cosine
            cos = F.cosine_similarity(joint[a], joint[b], dim=-1)
            reward = cprl_reward(
                cos, (mi[: len(a)] + mi[len(a) :]) / 2, self.reward_threshold, self.mi_weight, self.reward_bonus, self.reward_penalty
            )
        # Both ends of a pair chose their level; both share the pair's reward.
        l_policy = reinforce_loss(out.aux["logits"][ents], out.aux["action"][ents], torch.cat([reward, reward]), self.entropy_weight)
        return l_policy, l_mi, float(reward.mean())

    # ------------------------------------------------------------ reporting
    @torch.no_grad()
    def epoch_metrics(self) -> dict[str, float]:
        """Mean cross-modal weights ``weight.<m>``, CPRL action frequencies ``action.<level>``,
        mean fusion level and MI score of the state (eval mode, no grad; the mode is restored)."""
        was = self.training
        self.eval()
        try:
            out = self.forward()
        finally:
            self.train(was)
        w, mask = out.aux["weights"], self.modality_mask
        res = {f"weight.{m}": float(w[mask[:, i], i].mean()) if mask[:, i].any() else 0.0 for i, m in enumerate(self.names)}
        if self.policy is not None:
            counts = torch.bincount(out.aux["action"], minlength=len(self.levels)).float() / self.num_entities
            res.update({f"action.{lv:g}": float(c) for lv, c in zip(self.levels.tolist(), counts, strict=True)})
            res["level.mean"] = float(out.aux["level"].mean())
            res["mi.state"] = float(out.aux["mi_state"].mean())
        return res
