"""Property-based checks: exports round-trip arbitrary terms (blank nodes of both graphs stay apart),
typed literals are numbers or counted as ill-typed, a BOM never changes what is read, datasets round-trip."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import rdflib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgalign.data.builder import GraphBuilder
from kgalign.data.sources import Problems, Source
from kgalign.data.store import Dataset, load_dataset, write_dataset
from kgalign.data.terms import XSD
from kgalign.data.tsv import read_attribute_triples
from kgalign.evaluation.linkset import read_links
from kgalign.export.exporting import write_links
from kgalign.export.predictions import LinkTable
from kgalign.export.writers import ExportOptions

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # any character but lone surrogates
LABEL = st.one_of(st.sampled_from(["b0", "b1", "x", "k1bb0", "kgx00"]), TEXT)
IRI = st.builds(lambda scheme, rest: f"{scheme}:{rest}", st.sampled_from(["http", "urn", "https"]), TEXT)


def term(side_iri):
    return st.one_of(side_iri, st.builds(lambda label: "_:" + label, LABEL))


@SETTINGS
@given(
    pairs=st.lists(st.tuples(term(IRI), term(IRI)), min_size=1, max_size=8, unique=True),
    fmt=st.sampled_from(["nt", "ttl", "tsv", "jsonl"]),
)
def test_exports_round_trip_any_terms(pairs, fmt):
    table = LinkTable([a for a, _ in pairs], [b for _, b in pairs], [0.5] * len(pairs), ["accepted"] * len(pairs))
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / f"links.{fmt}"
        write_links(table, fmt, ExportOptions(), out=out)
        back = read_links(out, fmt)
        assert sorted(zip(back.kg1, back.kg2, strict=True)) == sorted(pairs)


@SETTINGS
@given(labels=st.lists(LABEL, min_size=1, max_size=6, unique=True))
def test_same_blank_node_label_in_both_graphs_stays_two_nodes(labels):
    """KG1's _:b0 and KG2's _:b0 are different nodes: a parser must see 2 x len(labels) blank nodes."""
    kg1 = ["_:" + x for x in labels]
    table = LinkTable(kg1, list(kg1), [1.0] * len(kg1), ["accepted"] * len(kg1))
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "links.nt"
        write_links(table, "nt", ExportOptions(), out=out)
        g = rdflib.Graph()
        g.parse(out, format="nt")
        subjects, objects = {s for s, _, _ in g}, {o for _, _, o in g}
        assert len(subjects) == len(objects) == len(labels)
        assert not subjects & objects


@SETTINGS
@given(lexical=TEXT, local=st.sampled_from(["integer", "double", "decimal", "gYear", "date", "nonNegativeInteger"]))
def test_a_typed_literal_is_a_number_or_counted_as_ill_typed(lexical, local):
    g = GraphBuilder(1)
    g.add_attribute("http://a.org/e", "http://a.org/p", lexical, XSD + local)
    assert not (g.num_rows and g.ill_typed)
    if not g.num_rows and not g.ill_typed:  # only well-typed values that are not finite numbers
        text = lexical.strip()
        assert text in ("INF", "+INF", "-INF", "NaN") or not math.isfinite(float(text))


def test_special_doubles_are_well_typed():
    g = GraphBuilder(1)
    for i, v in enumerate(["INF", "-INF", "NaN", "1e999"]):
        g.add_attribute("http://a.org/e", f"http://a.org/p{i}", v, XSD + "double")
    assert g.ill_typed == 0 and not g.num_rows
    g.add_attribute("http://a.org/e", "http://a.org/q", "INF", XSD + "integer")
    assert g.ill_typed == 1


@SETTINGS
@given(rows=st.lists(st.tuples(TEXT, TEXT, TEXT), max_size=6))
def test_a_bom_never_changes_what_a_tsv_reads(rows):
    clean = [tuple(f.replace("\t", " ").replace("\n", " ").replace("\r", " ").strip() or "x" for f in r) for r in rows]
    body = "".join("\t".join(r) + "\n" for r in clean).encode("utf-8")
    with tempfile.TemporaryDirectory() as d:
        plain, bom = Path(d) / "a.tsv", Path(d) / "b.tsv"
        plain.write_bytes(body)
        bom.write_bytes(b"\xef\xbb\xbf" + body)
        a = list(read_attribute_triples(Source(str(plain)), Problems(lenient=True)))
        b = list(read_attribute_triples(Source(str(bom)), Problems(lenient=True)))
        assert a == b


@SETTINGS
@given(terms=st.lists(st.one_of(IRI, st.builds(lambda x: "_:" + x, LABEL), TEXT.filter(bool)), min_size=2, max_size=8, unique=True))
def test_datasets_round_trip_any_terms_with_their_checksums(terms):
    n1 = len(terms) // 2
    ds = Dataset(
        entities=terms,
        entity_kg=np.array([1] * n1 + [2] * (len(terms) - n1), np.int8),
        name_entity=np.arange(len(terms), dtype=np.int64),
        name_text=list(reversed(terms)),
        name_lang=[""] * len(terms),
        links=np.array([[0, n1]], np.int64),
        link_split=["train"],
        manifest={"sources": []},
    )
    with tempfile.TemporaryDirectory() as d:
        write_dataset(ds, Path(d) / "ds")
        back = load_dataset(Path(d) / "ds", checksums=True)
        assert back.entities == terms and back.name_text == list(reversed(terms))
