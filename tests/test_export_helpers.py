"""Shared fixtures for the evaluate/align/export tests: a tiny dataset and a RUN directory.

The embeddings are learnable by construction: the two ends of every link share a
random latent vector, plus noise; dangling entities get their own vectors.
Terms include blank nodes and IRIs with characters that need escaping.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kgalign.data.store import Dataset, load_dataset, write_dataset

ODD_KG1 = [
    "_:b1",
    "_:weird label!",
    "http://a.org/sp ace",
    'http://a.org/q"uote',
    "http://a.org/\u00fcml\u00e4ut",
    "http://a.org/back\\slash",
    "http://a.org/<angle>{brace}|pipe^caret`tick",
    "http://a.org/amp&lt",
    "urn:isbn:0451450523",
]
ODD_KG2 = ["_:c1", "http://b.org/\u65e5\u672c", "http://b.org/x%20y", "https://b.org/a#frag"]


def make_dataset(
    path: Path,
    *,
    n_links: int = 50,
    dangling1: int = 10,
    dangling2: int = 8,
    mids: bool = False,
    noise: float = 0.35,
    seed: int = 0,
    d: int = 16,
):
    """Write a dataset and return (dataset, embeddings (n, d) float32).

    KG1: link ends 0..n_links-1, then dangling. KG2: link ends, then dangling.
    Splits: 20 train, 5 valid, rest test (for n_links=50).
    """
    rng = np.random.default_rng(seed)
    n1 = n_links + dangling1
    n2 = n_links + dangling2
    kg1 = [f"http://a.org/e{i}" for i in range(n1)]
    kg2 = [(f"/m/0x{i}" if mids else f"http://b.org/f{i}") for i in range(n2)]
    kg1[: len(ODD_KG1)] = ODD_KG1
    if not mids:
        kg2[: len(ODD_KG2)] = ODD_KG2
    z = rng.normal(size=(n_links, d))
    e1 = np.concatenate([z + noise * rng.normal(size=z.shape), rng.normal(size=(dangling1, d))])
    e2 = np.concatenate([z + noise * rng.normal(size=z.shape), rng.normal(size=(dangling2, d))])
    links = np.stack([np.arange(n_links), n1 + np.arange(n_links)], 1)
    split = ["train"] * 20 + ["valid"] * 5 + ["test"] * (n_links - 25)
    ds = Dataset(
        entities=kg1 + kg2,
        entity_kg=np.array([1] * n1 + [2] * n2, np.int8),
        links=links.astype(np.int64),
        link_split=split,
        manifest={"sources": []},
    )
    write_dataset(ds, path)
    return load_dataset(path), np.concatenate([e1, e2]).astype(np.float32)


def make_run(tmp: Path, **kw) -> tuple[Path, Dataset, np.ndarray]:
    ds, emb = make_dataset(tmp / "ds", **kw)
    run = tmp / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": str((tmp / "ds").resolve()), "model": "test", "seed": 0}), encoding="utf-8")
    np.save(run / "embeddings.npy", emb)
    return run, ds, emb


def test_fixture_is_learnable(tmp_path):
    from kgalign.evaluation.ranking import evaluate_embeddings

    _, ds, emb = make_run(tmp_path)
    res = evaluate_embeddings(emb, ds.links_for("test"))
    assert res["cosine"]["l2r"]["hits@1"] > 0.8
    assert ds.entities[: len(ODD_KG1)] == ODD_KG1  # terms survive the store round trip
