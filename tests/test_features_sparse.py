"""Compact feature storage (CSR bags, float16, hashed names) and its loaders, on a real generated + ingested pair."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import sparse

from kgalign.data.ingest import GraphSpec, IngestOptions, ingest_to
from kgalign.data.store import load_dataset
from kgalign.data.synthgen import SynthSettings, generate
from kgalign.errors import InputError, MissingResourceError
from kgalign.features import store
from kgalign.features.bags import attribute_features, relation_features
from kgalign.features.ngrams import hashed_ngrams
from kgalign.features.pipeline import FeatureOptions, compute_features


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sparse")
    src = root / "pair"
    generate(SynthSettings(entities=300, seed=5), src)
    opts = IngestOptions(
        kg1=GraphSpec([str(src / "kg1.tsv")], [str(src / "kg1_attributes.tsv")]),
        kg2=GraphSpec([str(src / "kg2.tsv")], [str(src / "kg2_attributes.tsv")]),
        links=[str(src / "links.tsv")],
    )
    ingest_to(opts, root / "ds")
    return root / "ds"


def test_sparse_bags_equal_the_dense_ones(dataset):
    ds = load_dataset(dataset)
    for fn in (relation_features, attribute_features):
        dense, mask, meta = fn(ds, 50)
        csr, smask, smeta = fn(ds, 50, sparse=True)
        assert isinstance(csr, sparse.csr_array) and csr.dtype == np.float32
        assert np.array_equal(csr.toarray(), dense) and np.array_equal(mask, smask) and meta == smeta
        assert dense.sum() > 0 and mask.mean() > 0.5


def test_csr_round_trip_and_storage_switch(tmp_path):
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 7)) < 0.2) * rng.random((40, 7)).astype(np.float32)
    mask = dense.any(1)
    store.save_feature(tmp_path, "relation", sparse.csr_array(dense), mask, {"featurizer": "t"})
    d = store.features_dir(tmp_path)
    assert sorted(p.name for p in d.iterdir()) == sorted(store.stored_files("relation", "csr") + ["manifest.json"])
    assert store.read_manifest(tmp_path)["relation"]["storage"] == "csr"
    mat, m = store.load_features(tmp_path)["relation"]
    assert isinstance(mat, np.ndarray) and mat.dtype == np.float32 and np.allclose(mat, dense)
    csr, m2 = store.load_features(tmp_path, dense=False)["relation"]
    assert isinstance(csr, sparse.csr_array) and csr.shape == (40, 7) and np.allclose(csr.toarray(), dense)
    assert np.array_equal(m, mask) and np.array_equal(m2, mask)
    assert store.check_features(tmp_path, 40) == {"relation": "ok"}
    # stored again dense: the csr files go, and dense=False gives the ndarray
    store.save_feature(tmp_path, "relation", dense, mask, storage="float16")
    assert not (d / "relation.indptr.npy").exists() and np.load(d / "relation.npy").dtype == np.float16
    mat, _ = store.load_feature(tmp_path, "relation", dense=False)
    assert isinstance(mat, np.ndarray) and mat.dtype == np.float32 and np.allclose(mat, dense, atol=1e-3)


def test_damaged_csr_is_named(tmp_path):
    dense = np.eye(5, dtype=np.float32)
    store.save_feature(tmp_path, "attribute", sparse.csr_array(dense), np.ones(5, bool))
    d = store.features_dir(tmp_path)
    np.save(d / "attribute.indptr.npy", np.array([0, 1, 2], np.int64))  # a row offset file for 2 rows, not 5
    with pytest.raises(InputError, match=r"attribute\.indptr\.npy: is \d+ bytes"):
        store.load_features(tmp_path)
    (d / "attribute.indices.npy").unlink()
    with pytest.raises(MissingResourceError, match="no 'attribute' features"):
        store.load_features(tmp_path)


def test_offsets_are_checked_against_the_rows(tmp_path):
    store.save_feature(tmp_path, "relation", sparse.csr_array(np.eye(4, dtype=np.float32)), np.ones(4, bool))
    manifest = json.loads((store.features_dir(tmp_path) / "manifest.json").read_text())
    manifest["relation"]["entities"] = 6  # a manifest from another dataset size
    (store.features_dir(tmp_path) / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="relation.mask.npy: expected a bool vector of shape"):
        store.load_feature(tmp_path, "relation")


def test_hashed_names_keep_misspellings_close():
    names = ["Cega Lujika", "Cegwa Lujika", "Wawuco Zefipu", None, "  ", "Bemico Jeridu"]
    mat, mask = hashed_ngrams(names, 256)
    assert mask.tolist() == [True, True, True, False, False, True]
    assert np.allclose(np.linalg.norm(mat[mask], axis=1), 1.0) and not mat[~mask].any()
    sim = mat @ mat.T
    assert sim[0, 1] > 0.6 and sim[0, 1] > sim[0, 2] + 0.4 and sim[0, 1] > sim[0, 5] + 0.4
    csr, smask = hashed_ngrams(names, 256, sparse=True)
    assert np.allclose(csr.toarray(), mat) and np.array_equal(mask, smask)
    again, _ = hashed_ngrams(names, 256)
    assert np.array_equal(again, mat)


def test_pipeline_compact_storage_loads_like_dense(dataset, tmp_path):
    import shutil

    dense_ds = tmp_path / "dense"
    shutil.copytree(dataset, dense_ds)
    mods = ["relation", "attribute", "numeric", "name"]
    compute_features(dataset, mods, FeatureOptions(sparse=True, name_model="hash"))
    compute_features(dense_ds, mods, FeatureOptions(sparse=False, name_model="hash"))
    manifest = store.read_manifest(dataset)
    storages = {k: v["storage"] for k, v in manifest.items()}
    assert storages == {"relation": "csr", "attribute": "csr", "name": "csr", "numeric": "float16", "numeric_present": "float16"}
    assert {v["storage"] for v in store.read_manifest(dense_ds).values()} == {"dense"}
    compact, plain = store.load_features(dataset), store.load_features(dense_ds)
    for name, (mat, mask) in plain.items():
        assert compact[name][0].dtype == np.float32 and np.array_equal(compact[name][1], mask)
        assert np.allclose(compact[name][0], mat, atol=1e-3), name
    again = compute_features(dataset, mods, FeatureOptions(sparse=True, name_model="hash"))
    assert {r["status"] for r in again["features"]} == {"reused"}
    # the storage is part of the fingerprint: asking for dense recomputes
    redo = compute_features(dataset, ["relation"], FeatureOptions(sparse=False))
    assert redo["features"][0]["status"] == "computed" and store.read_manifest(dataset)["relation"]["storage"] == "dense"
