"""Malformed and unusual inputs to `ingest` and `evaluate --links`: one message, exit 2, no request, no traceback."""

from __future__ import annotations

import json
import os
import threading

import pytest
from conftest import ingest_args, kg, kg_proc, refused, write_graphs


@pytest.mark.parametrize("which", ["kg1", "kg2", "links"])
def test_a_utf8_bom_is_accepted_in_nt_and_tsv(tmp_path, which):
    p = write_graphs(tmp_path / "in")
    plain = kg(*ingest_args(p, tmp_path / "plain", "--json"))
    p[which].write_bytes(b"\xef\xbb\xbf" + p[which].read_bytes())
    bom = kg(*ingest_args(p, tmp_path / "bom", "--json"))
    assert plain.returncode == 0 and bom.returncode == 0, bom.stderr
    assert json.loads(bom.stdout)["counts"] == json.loads(plain.stdout)["counts"]
    assert (tmp_path / "bom" / "entities.tsv").read_bytes() == (tmp_path / "plain" / "entities.tsv").read_bytes()


def test_a_bom_is_accepted_in_turtle(tmp_path):
    p = write_graphs(tmp_path / "in")
    ttl = tmp_path / "in" / "kg1.ttl"
    ttl.write_bytes(b"\xef\xbb\xbf@prefix a: <http://a.org/> .\n" + p["kg1"].read_bytes())
    r = kg("ingest", "--kg1", ttl, "--kg2", p["kg2"], "--links", p["links"], "-o", tmp_path / "ds", "-q")
    assert r.returncode == 0, r.stderr


def test_binary_and_non_utf8_inputs_name_the_file(tmp_path):
    p = write_graphs(tmp_path / "in")
    p["kg1"].write_bytes(os.urandom(2000))
    refused(kg(*ingest_args(p, tmp_path / "ds")), 2, p["kg1"])
    assert not (tmp_path / "ds").exists()


def test_a_directory_or_a_device_as_input_is_refused(tmp_path):
    p = write_graphs(tmp_path / "in")
    for bad in (tmp_path, "/dev/zero"):  # /dev/zero would never end
        refused(kg("ingest", "--kg1", f"nt:{bad}", "--kg2", p["kg2"], "-o", tmp_path / "ds"), 2, bad)
    assert not (tmp_path / "ds").exists()


def test_a_fifo_input_with_a_writer_is_read(tmp_path):
    """Process substitution (`--kg1 <(zcat x.nt.gz)`) hands kgalign a pipe: it works."""
    p = write_graphs(tmp_path / "in")
    fifo = tmp_path / "kg1.nt"
    data = p["kg1"].read_bytes()
    p["kg1"].unlink()
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as f:
            f.write(data)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    r = kg_proc("ingest", "--kg1", fifo, "--kg2", p["kg2"], "--links", p["links"], "-o", tmp_path / "ds", "-q", timeout=60)
    t.join(5)
    assert r.returncode == 0, r.stderr


def test_jsonld_with_a_remote_context_is_refused_without_any_request(tmp_path, server):
    p = write_graphs(tmp_path / "in")
    doc = tmp_path / "in" / "kg1.jsonld"
    doc.write_text(json.dumps({"@context": server.url("/ctx"), "@id": "http://a.org/e0", "name": "x"}), encoding="utf-8")
    r = kg_proc("ingest", "--kg1", doc, "--kg2", p["kg2"], "--links", p["links"], "-o", tmp_path / "ds")
    line = refused(r, 2, doc)
    assert "@context" in line and "never fetches" in line
    assert server.requests == []
    # nested and @import references are refused too; an inline context is fine
    nested = {"@context": [{"@import": server.url("/ctx")}], "@graph": [{"@id": "http://a.org/e0", "@context": server.url("/x")}]}
    doc.write_text(json.dumps(nested), encoding="utf-8")
    refused(kg("ingest", "--kg1", doc, "--kg2", p["kg2"], "-o", tmp_path / "ds"), 2, doc)
    inline = {"@context": {"name": "http://schema.org/name"}, "@id": "http://a.org/e0", "name": "x"}
    doc.write_text(json.dumps(inline), encoding="utf-8")
    r = kg("ingest", "--kg1", doc, "--kg2", p["kg2"], "-o", tmp_path / "ds", "-q")
    assert r.returncode == 0, r.stderr
    assert server.requests == []


def test_an_ill_typed_literal_is_kept_as_text_with_a_warning_naming_the_file(tmp_path):
    p = write_graphs(tmp_path / "in")
    with open(p["kg1"], "a", encoding="utf-8") as f:
        f.write('<http://a.org/e0> <http://a.org/size2> "abc"^^<http://www.w3.org/2001/XMLSchema#integer> .\n')
    r = kg(*ingest_args(p, tmp_path / "ds", "--json"))
    assert r.returncode == 0, r.stderr
    warn = [w for w in json.loads(r.stdout)["warnings"] if "datatype" in w]
    assert len(warn) == 1 and str(p["kg1"]) in warn[0] and "'abc'" in warn[0]
    assert str(p["kg1"]) in r.stderr  # also shown on stderr
    numeric = (tmp_path / "ds" / "numeric.tsv").read_text(encoding="utf-8")
    assert "abc" not in numeric


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--train-ratio", "nan"], "--train-ratio"),
        (["--valid-ratio", "-0.1"], "--valid-ratio"),
        (["--test-ratio", "1.5"], "--test-ratio"),
        (["--legacy-valid", "nan", "--split", "legacy"], "--legacy-valid"),
        (["--seed", "-1"], "--seed"),
        (["--fold", "0"], "--fold"),
        (["--split", "sideways"], "sideways"),
        (["--layout", "gcn:x"], "jape"),
        (["--format", "foo"], "--format"),
    ],
)
def test_out_of_range_options_are_refused_before_reading(tmp_path, flags, named):
    # the inputs do not exist: the option must be refused first, up front
    r = kg("ingest", "--kg1", tmp_path / "missing1.nt", "--kg2", tmp_path / "missing2.nt", "-o", tmp_path / "ds", *flags)
    refused(r, 2, named)
    assert not (tmp_path / "ds").exists()


def test_gcn_align_jape_layout_aliases(tmp_path):
    from pathlib import Path

    layout = Path(__file__).resolve().parents[1] / "data" / "mclea_en_fr"
    if not layout.is_dir():
        pytest.skip("no mclea example layout")
    for alias in ("jape", "gcn-align"):
        r = kg("ingest", "--layout", f"{alias}:{layout}", "-o", tmp_path / alias, "-q", "--split", "legacy")
        assert r.returncode == 0, r.stderr


def test_ingest_help_names_predicates_as_iris():
    r = kg("ingest", "--help")
    assert r.returncode == 0
    lines = [line for line in r.stdout.splitlines() if "--name-predicate" in line or "--image-predicate" in line]
    assert lines and all("IRI" in line and "FILE" not in line for line in lines)


def test_evaluate_links_on_binary_fifo_and_bad_utf8_files(tmp_path, run_dir):
    binary = tmp_path / "links.tsv"
    binary.write_bytes(b"\x00\x01\x02" * 300)
    refused(kg_proc("evaluate", run_dir, "--links", binary), 2, binary, "binary")
    latin = tmp_path / "links.nt"
    latin.write_bytes("<http://a.org/\xe9> <http://x> <http://b.org/y> .\n".encode("latin-1"))
    refused(kg("evaluate", run_dir, "--links", latin), 2, f"{latin}:1", "UTF-8")
    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)
    refused(kg("evaluate", run_dir, "--links", fifo, timeout=30), 2, fifo, "FIFO")


def test_threshold_sweep_on_turtle_says_why(tmp_path, run_dir):
    out = tmp_path / "links.ttl"
    assert kg("export", run_dir, "--format", "ttl", "-o", out, "-q").returncode == 0
    line = refused(kg("evaluate", run_dir, "--links", out, "--thresholds", "0.2,0.5"), 2, "no scores")
    assert "Turtle" in line and "tsv" in line
    refused(kg("evaluate", run_dir, "--links", out, "--thresholds", "nan"), 2, "--thresholds")


@pytest.mark.parametrize("flags", [["--threshold", "nan"], ["--review-threshold", "inf"], ["--topk", "0"], ["--csls-k", "-1"]])
def test_align_refuses_nan_thresholds_and_sizes_below_one(tmp_path, run_dir, flags):
    out = tmp_path / "pred.tsv"
    refused(kg("align", run_dir, "-o", out, *flags), 2, flags[0])
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--mapping-set-id", "not an iri", "-f", "sssom"], "--mapping-set-id"),
        (["--license", "x", "-f", "sssom"], "--license"),
        (["--predicate", "a b"], "a b"),
        (["--base-kg1", "x y"], "--base-kg1"),
        (["--format", "docx"], "docx"),
    ],
)
def test_export_refuses_bad_options_before_writing(tmp_path, run_dir, flags, named):
    out = tmp_path / "links.out"
    refused(kg("export", run_dir, "-o", out, *flags), 2, named)
    assert list(tmp_path.iterdir()) == []
