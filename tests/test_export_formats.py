"""Every export format is parsed back and holds exactly the expected pairs, IRIs and scores."""

import io
import json
import math

import pytest
import rdflib
import yaml
from test_export_helpers import ODD_KG1, ODD_KG2, make_run

from kgalign.errors import InputError
from kgalign.evaluation.linkset import read_links
from kgalign.export.api import align_run, export_links
from kgalign.export.exporting import write_links
from kgalign.export.predictions import LinkTable, format_score, read_predictions
from kgalign.export.rdfterms import TermPolicy, expand_predicate, nt_bnode, nt_iri
from kgalign.export.writers import ExportOptions, sssom_prefixes

OWL_SAME = "http://www.w3.org/2002/07/owl#sameAs"
SKOS_EXACT = "http://www.w3.org/2004/02/skos/core#exactMatch"
ALIGN = "http://knowledgeweb.semanticweb.org/heterogeneity/alignment#"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fmt")
    run, ds, _ = make_run(tmp)
    align_run(run)
    return run


@pytest.fixture(scope="module")
def table(run):
    return read_predictions(run / "predictions.tsv").select({"accepted", "seed"}).sorted()


def _odd_table():
    """Hand-made pairs over every odd term (blank nodes included), with varied scores."""
    kg2 = ODD_KG2 + ["http://b.org/f%d" % i for i in range(len(ODD_KG1) - len(ODD_KG2))]
    scores = [1.25, 0.999999, 0.5, 0.0, -0.3, 0.123456, 0.75, 0.3333333, 0.9]
    return LinkTable(list(ODD_KG1), kg2, scores, ["accepted"] * len(ODD_KG1)).sorted()


def _no_bnodes(t: LinkTable) -> LinkTable:
    keep = [i for i, (a, b) in enumerate(zip(t.kg1, t.kg2, strict=False)) if not a.startswith("_:") and not b.startswith("_:")]
    return LinkTable([t.kg1[i] for i in keep], [t.kg2[i] for i in keep], [t.score[i] for i in keep], [t.status[i] for i in keep])


def _term(x):
    return f"_:{x}" if isinstance(x, rdflib.BNode) else str(x)


@pytest.mark.parametrize("fmt,rdf_format", [("nt", "nt"), ("ttl", "turtle")])
@pytest.mark.parametrize("predicate", ["owl:sameAs", "skos:exactMatch", "<http://example.org/p#close>"])
def test_nt_ttl_parse_back_exactly(tmp_path, fmt, rdf_format, predicate):
    t = _odd_table()
    out = tmp_path / f"links.{fmt}"
    write_links(t, fmt, ExportOptions(predicate=expand_predicate(predicate)), out=out)
    g = rdflib.Graph()
    g.parse(out, format=rdf_format)
    assert len(g) == len(t)
    preds = {str(p) for _, p, _ in g}
    assert preds == {expand_predicate(predicate)}
    iri_pairs = {(str(s), str(o)) for s, _, o in g if not isinstance(s, rdflib.BNode) and not isinstance(o, rdflib.BNode)}
    assert iri_pairs == {(a, b) for a, b in zip(t.kg1, t.kg2, strict=False) if not a.startswith("_:") and not b.startswith("_:")}
    # blank nodes stay blank nodes (rdflib relabels them), in the expected positions
    assert sum(isinstance(s, rdflib.BNode) for s, _, _ in g) == sum(a.startswith("_:") for a in t.kg1)
    assert sum(isinstance(o, rdflib.BNode) for _, _, o in g) == sum(b.startswith("_:") for b in t.kg2)
    # kgalign's own reader keeps the labels, including the re-encoded one
    back = read_links(out, fmt)
    assert sorted(zip(back.kg1, back.kg2, strict=False)) == sorted(zip(t.kg1, t.kg2, strict=False))


def test_nt_escaping_rules():
    assert nt_iri("http://a.org/x") == "<http://a.org/x>"
    assert nt_iri('http://a/ b"<>{}|^`\\') == "<http://a/\\u0020b\\u0022\\u003C\\u003E\\u007B\\u007D\\u007C\\u005E\\u0060\\u005C>"
    assert nt_iri("http://a/\u00fc\u65e5") == "<http://a/\u00fc\u65e5>"  # non-ASCII stays UTF-8
    assert nt_bnode("b1", 1) == "_:k1bb1" and nt_bnode("a.b", 2) == "_:k2ba.b"
    assert nt_bnode("weird label!", 1) == "_:k1x" + "weird label!".encode().hex()
    assert nt_bnode("ends.", 2) == "_:k2x" + b"ends.".hex()


def test_tsv_and_jsonl_parse_back(tmp_path, table):
    for fmt in ("tsv", "jsonl"):
        out = tmp_path / f"x.{fmt}"
        write_links(table, fmt, ExportOptions(), out=out)
        if fmt == "tsv":
            back = read_predictions(out)
            assert (back.kg1, back.kg2, back.status) == (table.kg1, table.kg2, table.status)
            assert [format_score(x) for x in back.score] == [format_score(x) for x in table.score]
        else:
            rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
            assert [(r["kg1"], r["kg2"], r["status"], r["predicate"]) for r in rows] == [
                (a, b, s, OWL_SAME) for a, b, s in zip(table.kg1, table.kg2, table.status, strict=False)
            ]
            assert [r["score"] for r in rows] == [float(format_score(x)) for x in table.score]


def test_alignment_rdfxml_parse_back(tmp_path):
    t = _no_bnodes(_odd_table())
    out = tmp_path / "links.rdf"
    write_links(t, "alignment", ExportOptions(), out=out)
    g = rdflib.Graph()
    g.parse(out, format="xml")
    A = rdflib.Namespace(ALIGN)
    (aln,) = list(g.subjects(rdflib.RDF.type, A.Alignment))
    assert str(g.value(aln, A.level)) == "0" and str(g.value(aln, A.type)) == "??"
    cells = list(g.objects(aln, A.map))
    got = {}
    for c in cells:
        assert str(g.value(c, A.relation)) == "="
        m = g.value(c, A.measure)
        assert m.datatype == rdflib.XSD.float
        got[(str(g.value(c, A.entity1)), str(g.value(c, A.entity2)))] = float(m)
    expect = {(a, b): min(1.0, max(0.0, s)) for a, b, s in zip(t.kg1, t.kg2, t.score, strict=False)}
    assert got.keys() == expect.keys()
    for k, v in expect.items():
        assert got[k] == pytest.approx(v, abs=1e-6)


def _parse_sssom(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    head = [x[1:] for x in lines if x.startswith("#")]
    meta = yaml.safe_load("\n".join(head))
    body = [x for x in lines if x and not x.startswith("#")]
    cols = body[0].split("\t")
    rows = [dict(zip(cols, r.split("\t"), strict=False)) for r in body[1:]]
    assert all(len(r.split("\t")) == len(cols) for r in body[1:])
    return meta, cols, rows


def test_sssom_header_columns_and_values(tmp_path):
    t = _no_bnodes(_odd_table())
    out = tmp_path / "links.sssom.tsv"
    opt = ExportOptions(predicate=SKOS_EXACT, similarity="csls(k=3)", mapping_set_id="https://example.org/set/1")
    write_links(t, "sssom", opt, out=out)
    meta, cols, rows = _parse_sssom(out)
    for key in ("curie_map", "mapping_set_id", "license", "mapping_tool", "mapping_date"):
        assert key in meta
    assert meta["mapping_set_id"] == "https://example.org/set/1"
    for c in ("subject_id", "predicate_id", "object_id", "mapping_justification", "confidence"):
        assert c in cols
    cmap = meta["curie_map"]

    def expand(x):
        p, _, local = x.partition(":")
        return cmap[p] + local if p in cmap and not local.startswith("//") else x

    assert [(expand(r["subject_id"]), expand(r["object_id"])) for r in rows] == list(zip(t.kg1, t.kg2, strict=False))
    assert {expand(r["predicate_id"]) for r in rows} == {SKOS_EXACT}
    assert {r["mapping_justification"] for r in rows} == {"semapv:SemanticSimilarityThresholdMatching"}
    assert cmap["semapv"] == "https://w3id.org/semapv/vocab/"
    for r, s in zip(rows, t.score, strict=False):
        assert float(r["similarity_score"]) == pytest.approx(s, abs=1e-6)
        assert float(r["confidence"]) == pytest.approx(min(1.0, max(0.0, s)), abs=1e-6)
        assert r["similarity_measure"] == "csls(k=3)"
    back = read_links(out)  # kgalign's reader expands CURIEs the same way
    assert list(zip(back.kg1, back.kg2, strict=False)) == list(zip(t.kg1, t.kg2, strict=False))


def test_sssom_prefixes_are_deterministic_and_known_ones_reused():
    t = LinkTable(
        ["http://dbpedia.org/ontology/x", "http://a.org/1", "http://c.org/z#q"], ["http://b.org/1"] * 3, [0.5] * 3, ["accepted"] * 3
    )
    cmap = sssom_prefixes(t, ExportOptions())
    assert cmap["dbo"] == "http://dbpedia.org/ontology/"
    assert cmap["kg1"] == "http://a.org/" and cmap["kg1_2"] == "http://c.org/z#" and cmap["kg2"] == "http://b.org/"


@pytest.mark.parametrize("fmt", ["alignment", "sssom"])
def test_blank_nodes_refused_where_the_format_cannot_hold_them(tmp_path, fmt):
    out = tmp_path / "x"
    with pytest.raises(InputError, match="blank node"):
        write_links(_odd_table(), fmt, ExportOptions(), out=out)
    assert not out.exists()


def test_plain_identifiers_need_a_base(tmp_path):
    run, ds, _ = make_run(tmp_path, mids=True)
    align_run(run)
    buf = io.StringIO()
    with pytest.raises(InputError, match="--base-kg2"):
        export_links(run=run, fmt="nt", stream=buf)
    assert buf.getvalue() == ""  # checked before the first byte
    out = tmp_path / "links.nt"
    export_links(run=run, fmt="nt", base_kg2="http://rdf.freebase.com/ns", output=out)
    g = rdflib.Graph()
    g.parse(out, format="nt")
    objs = {str(o) for o in g.objects()}
    assert objs and all(o.startswith("http://rdf.freebase.com/ns/m/0x") for o in objs)
    back = read_links(out, base_kg2="http://rdf.freebase.com/ns")
    assert all(b.startswith("/m/0x") for b in back.kg2)
    # TSV needs no IRIs: terms as ingested
    buf = io.StringIO()
    export_links(run=run, fmt="tsv", stream=buf)
    assert "\t/m/0x" in buf.getvalue()
    with pytest.raises(InputError, match="not an absolute IRI"):
        TermPolicy(2, "rdf.freebase.com/ns")


def test_xml_control_characters_and_tabs(tmp_path):
    t = LinkTable(["http://a.org/x\ty"], ["http://b.org/z\u0001"], [0.5], ["accepted"])
    with pytest.raises(InputError, match="XML 1.0"):
        write_links(t, "alignment", ExportOptions(), out=tmp_path / "a.rdf")
    with pytest.raises(InputError, match="tab or line break"):
        write_links(t, "sssom", ExportOptions(), out=tmp_path / "a.sssom.tsv")
    write_links(t, "nt", ExportOptions(), out=tmp_path / "a.nt")
    g = rdflib.Graph()
    g.parse(tmp_path / "a.nt", format="nt")
    assert {(str(s), str(o)) for s, _, o in g} == {("http://a.org/x\ty", "http://b.org/z\u0001")}


def test_export_order_selection_and_atomic_file(tmp_path, run):
    out = tmp_path / "links.tsv"
    out.write_text("old\n", encoding="utf-8")
    with pytest.raises(InputError):
        export_links(run=run, fmt="alignment", output=out, include_seeds=True)  # seeds hold blank nodes: refused
    assert out.read_text(encoding="utf-8") == "old\n"  # untouched
    s = export_links(run=run, fmt="tsv", output=out)
    t = read_predictions(out)
    assert set(t.status) == {"accepted"} and s["counts"]["seed"] == 0
    assert list(zip(t.kg1, t.kg2, strict=False)) == sorted(zip(t.kg1, t.kg2, strict=False))
    s2 = export_links(run=run, fmt="tsv", output=out, include_seeds=True)
    assert s2["counts"]["seed"] == 20 and s2["links"] == s["links"] + 20
    a = out.read_bytes()
    export_links(run=run, fmt="tsv", output=out, include_seeds=True)
    assert out.read_bytes() == a  # deterministic


def test_provenance_sidecar(tmp_path, run):
    out = tmp_path / "links.nt"
    s = export_links(run=run, fmt="nt", output=out, predicate="skos:exactMatch")
    prov = tmp_path / "links.nt.prov.ttl"
    assert s["provenance"] == str(prov)
    g = rdflib.Graph()
    g.parse(prov, format="turtle")
    VOID = rdflib.Namespace("http://rdfs.org/ns/void#")
    PROV = rdflib.Namespace("http://www.w3.org/ns/prov#")
    KGA = rdflib.Namespace("urn:kgalign:vocab:")
    ls = rdflib.URIRef(out.resolve().as_uri())
    assert (ls, rdflib.RDF.type, VOID.Linkset) in g
    assert int(g.value(ls, VOID.triples)) == s["links"]
    assert str(g.value(ls, VOID.linkPredicate)) == SKOS_EXACT
    assert str(g.value(ls, VOID.subjectsTarget)).endswith("#kg1") and str(g.value(ls, VOID.objectsTarget)).endswith("#kg2")
    act = g.value(ls, PROV.wasGeneratedBy)
    assert (act, rdflib.RDF.type, PROV.Activity) in g
    assert str(g.value(act, KGA.model)) == "test" and int(g.value(act, KGA.seed)) == 0
    assert len(str(g.value(act, KGA.configSha256))) == 64
    assert str(g.value(act, KGA.kgalignVersion))
    assert str(g.value(act, KGA.strategy)) == "greedy" and g.value(act, PROV.endedAtTime) is not None
    # stdout export writes no sidecar unless asked
    buf = io.StringIO()
    assert export_links(run=run, fmt="nt", stream=buf)["provenance"] is None
    p2 = tmp_path / "side.ttl"
    export_links(run=run, fmt="nt", stream=io.StringIO(), provenance=p2)
    assert p2.is_file()


def test_predicate_parsing():
    assert expand_predicate("owl:sameAs") == OWL_SAME
    assert expand_predicate("skos:closeMatch") == "http://www.w3.org/2004/02/skos/core#closeMatch"
    assert expand_predicate("<http://x.org/p>") == "http://x.org/p"
    for bad in ("sameAs", "nope:x y", "http://x.org/a b"):
        with pytest.raises(InputError):
            expand_predicate(bad)


def test_scores_nan_for_seeds_are_written_empty():
    assert format_score(float("nan")) == "" and format_score(0.5) == "0.500000"
    assert math.isnan(float("nan"))


def test_review_band_and_seed_selection(tmp_path):
    run, _, _ = make_run(tmp_path)
    align_run(run, threshold=0.5, review_threshold=0.2, include_seeds=False)
    table = read_predictions(run / "predictions.tsv")
    assert "seed" not in table.status and "review" in table.status
    out = tmp_path / "l.jsonl"
    s = export_links(run=run, fmt="jsonl", output=out)
    assert s["counts"] == {"accepted": table.status.count("accepted"), "review": 0, "seed": 0}
    s = export_links(run=run, fmt="jsonl", output=out, include_review=True)
    assert s["counts"]["review"] == table.status.count("review") > 0
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert {r["status"] for r in rows} == {"accepted", "review"}
    assert all(r["score"] >= 0.5 for r in rows if r["status"] == "accepted")
    assert all(0.2 <= r["score"] < 0.5 for r in rows if r["status"] == "review")


@pytest.mark.parametrize("fmt,ox_format", [("nt", "N_TRIPLES"), ("ttl", "TURTLE")])
def test_plain_iris_parse_with_a_strict_parser(tmp_path, run, fmt, ox_format):
    import pyoxigraph as ox

    out = tmp_path / f"l.{fmt}"
    s = export_links(run=run, fmt=fmt, output=out)
    triples = list(ox.parse(path=str(out), format=getattr(ox.RdfFormat, ox_format)))
    assert len(triples) == s["links"] > 0
    back = read_predictions(run / "predictions.tsv").select({"accepted"})
    assert {(t.subject.value, t.object.value) for t in triples} == set(zip(back.kg1, back.kg2, strict=False))
