"""What every kgalign model shares: input buffers, the modality encoders, ``embed()``.

The model contract (docs/architecture.md): ``cls(inputs, **config)``;
``forward() -> {modality: (n, d_m), "joint": (n, D)}``; ``loss(out, links)``;
``embed() -> (n, D)`` L2-normalised, eval mode, no grad.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.inputs import ModelInputs
from kgalign.models.layers import FeatureProjection, GraphEncoder

# Canonical modality order; unknown feature names follow, sorted.
MODALITY_ORDER = ("graph", "relation", "attribute", "numeric", "name", "image")


def modality_order(feature_names) -> list[str]:
    """``["graph", <present standard modalities in canonical order>, <others sorted>]``."""
    names = [n for n in feature_names if n != "graph"]
    known = [m for m in MODALITY_ORDER[1:] if m in names]
    return ["graph"] + known + sorted(set(names) - set(known))


class ModelOutput(dict):
    """``forward()``'s result: ``{modality: (n, d_m), "joint": (n, D)}``.

    Model-internal tensors that ``loss()`` needs (pre-augmentation embeddings,
    fusion weights, hidden states) live in ``.aux`` so that the dict's keys are
    exactly the modalities plus ``"joint"``.
    """

    def __init__(self, *args, aux: dict[str, Tensor] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.aux: dict[str, Tensor] = aux or {}


class MultiModalEncoder(nn.Module):
    """Per-modality encoders: GAT for ``"graph"``, :class:`FeatureProjection` for the rest.

    Args:
        num_entities: n.
        feature_dims: ``{modality: input width}`` of the feature modalities.
        graph_dim: width of the entity table and GAT.
        feature_out: ``{modality: output width}``.
        heads, layers, concat, attn_dropout: :class:`GraphEncoder` settings.
        l2_inputs: modalities whose feature rows are L2-normalised first.
    Shapes:
        forward(features {m: (n, f_m)}, masks {m: (n,)}, edge_index (2, E))
        -> {m: (n, d_m)} in :func:`modality_order`.
    """

    def __init__(
        self,
        num_entities: int,
        feature_dims: dict[str, int],
        graph_dim: int,
        feature_out: dict[str, int],
        heads: int = 2,
        layers: int = 2,
        concat: bool = True,
        attn_dropout: float = 0.0,
        l2_inputs=("image",),
    ):
        super().__init__()
        self.names = modality_order(feature_dims)
        self.graph = GraphEncoder(num_entities, graph_dim, heads=heads, layers=layers, concat=concat, attn_dropout=attn_dropout)
        self.proj = nn.ModuleDict({m: FeatureProjection(feature_dims[m], feature_out[m], l2_input=m in l2_inputs) for m in self.names[1:]})
        self.dims = {"graph": graph_dim, **{m: feature_out[m] for m in self.names[1:]}}

    def forward(self, features: dict[str, Tensor], masks: dict[str, Tensor], edge_index: Tensor) -> dict[str, Tensor]:
        out = {"graph": self.graph(edge_index)}
        for m in self.names[1:]:
            out[m] = self.proj[m](features[m], masks[m])
        return out


class AlignmentModel(nn.Module):
    """Base class: keeps the inputs as non-persistent buffers (they follow ``.to()``
    but stay out of ``state_dict``) and implements ``embed()``."""

    def __init__(self, inputs: ModelInputs):
        super().__init__()
        self.num_entities = int(inputs.num_entities)
        self.feature_names = modality_order(inputs.features)[1:]
        self.register_buffer("edge_index", inputs.edge_index.long(), persistent=False)
        for m in self.feature_names:
            feat = inputs.features[m]
            if feat.shape[0] != self.num_entities:
                raise ValueError(f"feature {m!r} has {feat.shape[0]} rows, expected {self.num_entities}")
            mask = inputs.masks.get(m)
            if mask is None:
                mask = torch.ones(self.num_entities, dtype=torch.bool, device=feat.device)
            self.register_buffer(f"feat_{m}", feat.float(), persistent=False)
            self.register_buffer(f"mask_{m}", mask.bool(), persistent=False)

    def features(self) -> dict[str, Tensor]:
        return {m: getattr(self, f"feat_{m}") for m in self.feature_names}

    def masks(self) -> dict[str, Tensor]:
        return {m: getattr(self, f"mask_{m}") for m in self.feature_names}

    def present(self, modality: str) -> Tensor | None:
        """BoolTensor (n,) of entities having ``modality``; None for ``"graph"`` (always present)."""
        return None if modality == "graph" else getattr(self, f"mask_{modality}")

    def mask_matrix(self, names: list[str]) -> Tensor:
        """BoolTensor (n, M): column m True where the entity has ``names[m]``."""
        cols = [
            torch.ones(self.num_entities, dtype=torch.bool, device=self.edge_index.device) if m == "graph" else getattr(self, f"mask_{m}")
            for m in names
        ]
        return torch.stack(cols, 1)

    @torch.no_grad()
    def embed(self) -> Tensor:
        """(n, D) L2-normalised joint embeddings: eval mode, no augmentation, no grad.

        The previous train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            joint = self.forward()["joint"]
        finally:
            self.train(was_training)
        return F.normalize(joint.float(), dim=-1)
