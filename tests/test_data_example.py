"""Ingesting the bundled example: Turtle with relative image IRIs, and the TSV version agreeing with it."""

from pathlib import Path

from typer.testing import CliRunner

from kgalign.cli import app
from kgalign.data.store import load_dataset

EX = Path(__file__).resolve().parents[1] / "examples"


def _ingest(tmp_path, *args):
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["ingest", "-q", "-o", str(out), *args, "--links", str(EX / "links.tsv")])
    assert res.exit_code == 0, res.output
    return load_dataset(out)


def test_turtle_relative_image_iris_resolve_to_local_files(tmp_path):
    ds = _ingest(tmp_path, "--kg1", str(EX / "kg1.ttl"), "--kg2", str(EX / "kg2.ttl"))
    kg1_sources = [s for e, s in zip(ds.image_entity.tolist(), ds.image_source, strict=False) if ds.entity_kg[e] == 1]
    kg2_sources = [s for e, s in zip(ds.image_entity.tolist(), ds.image_source, strict=False) if ds.entity_kg[e] == 2]
    assert len(kg1_sources) == 255 and all(Path(s).is_file() for s in kg1_sources)
    assert len(kg2_sources) == 260 and all(s.startswith("http://127.0.0.1:8765/images/kg2/") for s in kg2_sources)
    assert ds.counts()["links"]["total"] == 300


def test_tsv_version_gives_the_same_graph_shape(tmp_path):
    t = EX / "tsv"
    ds = _ingest(
        tmp_path,
        "--kg1",
        str(t / "kg1_rel.tsv"),
        "--kg1-attributes",
        str(t / "kg1_attr.tsv"),
        "--kg1-images",
        str(t / "kg1_images.tsv"),
        "--kg2",
        str(t / "kg2_rel.tsv"),
        "--kg2-attributes",
        str(t / "kg2_attr.tsv"),
        "--kg2-images",
        str(t / "kg2_images.tsv"),
    )
    c = ds.counts()
    assert c["kg1"]["relation_triples"] == 1020 and c["kg2"]["relation_triples"] == 1050
    assert c["kg1"]["entities_with_image"] == 255 and c["kg2"]["entities_with_image"] == 260
    assert all(Path(s).is_file() for e, s in zip(ds.image_entity.tolist(), ds.image_source, strict=False) if ds.entity_kg[e] == 1)
