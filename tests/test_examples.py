"""The bundled example (examples/): reproducible, well-formed, and learnable but not trivial."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
import rdflib
from PIL import Image

EX = Path(__file__).resolve().parents[1] / "examples"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SCHEMA_NAME = "http://schema.org/name"
KG1_IMG = "http://xmlns.com/foaf/0.1/depiction"
KG2_IMG = "http://schema.org/image"
KG2_URL = "http://127.0.0.1:8765/"


def _rows(path: Path, ncol: int) -> list[list[str]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(len(r) == ncol for r in rows), f"{path}: not {ncol} columns everywhere"
    return rows


@pytest.fixture(scope="module")
def links() -> list[tuple[str, str]]:
    return [(a, b) for a, b in _rows(EX / "links.tsv", 2)]


@pytest.fixture(scope="module")
def graphs() -> dict[str, rdflib.Graph]:
    out = {}
    for key in ("kg1", "kg2"):
        g = rdflib.Graph()
        g.parse(EX / f"{key}.ttl", format="turtle")  # base = the file's own location
        out[key] = g
    return out


def _entities(key: str) -> set[str]:
    ents = set()
    for h, _, t in _rows(EX / "tsv" / f"{key}_rel.tsv", 3):
        ents.update((h, t))
    ents.update(r[0] for r in _rows(EX / "tsv" / f"{key}_attr.tsv", 3))
    return ents


def _names(key: str) -> dict[str, str]:
    pred = RDFS_LABEL if key == "kg1" else SCHEMA_NAME
    return {e: v for e, p, v in _rows(EX / "tsv" / f"{key}_attr.tsv", 3) if p == pred}


def _images(key: str) -> dict[str, Path]:
    out = {}
    for e, src in _rows(EX / "tsv" / f"{key}_images.tsv", 2):
        if src.startswith(KG2_URL):
            out[e] = EX / src[len(KG2_URL) :]
        else:  # relative to the TSV file's own folder
            out[e] = (EX / "tsv" / src).resolve()
    return out


# ------------------------------------------------------------------ reproducible


def test_generator_reproduces_committed_files(tmp_path):
    subprocess.run([sys.executable, str(EX / "make_example.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(EX).as_posix()
        for p in EX.rglob("*")
        if p.is_file()
        and p.name not in ("README.md", "make_example.py")
        and not {"__pycache__", "out"} & set(p.relative_to(EX).parts)  # out/ is git-ignored scratch
    )
    assert made == committed
    for rel in made:
        new, old = tmp_path / rel, EX / rel
        if rel.endswith(".png"):
            # PNG bytes depend on the zlib build; the pixels must not.
            a, b = Image.open(new), Image.open(old)
            assert a.mode == b.mode and a.size == b.size, rel
            assert np.array_equal(np.asarray(a), np.asarray(b)), rel
        else:
            assert new.read_bytes() == old.read_bytes(), rel


def test_committed_size_is_small():
    total = sum(p.stat().st_size for p in EX.rglob("*") if p.is_file())
    assert total < 2_000_000


# ------------------------------------------------------------------ well-formed


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def test_turtle_matches_tsv(graphs):
    for key, g in graphs.items():
        rel = {tuple(r) for r in _rows(EX / "tsv" / f"{key}_rel.tsv", 3)}
        attr = {tuple(r) for r in _rows(EX / "tsv" / f"{key}_attr.tsv", 3)}
        img_pred = KG1_IMG if key == "kg1" else KG2_IMG
        ttl_rel, ttl_attr, ttl_img = set(), set(), set()
        for s, p, o in g:
            if str(p) == img_pred:
                ttl_img.add((str(s), str(o)))
            elif isinstance(o, rdflib.URIRef):
                ttl_rel.add((str(s), str(p), str(o)))
            else:
                ttl_attr.add((str(s), str(p), str(o)))
        assert ttl_rel == rel
        # rdflib normalises numeric lexical forms (1.13E7 -> 11300000.0): compare values.
        assert {(s, p, _value(v)) for s, p, v in ttl_attr} == {(s, p, _value(v)) for s, p, v in attr}
        assert len(ttl_attr) == len(attr)
        assert len(ttl_img) == len(_rows(EX / "tsv" / f"{key}_images.tsv", 2))


def test_kg1_image_iris_resolve_to_files(graphs):
    imgs = [o for o in graphs["kg1"].objects(None, rdflib.URIRef(KG1_IMG))]
    assert imgs and all(str(o).startswith("file:") for o in imgs)
    for o in imgs:
        path = Path(url2pathname(urlparse(str(o)).path))
        assert path.is_file(), o
        assert path.parent == EX / "images" / "kg1"
    kg2 = [str(o) for o in graphs["kg2"].objects(None, rdflib.URIRef(KG2_IMG))]
    assert kg2 and all(u.startswith(KG2_URL + "images/kg2/") for u in kg2)
    assert all((EX / u[len(KG2_URL) :]).is_file() for u in kg2)


def test_literals_are_typed(graphs):
    dts = Counter(
        str(o.datatype).rsplit("#", 1)[1] for g in graphs.values() for o in g.objects() if isinstance(o, rdflib.Literal) and o.datatype
    )
    for dt in ("integer", "decimal", "double", "date", "gYear"):
        assert dts[dt] > 0, dt
    langs = {o.language for g in graphs.values() for o in g.objects() if isinstance(o, rdflib.Literal) and o.language}
    assert {"en", "fr"} <= langs
    # No typed literal is invalid for its datatype (rdflib knows all but gYear).
    for g in graphs.values():
        for o in g.objects():
            if isinstance(o, rdflib.Literal) and o.datatype:
                assert o.ill_typed is not True, o
                if str(o.datatype).endswith("gYear"):
                    assert len(str(o)) == 4 and str(o).isdigit(), o


def test_image_sources_follow_the_documented_forms():
    kg1 = [src for _, src in _rows(EX / "tsv" / "kg1_images.tsv", 2)]
    assert all(src.startswith("../images/kg1/") and src.endswith(".png") for src in kg1)
    kg2 = [src for _, src in _rows(EX / "tsv" / "kg2_images.tsv", 2)]
    assert all(src.startswith(KG2_URL + "images/kg2/") for src in kg2)
    for path in list(_images("kg1").values()) + list(_images("kg2").values()):
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (32, 32)


def test_readme_counts_match_stats():
    stats = json.loads((EX / "stats.json").read_text())
    readme = (EX / "README.md").read_text()
    for key in ("kg1", "kg2"):
        for field in ("entities", "relation_triples", "attribute_triples", "images", "dangling"):
            assert f"{stats[key][field]:,}" in readme, (key, field)
    assert f"{stats['world_edges']:,} latent edges" in readme


def test_links_one_to_one_between_existing_entities(links):
    e1, e2 = _entities("kg1"), _entities("kg2")
    assert len({a for a, _ in links}) == len(links) == len({b for _, b in links})
    assert all(a in e1 and b in e2 for a, b in links)
    nt = (EX / "links.nt").read_text().splitlines()
    assert nt == [f"<{a}> <http://www.w3.org/2002/07/owl#sameAs> <{b}> ." for a, b in links]


def test_recipe_properties(links):
    stats = json.loads((EX / "stats.json").read_text())
    assert stats["links"] == len(links) >= 250
    for key in ("kg1", "kg2"):
        ents = _entities(key)
        assert stats[key]["entities"] == len(ents)
        dangling = len(ents) - len(links)
        assert 25 <= dangling <= 50
        frac_img = len(_images(key)) / len(ents)
        assert 0.72 <= frac_img <= 0.83, frac_img
        assert all(p.is_file() for p in _images(key).values())
        rel = _rows(EX / "tsv" / f"{key}_rel.tsv", 3)
        assert 5.5 <= 2 * len(rel) / len(ents) <= 9.0
        names = _names(key)
        assert 0.8 < len(names) / len(ents) < 1.0  # some names are missing
    # Different relation vocabularies and IRI namespaces.
    r1 = {r[1] for r in _rows(EX / "tsv" / "kg1_rel.tsv", 3)}
    r2 = {r[1] for r in _rows(EX / "tsv" / "kg2_rel.tsv", 3)}
    assert not r1 & r2 and len(r2) < len(r1)  # KG2 merges some relations
    assert all(a.startswith("http://kg1.example.org/") and b.startswith("http://kg2.example.org/") for a, b in links)


# ------------------------------------------------------------------ learnable, not trivial


def test_exact_names_align_well_under_60_percent(links):
    n1, n2 = _names("kg1"), _names("kg2")
    equal = sum(1 for a, b in links if a in n1 and n1[a] == n2.get(b))
    assert equal / len(links) < 0.6
    assert equal / len(links) > 0.2  # but names are still a real signal


def _pixels(path: Path) -> np.ndarray:
    img = Image.open(path).convert("RGB").resize((8, 8), Image.Resampling.BOX)
    v = np.asarray(img, dtype=np.float64).ravel()
    v = v - v.mean()
    return v / (np.linalg.norm(v) + 1e-9)


def image_baseline_hits1(links) -> tuple[float, float]:
    """Hits@1 of pixel-vector cosine nearest neighbour, and the chance level."""
    i1, i2 = _images("kg1"), _images("kg2")
    cand = sorted(i2)
    m2 = np.stack([_pixels(i2[e]) for e in cand])
    pairs = [(a, b) for a, b in links if a in i1 and b in i2]
    m1 = np.stack([_pixels(i1[a]) for a, _ in pairs])
    best = (m1 @ m2.T).argmax(1)
    hits = np.mean([cand[j] == b for j, (_, b) in zip(best, pairs, strict=False)])
    return float(hits), 1.0 / len(cand)


def test_image_baseline_far_above_chance(links):
    hits, chance = image_baseline_hits1(links)
    assert hits > 10 * chance
    assert hits < 0.95  # and images alone do not solve it


def structure_baseline_hits1(links, seed_frac: float = 0.3) -> tuple[float, float]:
    """Hits@1 of counting aligned neighbours given a random 30 % of the links as seeds."""

    def neighbours(key):
        d: dict[str, set[str]] = {}
        for h, _, t in _rows(EX / "tsv" / f"{key}_rel.tsv", 3):
            d.setdefault(h, set()).add(t)
            d.setdefault(t, set()).add(h)
        return d

    nb1, nb2 = neighbours("kg1"), neighbours("kg2")
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(links))
    n_seed = int(seed_frac * len(links))
    seeds = dict(links[i] for i in perm[:n_seed])
    cand = sorted(_entities("kg2"))
    col = {e: j for j, e in enumerate(cand)}
    hits = []
    for i in perm[n_seed:]:
        a, b = links[i]
        score = np.zeros(len(cand))
        for x in nb1.get(a, ()):
            for y in nb2.get(seeds.get(x), ()):
                score[col[y]] += 1
        score += 1e-6 * rng.random(len(cand))  # random tie-breaking
        hits.append(cand[int(score.argmax())] == b)
    return float(np.mean(hits)), 1.0 / len(cand)


def test_structure_baseline_far_above_chance(links):
    hits, chance = structure_baseline_hits1(links)
    assert hits > 10 * chance
    assert hits < 0.8
