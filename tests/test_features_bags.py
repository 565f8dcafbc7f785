"""Relation, attribute, numeric and name featurizers on a small hand-made dataset."""

from __future__ import annotations

import numpy as np
import pytest

from kgalign.data.store import Dataset
from kgalign.data.terms import name_from_iri
from kgalign.features.bags import attribute_features, relation_features
from kgalign.features.numeric import numeric_features
from kgalign.features.text import entity_names

KG1 = [
    "http://ex.org/r/Alice_Smith",
    "http://ex.org/r/Bob",
    "http://ex.org/r/Caf%C3%A9_Paris",
    "http://ex.org/r/Dora",
    "http://ex.org/r/Eve",
]
KG2 = ["/m/0a", "/m/0b", "/m/0c", "/m/0d"]


def make_dataset(images: list[tuple[int, str]] | None = None) -> Dataset:
    """KG1: 5 IRI entities (0-4); KG2: 4 Freebase-style ids (5-8).

    Relations 0,1 (KG1) and 2 (KG2); attributes 0 birth, 1 height, 2 label (KG1), 3 born (KG2).
    """
    n1, n2 = len(KG1), len(KG2)
    triples = np.array(
        [
            [0, 0, 1],
            [1, 0, 2],
            [2, 0, 0],
            [0, 1, 3],
            [3, 1, 3],  # (3, 1, 3) is a self loop
            [5, 2, 6],
            [6, 2, 7],
        ],
        dtype=np.int64,
    )
    attr = [(0, 2, "Alice", "", "en"), (1, 2, "Bob", "", "en"), (0, 1, "1.70", "xsd:double", ""), (5, 3, "1980", "xsd:gYear", "")]
    num = [
        (0, 0, 1980.0),
        (1, 0, 1990.0),
        (2, 0, 1985.0),
        (3, 0, 3000.0),
        (0, 1, 1.70),
        (1, 1, 1.80),
        (1, 1, 1.90),
        (5, 3, 1980.0),
        (6, 3, 1990.0),
        (7, 3, float("nan")),
    ]
    names = [(0, "Alice Smith", "en"), (0, "Alice", "fr"), (1, "Bob", "en"), (5, "Alice Smith", "en"), (6, "Bob", "en"), (7, "  ", "")]
    images = images or []
    return Dataset(
        entities=KG1 + KG2,
        entity_kg=np.array([1] * n1 + [2] * n2, np.int8),
        relations=["r0", "r1", "r2"],
        relation_kg=np.array([1, 1, 2], np.int8),
        relation_triples=triples,
        attributes=["birth", "height", "label", "born"],
        attribute_kg=np.array([1, 1, 1, 2], np.int8),
        attr_entity=np.array([a[0] for a in attr], np.int64),
        attr_key=np.array([a[1] for a in attr], np.int64),
        attr_value=[a[2] for a in attr],
        attr_datatype=[a[3] for a in attr],
        attr_lang=[a[4] for a in attr],
        num_entity=np.array([x[0] for x in num], np.int64),
        num_key=np.array([x[1] for x in num], np.int64),
        num_value=np.array([x[2] for x in num], np.float64),
        name_entity=np.array([x[0] for x in names], np.int64),
        name_text=[x[1] for x in names],
        name_lang=[x[2] for x in names],
        image_entity=np.array([e for e, _ in images], np.int64),
        image_source=[s for _, s in images],
        links=np.array([[0, 5], [1, 6], [2, 7], [3, 8]], np.int64),
        link_split=["train", "train", "valid", "test"],
    )


def test_relation_bag_counts_head_and_tail():
    ds = make_dataset()
    mat, mask, meta = relation_features(ds, topk=1000)
    assert meta["columns"] == [0, 1, 2]  # r0: 3 triples, r1: 2, r2: 2 (tie -> lower id first)
    want = np.zeros((9, 3), np.float32)
    for h, r, t in ds.relation_triples:
        c = meta["columns"].index(r)
        want[h, c] += 1
        want[t, c] += 1
    np.testing.assert_array_equal(mat, want)
    assert mat[3, 1] == 3  # tail of (0, r1, 3), plus the self loop (3, r1, 3) as head and tail
    assert mask.tolist() == [True, True, True, True, False, True, True, True, False]
    top1, mask1, meta1 = relation_features(ds, topk=1)
    assert top1.shape == (9, 1) and meta1["columns"] == [0]
    assert mask1.tolist() == [True, True, True, False, False, False, False, False, False]


def test_attribute_bag_is_binary_and_includes_numeric_keys():
    ds = make_dataset()
    mat, mask, meta = attribute_features(ds)
    # entities per key: birth 4, height 2, label 2, born 3 (entity 7's NaN still names the key)
    assert meta["columns"] == [0, 3, 1, 2]
    assert set(np.unique(mat)) <= {0.0, 1.0}
    assert mat[1].tolist() == [1, 0, 1, 1]  # birth, height (twice -> 1), label
    assert mat[5].tolist() == [0, 1, 0, 0]
    assert mask.tolist() == [True, True, True, True, False, True, True, True, False]
    top2, _, m2 = attribute_features(ds, topk=2)
    assert top2.shape == (9, 2) and m2["columns"] == [0, 3]


def test_numeric_quantile_and_presence():
    ds = make_dataset()
    values, present, mask, meta = numeric_features(ds)
    assert meta["columns"] == [0, 1, 3]  # birth (4 entities), height (2), born (2 finite; tie -> id)
    # birth: 1980, 1990, 1985, 3000 -> ranks 1, 3, 2, 4 -> (r - 0.5) / 4
    np.testing.assert_allclose(values[[0, 1, 2, 3], 0], [0.125, 0.625, 0.375, 0.875])
    # height: entity 1 has 1.8 and 1.9 -> median 1.85 > 1.70
    np.testing.assert_allclose(values[[0, 1], 1], [0.25, 0.75])
    assert present[:, 2].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0]  # NaN of entity 7 ignored
    assert values[7].tolist() == [0, 0, 0] and not mask[7]
    assert mask.tolist() == [True, True, True, True, False, True, True, False, False]
    assert np.all((values > 0) <= (present > 0))


def test_numeric_robust_is_unit_invariant_and_clipped():
    ds = make_dataset()
    v1, _, _, m = numeric_features(ds, transform="robust", clip=2.0)
    assert m["transform"] == "robust"
    # birth: median 1987.5, IQR 258.75: the outlier 3000 gives 3.9, clipped at 2
    assert v1[3, 0] == pytest.approx(2.0)
    assert abs(v1[0, 0]) < 2.0
    ds2 = make_dataset()
    ds2.num_value = ds2.num_value * 365.25 + 7.0  # same quantities in other units
    v2, _, _, _ = numeric_features(ds2, transform="robust", clip=2.0)
    np.testing.assert_allclose(v1, v2, atol=1e-5)
    q1, *_ = numeric_features(ds)
    q2, *_ = numeric_features(ds2)
    np.testing.assert_allclose(q1, q2)
    with pytest.raises(ValueError):
        numeric_features(ds, transform="zscore")


def test_names_first_name_and_the_one_iri_rule():
    ds = make_dataset()
    names, meta = entity_names(ds)
    assert names[:3] == ["Alice Smith", "Bob", None]
    assert names[7] is None  # blank name counts as none
    assert meta["named"] == sum(n is not None for n in names)
    assert name_from_iri("<http://dbpedia.org/resource/Rebecca_Hall>") == "Rebecca Hall"
    assert name_from_iri("http://yago-knowledge.org/resource/Doncaster") == "Doncaster"
    assert name_from_iri("http://ex.org/ont#birth_date") == "birth date"
    assert name_from_iri("/m/01m4kpp") is None  # Freebase ids are not IRIs
    assert name_from_iri("_:b0") is None and name_from_iri("http://ex.org/") == "ex.org"
    assert name_from_iri("urn:isbn:0451450523") == "0451450523"
    assert name_from_iri("http://ex.org/Caf%C3%A9_Paris") == "Café Paris"
