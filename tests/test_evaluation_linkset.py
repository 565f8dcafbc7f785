"""Precision / recall / F1 of a link file: hand-worked values, counting policies, readers."""

import numpy as np
import pytest

from kgalign.data.store import Dataset, write_dataset
from kgalign.errors import InputError
from kgalign.evaluation.api import evaluate_link_file
from kgalign.evaluation.linkset import read_links

A = [f"http://a.org/{i}" for i in range(5)]
B = [f"http://b.org/{i}" for i in range(6)]


@pytest.fixture()
def ds(tmp_path):
    """a0-b0 train; a1-b1, a2-b2, a3-b3 test; a4-b4 valid; b5 dangling."""
    d = Dataset(
        entities=A + B,
        entity_kg=np.array([1] * 5 + [2] * 6, np.int8),
        links=np.array([[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]], np.int64),
        link_split=["train", "test", "test", "test", "valid"],
    )
    write_dataset(d, tmp_path / "ds")
    return tmp_path / "ds"


PRED = [
    (A[0], B[0], 0.9),  # a training link: ignored
    (A[1], B[1], 0.8),  # true
    (A[2], B[3], 0.7),  # wrong, about gold entities
    (A[4], B[4], 0.6),  # about valid entities only: outside the test links
    (A[1], B[1], 0.5),  # duplicate: counted once (best score kept)
    ("http://x.org/unknown", B[2], 0.4),  # unknown KG1 term, gold KG2 entity: wrong
    (A[3], B[5], 0.3),  # wrong
]


def _write_tsv(path, rows, header=True):
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write("kg1\tkg2\tscore\tstatus\n")
        f.writelines(f"{a}\t{b}\t{s}\taccepted\n" for a, b, s in rows)


def test_hand_worked_precision_recall_f1(ds, tmp_path):
    _write_tsv(tmp_path / "p.tsv", PRED)
    r = evaluate_link_file(tmp_path / "p.tsv", dataset=ds)
    # counted: (a1,b1) (a2,b3) (x,b2) (a3,b5) -> 4, one true; gold 3
    assert (r["true_positives"], r["counted"], r["gold"]) == (1, 4, 3)
    assert r["precision"] == pytest.approx(0.25) and r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))
    assert (r["seeds_ignored"], r["outside"], r["unknown_terms"], r["pairs_in_file"]) == (1, 1, 1, 7)
    r = evaluate_link_file(tmp_path / "p.tsv", dataset=ds, count="all")
    assert (r["true_positives"], r["counted"]) == (1, 5) and r["precision"] == pytest.approx(0.2)
    assert r["f1"] == pytest.approx(0.25)
    r = evaluate_link_file(tmp_path / "p.tsv", dataset=ds, split="valid")
    # gold = {a4-b4}: counted pairs touch a4 or b4 -> just (a4,b4), which is right
    assert (r["true_positives"], r["counted"], r["gold"]) == (1, 1, 1) and r["f1"] == 1.0


def test_threshold_sweep_by_hand(ds, tmp_path):
    _write_tsv(tmp_path / "p.tsv", PRED)
    r = evaluate_link_file(tmp_path / "p.tsv", dataset=ds, thresholds=[0.35, 0.75, 0.95])
    s = {row["threshold"]: row for row in r["sweep"]}
    assert (s[0.35]["counted"], s[0.35]["true_positives"]) == (3, 1)
    assert s[0.75]["precision"] == 1.0 and s[0.75]["recall"] == pytest.approx(1 / 3) and s[0.75]["f1"] == pytest.approx(0.5)
    assert s[0.95]["counted"] == 0 and s[0.95]["precision"] == 0.0


def test_readers_agree_across_formats(tmp_path):
    _write_tsv(tmp_path / "noheader.tsv", PRED[:2], header=False)
    assert read_links(tmp_path / "noheader.tsv").kg1 == [A[0], A[1]]
    # AML writes the alignment namespace without '#'
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns="http://knowledgeweb.semanticweb.org/heterogeneity/alignment"
         xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<Alignment><map><Cell><entity1 rdf:resource="{A[1]}"/><entity2 rdf:resource="{B[1]}"/>
<measure rdf:datatype="http://www.w3.org/2001/XMLSchema#float">0.7</measure><relation>=</relation></Cell></map></Alignment></rdf:RDF>
"""
    (tmp_path / "aml.rdf").write_text(xml, encoding="utf-8")
    ls = read_links(tmp_path / "aml.rdf")
    assert (ls.kg1, ls.kg2, ls.score) == ([A[1]], [B[1]], [pytest.approx(0.7)])
    # general Turtle (not one triple per line) goes through rdflib
    ttl = (
        "@prefix a: <http://a.org/> .\n@prefix b: <http://b.org/> .\n"
        "a:1 <http://www.w3.org/2002/07/owl#sameAs> b:1 ;\n  <http://x/p> b:2 .\n"
    )
    (tmp_path / "x.ttl").write_text(ttl, encoding="utf-8")
    ls = read_links(tmp_path / "x.ttl")
    assert sorted(zip(ls.kg1, ls.kg2, strict=False)) == [(A[1], B[1]), (A[1], B[2])]
    (tmp_path / "bad.sssom.tsv").write_text("# curie_map: {}\nsubject_id\tobject\n", encoding="utf-8")
    with pytest.raises(InputError, match="object_id"):
        read_links(tmp_path / "bad.sssom.tsv")
    with pytest.raises(InputError, match="--links-format"):
        read_links(tmp_path / "aml.rdf.gz") if (tmp_path / "aml.rdf.gz").write_text("x") else None
    (tmp_path / "bad.tsv").write_text("a\tb\tnot-a-number\n", encoding="utf-8")
    with pytest.raises(InputError, match="bad.tsv:1: score"):
        read_links(tmp_path / "bad.tsv")


def test_needs_a_dataset(tmp_path):
    _write_tsv(tmp_path / "p.tsv", PRED)
    with pytest.raises(InputError, match="RUN directory or --dataset"):
        evaluate_link_file(tmp_path / "p.tsv")


def test_sweep_with_nothing_counted_and_without_scores(ds, tmp_path):
    _write_tsv(tmp_path / "seeds.tsv", [PRED[0]])  # only a training link: nothing counted, scores present
    r = evaluate_link_file(tmp_path / "seeds.tsv", dataset=ds, thresholds=[0.5])
    assert r["sweep"][0]["counted"] == 0 and r["precision"] == 0.0
    (tmp_path / "plain.tsv").write_text(f"{A[1]}\t{B[1]}\n", encoding="utf-8")
    with pytest.raises(InputError, match="no scores"):
        evaluate_link_file(tmp_path / "plain.tsv", dataset=ds, thresholds=[0.5])
    assert evaluate_link_file(tmp_path / "plain.tsv", dataset=ds)["true_positives"] == 1
