"""RDF and TSV readers: every format, compression, classification, bad-input messages."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest
import rdflib

from kgalign.data.ingest import GraphSpec, IngestOptions, ingest
from kgalign.data.terms import name_from_iri, numeric_value, split_tsv_literal
from kgalign.errors import InputError

DATA = Path(__file__).parent / "data"
RDF = DATA / "rdf"


def _content(ds):
    """Dataset content as term-level sets (blank node labels ignored: formats rename them)."""

    def term(i):
        t = ds.entities[i]
        return "_:" if t.startswith("_:") else t

    rel = {(term(h), ds.relations[r], term(t)) for h, r, t in ds.relation_triples.tolist()}
    # lexical forms of numbers may change between serializations (891.7 -> 8.917e+02); values are in num
    att = {
        (term(e), ds.attributes[a], d, l)
        for e, a, v, d, l in zip(ds.attr_entity.tolist(), ds.attr_key.tolist(), ds.attr_value, ds.attr_datatype, ds.attr_lang, strict=False)
    }
    num = {
        (term(e), ds.attributes[a], v) for e, a, v in zip(ds.num_entity.tolist(), ds.num_key.tolist(), ds.num_value.tolist(), strict=False)
    }
    names = {(term(e), n, l) for e, n, l in zip(ds.name_entity.tolist(), ds.name_text, ds.name_lang, strict=False)}
    imgs = {(term(e), s) for e, s in zip(ds.image_entity.tolist(), ds.image_source, strict=False)}
    return rel, att, num, names, imgs


def _ingest(kg1, **kw):
    opts = IngestOptions(kg1=GraphSpec([str(p) for p in kg1]), kg2=GraphSpec([str(RDF / "kg2.nt")]), links=[str(RDF / "links.tsv")], **kw)
    return ingest(opts)[0]


def test_turtle_is_sorted_into_every_kind():
    ds = _ingest([RDF / "kg1.ttl"])
    rel, att, num, names, imgs = _content(ds)
    ex = "http://example.org/kg1/"
    assert (ex + "Berlin", ex + "capitalOf", ex + "Germany") in rel
    assert (ex + "Berlin", ex + "partOf", "_:") in rel  # blank node object is an entity
    assert {
        (ex + "Berlin", "Berlin", "en"),
        (ex + "Berlin", "Berlin", "de"),
        (ex + "Germany", "Germany", "en"),
        (ex + "Paris", "Paris", ""),
        (ex + "France", "France", "en"),
    } <= names
    assert (ex + "Berlin", "http://img.example.org/berlin.jpg") in imgs
    assert (ex + "Germany", "/srv/images/germany flag.png") in imgs  # file: IRI -> local path
    assert (ex + "Paris", "https://img.example.org/paris.png") in imgs  # schema:image literal
    values = {a.rsplit("/", 1)[1]: v for _, a, v in num}
    assert values["population"] == 3645000.0
    assert values["founded"] == 1237.0
    assert values["anthemAdopted"] == pytest.approx(1952 + (31 + 29 + 31 + 30 + 5) / 366)
    assert values["gdp"] == 4.2e12 and values["lastCensus"] == 2019.0
    assert "note" not in values and "motto" not in values  # strings are attributes, not numbers
    assert (ex + "Germany", ex + "note", "http://www.w3.org/2001/XMLSchema#string", "") in att
    assert "not a number" in ds.attr_value
    assert ds.entity_kg.tolist() == [1] * 5 + [2] * 4
    assert ds.kg1_size == 5 and len(ds.links) == 4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib's own serializers, used to write the inputs
@pytest.mark.parametrize(
    "fmt,ext", [("nt", "nt"), ("xml", "rdf"), ("json-ld", "jsonld"), ("trig", "trig"), ("nquads", "nq"), ("turtle", "ttl")]
)
@pytest.mark.parametrize("comp", ["", ".gz", ".bz2", ".xz"])
def test_every_rdf_format_and_compression_reads_the_same(tmp_path, fmt, ext, comp):
    reference = _content(_ingest([RDF / "kg1.ttl"]))
    g = rdflib.Dataset() if fmt in ("trig", "nquads") else rdflib.Graph()
    target = g.graph(rdflib.URIRef("http://example.org/g")) if fmt in ("trig", "nquads") else g
    target.parse(RDF / "kg1.ttl", format="turtle")
    data = g.serialize(format=fmt, encoding="utf-8")
    opener = {"": open, ".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[comp]
    path = tmp_path / f"kg1.{ext}{comp}"
    with opener(path, "wb") as f:
        f.write(data)
    ds = _ingest([path])
    assert _content(ds) == reference
    src = next(s for s in ds.manifest["sources"] if s["path"] == str(path))
    import hashlib

    assert src["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_format_prefix_and_default_format(tmp_path):
    odd = tmp_path / "kg1.data"
    shutil.copy(RDF / "kg1.ttl", odd)
    ref = _content(_ingest([RDF / "kg1.ttl"]))
    assert _content(_ingest([f"ttl:{odd}"])) == ref
    assert _content(_ingest([odd], default_format="ttl")) == ref
    with pytest.raises(InputError, match="cannot tell the format"):
        _ingest([odd])


def test_tsv_relation_and_attribute_triples_from_real_openea_lines(tmp_path):
    attrs = tmp_path / "attr.tsv"
    en = [l.split("\t")[0] for l in (DATA / "openea" / "rel_triples_1").read_text().splitlines()[:3]]
    attrs.write_text(
        f"{en[0]}\thttp://dbpedia.org/ontology/areaTotal\t6480.0^^<http://www.w3.org/2001/XMLSchema#double>\n"
        f"{en[1]}\thttp://dbpedia.org/ontology/birthYear\t1948^^<http://www.w3.org/2001/XMLSchema#gYear>\n"
        f'{en[2]}\thttp://xmlns.com/foaf/0.1/name\t"Bryan Adams"@en\n'
        f"{en[2]}\thttp://dbpedia.org/ontology/height\t1.73\n"
        f"{en[2]}\thttp://dbpedia.org/ontology/motto\tplain words\n"
    )
    kg2 = DATA / "openea" / "rel_triples_2"
    opts = IngestOptions(
        kg1=GraphSpec([f"tsv:{DATA / 'openea' / 'rel_triples_1'}"], attributes=[str(attrs)]),
        kg2=GraphSpec([f"tsv:{kg2}"]),
        links=[f"tsv:{DATA / 'openea' / 'ent_links'}"],
        lenient=True,
    )
    ds, _ = ingest(opts)
    lines1 = {tuple(l.split("\t")) for l in (DATA / "openea" / "rel_triples_1").read_text().splitlines()}
    got = {(ds.entities[h], ds.relations[r], ds.entities[t]) for h, r, t in ds.relation_triples.tolist() if ds.entity_kg[h] == 1}
    assert got == lines1
    nums = {ds.attributes[a].rsplit("/", 1)[1]: v for a, v in zip(ds.num_key.tolist(), ds.num_value.tolist(), strict=False)}
    assert nums == {"areaTotal": 6480.0, "birthYear": 1948.0, "height": 1.73}  # plain TSV numbers count
    assert ("Bryan Adams", "en") in set(zip(ds.name_text, ds.name_lang, strict=False))  # foaf:name in TSV is a name


def test_images_tsv_relative_paths_are_resolved(tmp_path):
    (tmp_path / "img").mkdir()
    images = tmp_path / "images.tsv"
    images.write_text("http://example.org/kg1/Berlin\timg/berlin.jpg\nhttp://example.org/kg1/Paris\tfile:///data/p.png\n")
    opts = IngestOptions(kg1=GraphSpec([str(RDF / "kg1.ttl")], images=[str(images)]), kg2=GraphSpec([str(RDF / "kg2.nt")]))
    ds, rep = ingest(opts)
    src = set(ds.image_source)
    assert str(tmp_path / "img" / "berlin.jpg") in src and "/data/p.png" in src
    assert any("no reference links" in w for w in rep["warnings"])


def test_names_tsv_and_names_from_iri(tmp_path):
    names = tmp_path / "names.tsv"
    names.write_text("http://example.org/kg2/Q64\tBerlin_(city)\tde\n")
    opts = IngestOptions(
        kg1=GraphSpec([f"tsv:{DATA / 'openea' / 'rel_triples_1'}"], names_from_iri=True),
        kg2=GraphSpec([str(RDF / "kg2.nt")], names=[str(names)]),
        underscores_to_spaces=True,
    )
    ds, _ = ingest(opts)
    kg1_names = {ds.entities[e]: n for e, n in zip(ds.name_entity.tolist(), ds.name_text, strict=False) if ds.entity_kg[e] == 1}
    assert len(kg1_names) == ds.kg1_size  # every KG1 entity is an IRI, so every one got a name
    first = (DATA / "openea" / "rel_triples_1").read_text().split("\t", 1)[0]
    assert kg1_names[first] == name_from_iri(first) and "_" not in kg1_names[first]
    assert ("Berlin (city)", "de") in set(zip(ds.name_text, ds.name_lang, strict=False))
    assert name_from_iri("http://dbpedia.org/resource/Victor_Miller_(writer)") == "Victor Miller (writer)"
    assert name_from_iri("http://example.org/x#Caf%C3%A9_Noir") == "Café Noir"


def test_numeric_literal_forms():
    xsd = "http://www.w3.org/2001/XMLSchema#"
    assert numeric_value("42", xsd + "nonNegativeInteger") == 42.0
    assert numeric_value("1991-##-##", "date") == 1991.0  # YAGO unknown month/day
    assert numeric_value("197#-##-##", "date") == 1970.0 and numeric_value("15##-##-##", "date") == 1500.0
    assert numeric_value("1956-9-12", "date") == pytest.approx(1956 + (244 + 11) / 366)  # not zero-padded
    assert numeric_value("2011.75", "") is None and numeric_value("2011.75", "", plain_numbers=True) == 2011.75
    assert numeric_value("1905.0000", "degrees") == 1905.0  # PathFusion short tag
    assert numeric_value("NaN", xsd + "double") is None and numeric_value("abc", "integer") is None
    assert numeric_value("-0044", xsd + "gYear") == -44.0
    assert split_tsv_literal('"x y"@en-GB') == ("x y", "", "en-gb")
    assert split_tsv_literal("5^^<http://d/t>") == ("5", "http://d/t", "")
    assert split_tsv_literal('"a"^^<http://d/t>') == ("a", "http://d/t", "")


def _bad(tmp_path, name, text: bytes, **kw):
    p = tmp_path / name
    p.write_bytes(text)
    opts = IngestOptions(kg1=GraphSpec([str(p)]), kg2=GraphSpec([str(RDF / "kg2.nt")]), **kw)
    return p, opts


GOOD = b"<http://a/x> <http://a/p> <http://a/y> .\n"


@pytest.mark.parametrize(
    "name,text,line,problem",
    [
        ("g.nt", GOOD + GOOD + b"<http://a/x> <http://a/p> bad .\n" + GOOD, 3, "object"),
        ("g.nt.gz", gzip.compress(GOOD + b"<http://a/x> <http://a/p> .\n"), 2, ""),
        ("g.ttl", b'@prefix a: <http://a/> .\na:x a:p a:y .\na:x a:p "unterminated .\n', 3, ""),
        ("g.tsv", b"x\tp\ty\nx\tp\n", 2, "expected 3 tab-separated fields"),
        ("g.tsv", b"x\tp\ty\n\xff\xfe\tp\ty\n", 2, "UTF-8"),
        ("g.tsv", b"x\tp\ty\nx\t\ty\n", 2, "empty field"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, name, text, line, problem):
    p, opts = _bad(tmp_path, name, text)
    with pytest.raises(InputError) as exc:
        ingest(opts)
    assert exc.value.path == str(p) and exc.value.line == line
    assert str(exc.value).startswith(f"{p}:{line}: ") and problem in str(exc.value)


def test_lenient_skips_and_counts(tmp_path):
    p, opts = _bad(tmp_path, "g.nt", GOOD + b"junk\n" + GOOD.replace(b"y>", b"z>") + b"<x> .\n", lenient=True)
    ds, rep = ingest(opts)
    assert rep["skipped_lines"] == 2 and len(rep["first_skipped"]) == 2
    assert rep["first_skipped"][0].startswith(f"{p}:2: ")
    assert ds.counts()["kg1"]["relation_triples"] == 2
    assert ds.manifest["problems"]["skipped_by_file"] == {str(p): 2}


def test_corrupt_compressed_file(tmp_path):
    p, opts = _bad(tmp_path, "g.nt.gz", gzip.compress(GOOD * 50)[:40])
    with pytest.raises(InputError, match="cannot read the file"):
        ingest(opts)


def test_empty_graph_is_an_error(tmp_path):
    p, opts = _bad(tmp_path, "g.nt", b"# nothing here\n")
    with pytest.raises(InputError, match="KG1 is empty"):
        ingest(opts)


def test_rdfxml_error_has_a_line(tmp_path):
    p, opts = _bad(
        tmp_path,
        "g.rdf",
        b'<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n<broken\n</rdf:RDF>\n',
    )
    with pytest.raises(InputError) as exc:
        ingest(opts)
    assert exc.value.path == str(p) and exc.value.line is not None


def test_duplicate_relation_triples_are_dropped_and_counted(tmp_path):
    p, opts = _bad(tmp_path, "g.nt", GOOD * 3)
    ds, _ = ingest(opts)
    assert ds.counts()["kg1"]["relation_triples"] == 1
    assert ds.manifest["duplicates_dropped"]["relation_triples"]["kg1"] == 2
    assert np.array_equal(ds.relation_triples[0], [0, 0, 1])
