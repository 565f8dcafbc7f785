"""The model contract and what every kgalign model shares.

A model is an :class:`AlignmentModel` built as ``cls(inputs, **options)``; its
options and their defaults are the keyword arguments of ``__init__`` (the
registry reads them from the signature). The training loop calls, per step,
``out = model()``, ``total, parts = model.loss(out, links)``, backward, the
optimizer steps, then ``model.after_step(out)``; per epoch ``model.epoch_metrics()``;
for evaluation ``model.embed()``. See docs/architecture.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.inputs import ModelInputs
from kgalign.models.layers import FeatureProjection, GraphEncoder, reset_children

# Canonical modality order; unknown feature names follow, sorted.
MODALITY_ORDER = ("graph", "relation", "attribute", "numeric", "name", "image")


def modality_order(feature_names) -> list[str]:
    """``["graph", <present standard modalities in canonical order>, <others sorted>]``."""
    names = [n for n in feature_names if n != "graph"]
    known = [m for m in MODALITY_ORDER[1:] if m in names]
    return ["graph"] + known + sorted(set(names) - set(known))


def modality_means(names: list[str], mask: Tensor, **per_modality: Tensor) -> dict[str, float]:
    """``{"<key>.<modality>": mean over the entities that have the modality}`` for (n, M) tensors."""
    maskf = mask.float()
    count = maskf.sum(0).clamp(min=1)
    keys = list(per_modality)
    # one device-to-host copy for all values (a GPU sync per float() would stall every step)
    means = torch.stack([(per_modality[k].detach().float() * maskf).sum(0) / count for k in keys]).tolist()
    return {f"{key}.{m}": means[j][i] for j, key in enumerate(keys) for i, m in enumerate(names)}


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
        heads, layers, concat, attn_dropout, gat_impl, gat_weight: :class:`GraphEncoder` settings
            (``impl``: sparse | pyg; ``weight``: full | diagonal), gat_bias (None: on for full, off for
            diagonal), gat_identity_init (start the layer weights at the identity, as the reference's diagonal).
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
        gat_impl: str = "sparse",
        gat_weight: str = "full",
        gat_bias: bool | None = None,
        gat_identity_init: bool = False,
    ):
        super().__init__()
        self.names = modality_order(feature_dims)
        self.graph = GraphEncoder(
            num_entities,
            graph_dim,
            heads=heads,
            layers=layers,
            concat=concat,
            attn_dropout=attn_dropout,
            impl=gat_impl,
            weight=gat_weight,
            bias=gat_bias,
            identity_init=gat_identity_init,
        )
        self.proj = nn.ModuleDict({m: FeatureProjection(feature_dims[m], feature_out[m], l2_input=m in l2_inputs) for m in self.names[1:]})
        self.dims = {"graph": graph_dim, **{m: feature_out[m] for m in self.names[1:]}}

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, features: dict[str, Tensor], masks: dict[str, Tensor], edge_index: Tensor) -> dict[str, Tensor]:
        out = {"graph": self.graph(edge_index)}
        for m in self.names[1:]:
            out[m] = self.proj[m](features[m], masks[m])
        return out


def _refuse_placeholders(model, args) -> None:
    if not model._on_subgraph:
        raise RuntimeError(
            f"{type(model).__name__} was built for mini-batch training (its feature rows live outside it): "
            "run it inside `with model.on(subgraph):` (kgalign.models.subgraph), or embed it with "
            "kgalign.training.minibatch.embed_layerwise"
        )


class AlignmentModel(ABC, nn.Module):
    """Base class of every model: the contract, input buffers and ``embed()``.

    The inputs are kept as non-persistent buffers (they follow ``.to()`` but stay
    out of ``state_dict``). Subclasses implement :meth:`forward`, :meth:`loss`
    and :meth:`reset_parameters`; they may override the hooks
    :meth:`optimizer_groups`, :meth:`after_step` and :meth:`epoch_metrics`.

    Mini-batch training: a model whose per-entity computation is the
    :class:`MultiModalEncoder` (a GAT over the graph, per-row projections) followed by
    per-row fusion sets ``supports_minibatch = True``; ``with model.on(subgraph):`` then
    swaps its input buffers (graph, feature rows, masks, ``modality_mask``) for the
    subgraph's, so the unchanged ``forward()``/``loss()`` run on the subgraph
    (kgalign/models/subgraph.py, docs/training.md "Mini-batch training").

    A training-free model sets ``trainable = False`` and implements :meth:`fit`: the trainer then
    skips the training loop and optimizers and evaluates each round ``fit`` yields.
    """

    supports_minibatch: bool = False
    trainable: bool = True

    def fit(self, links: Tensor, excluded: Tensor | None = None):
        """Training-free models only: compute the model's state from the training links (B, 2).

        A generator with one step per round; each yields ``(links (B', 2), source (B',))``, the
        links that round used (source 0: seed, ``i``: added before round ``i``), after which
        :meth:`embed` gives that round's embeddings. ``excluded`` (E, 2): known non-matches.
        """
        raise NotImplementedError(f"{type(self).__name__} is trained by the training loop, not fit()")

    @abstractmethod
    def forward(self) -> ModelOutput:
        """Embeddings of all entities: ``{modality: (n, d_m), "joint": (n, D)}`` plus ``.aux``.

        In training mode this includes training-only augmentation. It must not
        change the model's state (buffers): that belongs in :meth:`after_step`.
        """

    @abstractmethod
    def loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Total loss (scalar) for the training links (B, 2) and its named parts as floats.

        Losses of auxiliary networks (e.g. a policy or an MI estimator) are part of
        the total; their optimizer comes from :meth:`optimizer_groups`.
        """

    @abstractmethod
    def reset_parameters(self) -> None:
        """Re-initialise every parameter (and training-time buffer) as at construction."""

    def optimizer_groups(self) -> list[dict]:
        """Parameter groups and the optimizer each belongs to.

        Each dict has ``"params"`` and may have ``"name"`` (the optimizer: groups
        with the same name share one optimizer; default ``"main"``), ``"lr_scale"``
        (multiplies the scheduled learning rate, default 1) and ``"weight_decay"``
        (default: the run's). Every trainable parameter must be in exactly one group.
        """
        return [{"name": "main", "params": [p for p in self.parameters() if p.requires_grad]}]

    def after_step(self, out: ModelOutput) -> None:  # noqa: B027 - an optional hook, empty by default
        """Training-time state changes after each optimizer step (running statistics,
        adaptive scales), from values ``forward``/``loss`` left in ``out.aux``."""

    @torch.no_grad()
    def step_metrics(self, out: ModelOutput) -> dict[str, float]:
        """Values read off a training step's output (modality weights, noise scales,
        confidences); the loop averages them over the epoch into ``metrics.jsonl``'s ``"model"``."""
        return {}

    @torch.no_grad()
    def epoch_metrics(self) -> dict[str, float]:
        """Values the model reports once per epoch (e.g. an estimate that needs its own
        pass); written beside the step averages under ``"model"``."""
        return {}

    def __init__(self, inputs: ModelInputs):
        super().__init__()
        self.num_entities = int(inputs.num_entities)
        self.external_features = bool(getattr(inputs, "external", False))
        self._on_subgraph = False
        if self.external_features:
            self.register_forward_pre_hook(_refuse_placeholders)
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

    def graph_encoder(self) -> GraphEncoder | None:
        """The structural :class:`GraphEncoder` (``self.encoder.graph`` by convention), or None."""
        enc = getattr(self, "encoder", None)
        graph = getattr(enc, "graph", None)
        return graph if isinstance(graph, GraphEncoder) else None

    @contextmanager
    def on(self, sub) -> Iterator[AlignmentModel]:
        """Run on a :class:`~kgalign.models.subgraph.Subgraph` inside this block: ``forward()``
        returns ``(k, .)`` rows for its local nodes and ``loss()`` takes local link ids.

        Raises ValueError for models that do not support mini-batch training.
        """
        enc = self.graph_encoder()
        if not self.supports_minibatch or enc is None:
            raise ValueError(
                f"{type(self).__name__} does not support mini-batch training (its forward pass needs the whole graph); "
                "train it full-graph with --set train.minibatch=false"
            )
        if self._on_subgraph:
            raise RuntimeError("model.on() blocks do not nest")
        keys = ["edge_index", *(f"feat_{m}" for m in self.feature_names), *(f"mask_{m}" for m in self.feature_names)]
        if "modality_mask" in self._buffers:
            keys.append("modality_mask")
        saved = {k: self._buffers[k] for k in keys}
        saved_n = self.num_entities
        try:
            self._buffers["edge_index"] = sub.edge_index
            for m in self.feature_names:
                self._buffers[f"feat_{m}"] = sub.features[m].float()
                self._buffers[f"mask_{m}"] = sub.masks[m].bool()
            self.num_entities = sub.num_nodes
            if "modality_mask" in saved:
                self._buffers["modality_mask"] = self.mask_matrix(self.names)
            enc.rows, enc.precomputed = sub.nodes, sub.graph
            self._on_subgraph = True
            yield self
        finally:
            self._buffers.update(saved)
            self.num_entities = saved_n
            enc.rows = enc.precomputed = None
            self._on_subgraph = False

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
            joint = self()["joint"]
        finally:
            self.train(was_training)
        return F.normalize(joint.float(), dim=-1)
