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

# Auxiliary stored features that travel inside another modality instead of being one.
STRUCTURED_PARTS = {"numeric_present": "numeric"}


@dataclass
class NumericFacts:
    """Numeric attribute values as sparse facts, for numeric encoders (MMEA's RBF, MPSEA's DNEF).

    Attributes:
        entity: LongTensor (k,), global entity id of each fact.
        attribute: LongTensor (k,), column of the stored ``numeric`` feature (0..num_attributes-1).
        value: FloatTensor (k,), the per-attribute normalised value (see features/numeric.py).
        num_attributes: number of numeric attribute columns.
    """

    entity: torch.Tensor
    attribute: torch.Tensor
    value: torch.Tensor
    num_attributes: int

    def to(self, device: torch.device | str) -> "NumericFacts":
        return NumericFacts(self.entity.to(device), self.attribute.to(device), self.value.to(device), self.num_attributes)

    @classmethod
    def from_matrices(cls, values: np.ndarray, present: np.ndarray) -> "NumericFacts":
        """From the stored ``numeric`` (n, a) values and ``numeric_present`` (n, a) 0/1 matrices."""
        ent, att = np.nonzero(np.asarray(present) > 0)
        return cls(
            entity=torch.from_numpy(ent.astype(np.int64)),
            attribute=torch.from_numpy(att.astype(np.int64)),
            value=torch.from_numpy(np.asarray(values)[ent, att].astype(np.float32)),
            num_attributes=int(np.asarray(values).shape[1]),
        )


@dataclass
class RelationEdges:
    """Typed directed edges for relation-aware encoders (multi-weight or relational GATs).

    Attributes:
        index: LongTensor (2, E), messages flow from ``index[0]`` to ``index[1]``.
        type: LongTensor (E,): ``r`` for a head -> tail edge of relation ``r``,
            ``r + num_relations`` for its tail -> head inverse.
        num_relations: R, relations of both graphs; there are ``2 R`` edge types.
    """

    index: torch.Tensor
    type: torch.Tensor
    num_relations: int

    @property
    def num_types(self) -> int:
        return 2 * self.num_relations

    def to(self, device: torch.device | str) -> "RelationEdges":
        return RelationEdges(self.index.to(device), self.type.to(device), self.num_relations)

    @classmethod
    def from_triples(cls, triples: np.ndarray, num_relations: int) -> "RelationEdges":
        """Both directions of every (h, r, t) triple; self loops and repeated (h, r, t) dropped."""
        tri = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        tri = np.unique(tri[tri[:, 0] != tri[:, 2]], axis=0) if len(tri) else tri
        h, r, t = tri[:, 0], tri[:, 1], tri[:, 2]
        index = np.stack([np.concatenate([h, t]), np.concatenate([t, h])])
        types = np.concatenate([r, r + num_relations])
        return cls(torch.from_numpy(index), torch.from_numpy(types), int(num_relations))


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
        numeric: the numeric modality as sparse facts (None without numeric features);
            the dense ``features["numeric"]`` stays for models that read a matrix.
        relation_edges: typed directed edges (None when not built).
        external: the features are placeholders (no rows): the model gets its rows per
            mini-batch through ``model.on(subgraph)`` (kgalign.models.subgraph).
    """

    num_entities: int
    edge_index: torch.Tensor
    rel_triples: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    kg: torch.Tensor | None = None
    numeric: NumericFacts | None = None
    relation_edges: RelationEdges | None = None
    external: bool = False

    def to(self, device: torch.device | str) -> "ModelInputs":
        return ModelInputs(
            num_entities=self.num_entities,
            edge_index=self.edge_index.to(device),
            rel_triples=self.rel_triples.to(device),
            features={k: v.to(device) for k, v in self.features.items()},
            masks={k: v.to(device) for k, v in self.masks.items()},
            kg=None if self.kg is None else self.kg.to(device),
            numeric=None if self.numeric is None else self.numeric.to(device),
            relation_edges=None if self.relation_edges is None else self.relation_edges.to(device),
            external=self.external,
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
    """Assemble :class:`ModelInputs` from a dataset and ``{name: (matrix, mask)}`` features.

    ``numeric_present`` is not a modality: with ``numeric`` it becomes :attr:`ModelInputs.numeric`.
    """
    n = dataset.num_entities
    feats, masks = {}, {}
    for name, (mat, mask) in features.items():
        if mat.shape[0] != n:
            raise ValueError(f"feature {name!r} has {mat.shape[0]} rows, dataset has {n} entities")
        if name in STRUCTURED_PARTS:
            continue
        feats[name] = torch.from_numpy(np.asarray(mat, dtype=np.float32))
        masks[name] = torch.from_numpy(np.asarray(mask, dtype=bool))
    numeric = None
    if "numeric" in features:
        values = features["numeric"][0]
        present = features["numeric_present"][0] if "numeric_present" in features else (np.asarray(values) != 0)
        numeric = NumericFacts.from_matrices(values, present)
    triples = np.asarray(dataset.relation_triples, dtype=np.int64).reshape(-1, 3)
    num_relations = max(len(dataset.relations), int(triples[:, 1].max(initial=-1)) + 1)
    return ModelInputs(
        num_entities=n,
        edge_index=undirected_edges(triples, n),
        rel_triples=torch.from_numpy(triples),
        features=feats,
        masks=masks,
        kg=torch.from_numpy(dataset.entity_kg.astype(np.int64)),
        numeric=numeric,
        relation_edges=RelationEdges.from_triples(triples, num_relations),
    )
