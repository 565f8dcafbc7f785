"""Structured model inputs: numeric facts and typed relation edges."""

import numpy as np
import torch

from kgalign.models.inputs import NumericFacts, RelationEdges


def test_numeric_facts_keep_real_zero_values_and_skip_missing():
    values = np.array([[0.0, 0.5], [0.0, 0.0], [0.25, 0.0]], np.float32)
    present = np.array([[1, 1], [0, 0], [1, 0]], np.float32)
    facts = NumericFacts.from_matrices(values, present)
    got = sorted(zip(facts.entity.tolist(), facts.attribute.tolist(), facts.value.tolist(), strict=True))
    assert got == [(0, 0, 0.0), (0, 1, 0.5), (2, 0, 0.25)]
    assert facts.num_attributes == 2


def test_relation_edges_have_both_directions_with_inverse_types():
    triples = np.array([[0, 1, 2], [0, 1, 2], [3, 0, 3], [2, 0, 4]])
    edges = RelationEdges.from_triples(triples, num_relations=2)
    got = sorted(zip(edges.index[0].tolist(), edges.index[1].tolist(), edges.type.tolist(), strict=True))
    # the repeated triple counts once, the self loop is dropped, inverses are typed r + R
    assert got == [(0, 2, 1), (2, 0, 3), (2, 4, 0), (4, 2, 2)]
    assert edges.num_types == 4
    assert edges.to("cpu").index.dtype == torch.long
