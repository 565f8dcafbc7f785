"""Benchmark layout importers on excerpts of the real files (tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgalign.data.ingest import GraphSpec, IngestOptions, ingest, ingest_to
from kgalign.data.store import load_dataset
from kgalign.errors import InputError, MissingResourceError

DATA = Path(__file__).parent / "data"
PF = DATA / "mclea_db15k_fb15k"
ENFR = DATA / "mclea_en_fr"


def rows(path: Path) -> list[list[str]]:
    return [l.split("\t") for l in path.read_text(encoding="utf-8").splitlines()]


def test_mclea_pathfusion_keeps_ids_terms_and_values(tmp_path):
    ds, _ = ingest_to(IngestOptions(layouts=[("mclea", PF)], split="given"), tmp_path / "ds")
    ent = rows(PF / "ent_ids_1") + rows(PF / "ent_ids_2")
    # ids are the layout's ids; terms lose their angle brackets
    assert ds.entities == [t.strip("<>") for _, t in ent]
    assert [int(i) for i, _ in ent] == list(range(len(ent)))
    assert ds.kg1_size == len(rows(PF / "ent_ids_1"))
    c = ds.counts()
    assert c["kg1"]["relations"] == len(rows(PF / "rel_ids1")) and c["kg2"]["relations"] == len(rows(PF / "rel_ids2"))
    triples = {tuple(map(int, r)) for r in rows(PF / "triples_1")}
    assert c["kg1"]["relation_triples"] == len(triples)
    # relation ids of triples_1 map to rel_ids1 terms
    rel1 = {int(i): t.strip("<>") for i, t in rows(PF / "rel_ids1")}
    got = {(h, ds.relations[r], t) for h, r, t in ds.relation_triples.tolist()}
    assert got == {(h, rel1[r], t) for h, r, t in triples}
    assert ds.links.tolist() == [[int(a), int(b)] for a, b in rows(PF / "ref_ent_ids")]
    # PathFusion's sup/dev split files are used by --split given
    assert ds.counts()["links"]["train"] == len(rows(PF / "sup_ent_ids"))
    assert ds.counts()["links"]["test"] == len(rows(PF / "dev_ent_ids"))
    # attr: line i is entity i; DB15K entries carry a type tag, FB15K ones are plain numbers
    lines = (PF / "attr").read_text(encoding="utf-8").splitlines()
    n_entries = sum(len(l.split("^^^")) for l in lines if l)
    assert len(ds.attr_value) == n_entries
    first = next(i for i, l in enumerate(lines) if l)
    key, value, *tag = lines[first].split("^^^")[0].split("|||")
    hits = [j for j in range(len(ds.attr_value)) if ds.attr_entity[j] == first and ds.attributes[ds.attr_key[j]] == key]
    assert hits and ds.attr_value[hits[0]] == value and ds.attr_datatype[hits[0]] == (tag[0] if tag else "")
    assert len(ds.num_value) > 0.9 * n_entries
    again = load_dataset(tmp_path / "ds")
    assert again.entities == ds.entities and np.array_equal(again.relation_triples, ds.relation_triples)
    assert again.link_split == ds.link_split


def test_mclea_openea_conversion_shared_relations_and_attribute_keys():
    ds, _ = ingest(IngestOptions(layouts=[("mclea", ENFR)]))
    c = ds.counts()
    assert c["kg1"]["entities"] == len(rows(ENFR / "ent_ids_1")) and c["kg2"]["entities"] == len(rows(ENFR / "ent_ids_2"))
    assert c["kg1"]["relation_triples"] == len({tuple(r) for r in rows(ENFR / "triples_1")})
    assert c["kg2"]["relation_triples"] == len({tuple(r) for r in rows(ENFR / "triples_2")})
    # the shared rel_ids: each graph gets the relations it uses
    used1 = {r[1] for r in rows(ENFR / "triples_1")}
    used2 = {r[1] for r in rows(ENFR / "triples_2")}
    assert c["kg1"]["relations"] == len(used1) and c["kg2"]["relations"] == len(used2)
    assert c["links"]["total"] == len(rows(ENFR / "ill_ent_ids"))
    # training_attrs: keys only, one attribute triple per distinct (entity, key)
    want = {(r[0], k) for r in rows(ENFR / "training_attrs_1") for k in r[1:]}
    got = {
        (ds.entities[e], ds.attributes[a])
        for e, a in zip(ds.attr_entity.tolist(), ds.attr_key.tolist(), strict=False)
        if ds.entity_kg[e] == 1
    }
    assert got == want and set(ds.attr_value) == {""}


def test_openea_raw_layout_with_fold_and_attribute_values(tmp_path):
    import shutil

    root = tmp_path / "openea"
    shutil.copytree(DATA / "openea", root)
    e1 = rows(root / "rel_triples_1")[0][0]
    (root / "attr_triples_1").write_text(
        f"{e1}\thttp://dbpedia.org/ontology/areaTotal\t6480.0^^<http://www.w3.org/2001/XMLSchema#double>\n"
    )
    ds, _ = ingest(IngestOptions(layouts=[("openea", root)], split="given"))
    c = ds.counts()
    links = rows(root / "ent_links")
    assert c["links"]["total"] == len(links)
    for split in ("train", "valid", "test"):
        assert c["links"][split] == len(rows(root / "721_5fold" / "1" / f"{split}_links"))
    assert ds.num_value.tolist() == [6480.0]
    assert ds.manifest["split"]["openea_fold"] == 1
    # same graphs as the id conversion they were derived from
    conv, _ = ingest(IngestOptions(layouts=[("mclea", ENFR)]))

    def terms(d):
        return {(d.entities[h], d.relations[r], d.entities[t]) for h, r, t in d.relation_triples.tolist()}

    assert terms(ds) == terms(conv)
    assert set(ds.entities[: ds.kg1_size]) == set(conv.entities[: conv.kg1_size])


def test_mmkg_raw_files_link_direction_numeric_and_image_coverage():
    ds, rep = ingest(IngestOptions(layouts=[("mmkg", DATA / "mmkg")], mmkg_pair="DB15K-FB15K", split="legacy"))
    same = [l.split() for l in (DATA / "mmkg" / "DB15K" / "DB15K_SameAsLink.txt").read_text().splitlines()]
    # SameAsLink is "fb_mid <SameAs> <dbpedia>": KG1 is DB15K, so pairs are read the other way round
    assert [(ds.entities[a], ds.entities[b]) for a, b in ds.links.tolist()] == [(o.strip("<>"), s) for s, _, o, _ in same]
    assert set(ds.entity_kg[ds.links[:, 0]].tolist()) == {1}
    num = rows(DATA / "mmkg" / "FB15K" / "FB15K_NumericalTriples.txt")
    assert sorted(ds.num_value.tolist()) == sorted(float(v) for _, _, v in num)
    assert ds.attributes[ds.num_key[0]].startswith("http://rdf.freebase.com/ns/")
    cov = ds.manifest["mmkg_image_index"]
    assert cov["kg1"]["entities_with_image_id"] == len({r[0] for r in rows(DATA / "mmkg" / "DB15K" / "DB15K_ImageIndex.txt")})
    assert cov["kg2"]["image_ids_resolved"] == 0 and len(ds.image_source) == 0  # no image dir: counted, not stored


def test_mmkg_image_dir_resolves_ids_to_files(tmp_path):
    index = rows(DATA / "mmkg" / "FB15K" / "FB15K_ImageIndex.txt")
    (tmp_path / "FB15K").mkdir()
    for _, img in index[:5]:
        (tmp_path / "FB15K" / f"{img}.jpg").write_bytes(b"\xff\xd8")
    ds, _ = ingest(IngestOptions(layouts=[("mmkg", DATA / "mmkg")], mmkg_pair="DB15K-FB15K", mmkg_image_dir=str(tmp_path)))
    got = {ds.entities[e]: s for e, s in zip(ds.image_entity.tolist(), ds.image_source, strict=False)}
    assert got == {m: str(tmp_path / "FB15K" / f"{img}.jpg") for m, img in index[:5]}
    assert ds.manifest["mmkg_image_index"]["kg2"]["image_ids_without_file"] == len(index) - 5


def test_mmkg_yago_short_names_are_expanded():
    ds, _ = ingest(IngestOptions(layouts=[("mmkg", DATA / "mmkg")], mmkg_pair="YAGO15K-FB15K", lenient=True))
    short = rows(DATA / "mmkg" / "YAGO15K" / "YAGO15K_NumericalTriples.txt")[0][0].strip("<>")
    assert "http://yago-knowledge.org/resource/" + short in ds.entities
    assert ds.attributes[ds.num_key[0]] in {r[1].strip("<>") for r in rows(DATA / "mmkg" / "YAGO15K" / "YAGO15K_NumericalTriples.txt")}


def test_mmkg_needs_a_pair_when_ambiguous():
    with pytest.raises(InputError, match="--mmkg-pair"):
        ingest(IngestOptions(layouts=[("mmkg", DATA / "mmkg")]))


def test_openke_graph_input():
    ok = DATA / "openke_fb15k"
    ds, _ = ingest(IngestOptions(kg1=GraphSpec([f"tsv:{DATA / 'openea' / 'rel_triples_1'}"]), kg2=GraphSpec([f"openke:{ok}"])))
    ents = {int(i): m for m, i in rows(ok / "entity2id.txt")[1:]}
    rels = {int(i): r for r, i in rows(ok / "relation2id.txt")[1:]}
    want = set()
    for name in ("valid2id.txt", "test2id.txt"):
        for line in (ok / name).read_text().splitlines()[1:]:
            h, t, r = map(int, line.split())
            want.add((ents[h], rels[r], ents[t]))
    got = {(ds.entities[h], ds.relations[r], ds.entities[t]) for h, r, t in ds.relation_triples.tolist() if ds.entity_kg[h] == 2}
    assert got == want
    assert ds.kg2_size == len(ents)


def test_layouts_and_files_combine():
    """PathFusion triples + MMKB numeric values and links + FB15K names + OpenKE triples, one dataset."""
    opts = IngestOptions(
        layouts=[("mclea", PF), ("mmkg", DATA / "mmkg")],
        mmkg_pair="DB15K-FB15K",
        kg1=GraphSpec(names_from_iri=True),
        kg2=GraphSpec(names=[str(DATA / "fb15k_names.tsv")]),
        underscores_to_spaces=True,
        split="legacy",
        legacy_valid=0.1,
    )
    ds, rep = ingest(opts)
    pf_only, _ = ingest(IngestOptions(layouts=[("mclea", PF)]))
    assert ds.entities[: len(pf_only.entities)] == pf_only.entities  # layout ids kept; MMKB adds no new entities here
    assert ds.counts()["links"]["total"] == len(rows(PF / "ref_ent_ids"))  # same links from both sources, deduplicated
    assert any("duplicate" in w for w in rep["warnings"])
    assert ds.counts()["kg2"]["entities_with_name"] == len(rows(DATA / "fb15k_names.tsv"))
    assert ds.counts()["kg1"]["entities_with_name"] == ds.kg1_size
    mmkg_attrs = {r[1].strip("<>") for r in rows(DATA / "mmkg" / "FB15K" / "FB15K_NumericalTriples.txt")}
    assert mmkg_attrs <= set(ds.attributes)
    assert ds.manifest["split"]["legacy_valid"] == 0.1 and ds.counts()["links"]["valid"] == int(0.1 * len(ds.links))
    roles = {(s["role"], s.get("kg")) for s in ds.manifest["sources"]}
    assert ("names", 2) in roles and ("links", None) in roles
    assert all(len(s["sha256"]) == 64 for s in ds.manifest["sources"])


def test_missing_layout_pieces():
    with pytest.raises(MissingResourceError):
        ingest(IngestOptions(layouts=[("mclea", DATA / "openea")]))
    with pytest.raises(MissingResourceError):
        ingest(IngestOptions(layouts=[("openea", DATA / "nowhere")]))


def test_mclea_bad_id_names_file_and_line(tmp_path):
    import shutil

    root = tmp_path / "pf"
    shutil.copytree(PF, root)
    with open(root / "triples_1", "a") as f:
        f.write("0\t0\t999999\n")
    n = len(rows(root / "triples_1"))
    with pytest.raises(InputError) as exc:
        ingest(IngestOptions(layouts=[("mclea", root)]))
    assert exc.value.path == str(root / "triples_1") and exc.value.line == n and "999999" in str(exc.value)
