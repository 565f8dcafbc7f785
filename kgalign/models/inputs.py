"""What a model receives: the graph and the per-entity modality features.

This is the contract between the data/feature stages and every model. Models
never read files; the trainer builds a :class:`ModelInputs` once and moves it to
the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from kgalign.data.store import Dataset


@dataclass
class ModelInputs:
    """Tensors for one dataset.

    Attributes:
        num_entities: n, entities of both graphs (global ids, KG1 first).
        edge_index: LongTensor (2, E); undirected entity graph (both directions,
            no self loops, no duplicates) built from the relation triples.
        rel_triples: LongTensor (m, 3) head, relation, tail (for models that use relations).
        features: ``{modality: FloatTensor (n, d)}``; rows of masked entities are zero.
        masks: ``{modality: BoolTensor (n,)}``; True where the entity has the modality.
        kg: LongTensor (n,), 1 or 2.
    """

    num_entities: int
    edge_index: torch.Tensor
    rel_triples: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    kg: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "ModelInputs":
        return ModelInputs(
            num_entities=self.num_entities,
            edge_index=self.edge_index.to(device),
            rel_triples=self.rel_triples.to(device),
            features={k: v.to(device) for k, v in self.features.items()},
            masks={k: v.to(device) for k, v in self.masks.items()},
            kg=None if self.kg is None else self.kg.to(device),
        )

    @property
    def modalities(self) -> list[str]:
        return list(self.features)


def undirected_edges(triples: np.ndarray, num_entities: int) -> torch.Tensor:
    """(2, E) edge index with both directions, self loops and duplicates removed."""
    if len(triples) == 0:
        return torch.zeros((2, 0), dtype=torch.long)
    h, t = triples[:, 0].astype(np.int64), triples[:, 2].astype(np.int64)
    keep = h != t
    h, t = h[keep], t[keep]
    src = np.concatenate([h, t])
    dst = np.concatenate([t, h])
    key = np.unique(src * num_entities + dst)
    return torch.from_numpy(np.stack([key // num_entities, key % num_entities])).long()


def build_inputs(dataset: Dataset, features: dict[str, tuple[np.ndarray, np.ndarray]]) -> ModelInputs:
    """Assemble :class:`ModelInputs` from a dataset and ``{name: (matrix, mask)}`` features."""
    n = dataset.num_entities
    feats, masks = {}, {}
    for name, (mat, mask) in features.items():
        if mat.shape[0] != n:
            raise ValueError(f"feature {name!r} has {mat.shape[0]} rows, dataset has {n} entities")
        feats[name] = torch.from_numpy(np.asarray(mat, dtype=np.float32))
        masks[name] = torch.from_numpy(np.asarray(mask, dtype=bool))
    return ModelInputs(
        num_entities=n,
        edge_index=undirected_edges(dataset.relation_triples, n),
        rel_triples=torch.from_numpy(np.asarray(dataset.relation_triples, dtype=np.int64)).reshape(-1, 3),
        features=feats,
        masks=masks,
        kg=torch.from_numpy(dataset.entity_kg.astype(np.int64)),
    )
