"""`kgalign ingest` and `kgalign info` run as a user would: subprocesses, exit codes, stdout/stderr."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from kgalign.data.store import load_dataset

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
RDF = DATA / "rdf"


def kgalign(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kgalign.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_ingest_then_info_json(tmp_path):
    out = tmp_path / "ds"
    p = kgalign(
        "ingest",
        "-o",
        str(out),
        "--kg1",
        str(RDF / "kg1.ttl"),
        "--kg2",
        str(RDF / "kg2.nt"),
        "--links",
        str(RDF / "links.nt"),
        "--train-ratio",
        "0.5",
        "--valid-ratio",
        "0.25",
        "--seed",
        "1",
    )
    assert p.returncode == 0, p.stderr.decode()
    assert b"entities" in p.stdout and b"INFO: wrote" in p.stderr  # table on stdout, log on stderr
    p = kgalign("info", str(out), "--json")
    assert p.returncode == 0
    info = json.loads(p.stdout)
    assert info["counts"]["kg1"]["entities"] == 5 and info["counts"]["kg2"]["entities"] == 4
    assert info["counts"]["links"] == {"train": 2, "valid": 1, "test": 1, "unused": 0, "total": 4}
    assert info["split"]["seed"] == 1 and info["format_version"] == 1
    assert {s["role"] for s in info["sources"]} == {"graph", "links"}
    p = kgalign("info", str(out))
    assert p.returncode == 0 and b"| entities" in p.stdout and b"method=random" in p.stdout
    ds = load_dataset(out)
    assert ds.num_entities == 9 and len(ds.links) == 4


def test_quiet_json_and_layout(tmp_path):
    out = tmp_path / "ds"
    p = kgalign(
        "ingest",
        "-q",
        "--json",
        "-o",
        str(out),
        "--layout",
        f"mclea:{DATA / 'mclea_db15k_fb15k'}",
        "--layout",
        f"mmkg:{DATA / 'mmkg'}",
        "--mmkg-pair",
        "DB15K-FB15K",
        "--kg2-names",
        str(DATA / "fb15k_names.tsv"),
        "--underscores-to-spaces",
        "--kg1-names-from-iri",
        "--split",
        "legacy",
        "--legacy-valid",
        "0.1",
    )
    assert p.returncode == 0, p.stderr.decode()
    res = json.loads(p.stdout)
    assert res["split"]["method"] == "legacy" and res["counts"]["kg1"]["relation_triples"] == len(
        set((DATA / "mclea_db15k_fb15k" / "triples_1").read_text().splitlines())
    )
    assert b"INFO" not in p.stderr  # -q: warnings only


def test_stdin_and_compressed(tmp_path):
    out = tmp_path / "ds"
    data = gzip.compress((RDF / "kg2.nt").read_bytes())
    p = kgalign(
        "ingest",
        "-o",
        str(out),
        "--kg1",
        str(RDF / "kg1.ttl"),
        "--kg2",
        "-",
        "--format",
        "nt",
        "--links",
        str(RDF / "links.tsv"),
        stdin=data,
    )
    assert p.returncode == 0, p.stderr.decode()
    manifest = json.loads((out / "manifest.json").read_text())
    assert any(s["path"] == "-" and len(s["sha256"]) == 64 for s in manifest["sources"])
    assert manifest["counts"]["kg2"]["entities"] == 4


def test_bad_input_exit_2_and_nothing_written(tmp_path):
    bad = tmp_path / "bad.nt"
    bad.write_text((RDF / "kg2.nt").read_text() + "<http://x> <http://p> oops .\n")
    out = tmp_path / "ds"
    p = kgalign("ingest", "-o", str(out), "--kg1", str(RDF / "kg1.ttl"), "--kg2", str(bad), "--links", str(RDF / "links.tsv"))
    assert p.returncode == 2
    err = p.stderr.decode()
    assert f"error: {bad}:8: " in err and err.count("error:") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]  # no partial dataset, no temp dir left
    p = kgalign(
        "ingest", "-o", str(out), "--lenient", "--json", "--kg1", str(RDF / "kg1.ttl"), "--kg2", str(bad), "--links", str(RDF / "links.tsv")
    )
    assert p.returncode == 0 and json.loads(p.stdout)["skipped_lines"] == 1
    assert b"skipped 1 bad lines" in p.stderr


def test_existing_output_needs_force_and_missing_file(tmp_path):
    out = tmp_path / "ds"
    args = ["ingest", "-q", "-o", str(out), "--kg1", str(RDF / "kg1.ttl"), "--kg2", str(RDF / "kg2.nt")]
    assert kgalign(*args).returncode == 0
    p = kgalign(*args)
    assert p.returncode == 2 and b"--force" in p.stderr
    assert kgalign(*args, "--force").returncode == 0
    # --force never wipes a directory that is not a dataset
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me", encoding="utf-8")
    p = kgalign(*args[:3], str(other), *args[4:], "--force")
    assert p.returncode == 2 and b"not a kgalign dataset" in p.stderr
    assert (other / "notes.txt").read_text(encoding="utf-8") == "keep me"
    p = kgalign("ingest", "-o", str(tmp_path / "x"), "--kg1", str(tmp_path / "nope.nt"), "--kg2", str(RDF / "kg2.nt"))
    assert p.returncode == 3 and b"no such file" in p.stderr
    p = kgalign("ingest", "-o", str(tmp_path / "x"), "--layout", "bogus:/x")
    assert p.returncode == 2 and b"KIND:PATH" in p.stderr
    p = kgalign("info", str(tmp_path))
    assert p.returncode == 3 and b"not a kgalign dataset" in p.stderr


def test_help_has_examples():
    for cmd in ("ingest", "info"):
        p = kgalign(cmd, "--help")
        assert p.returncode == 0 and b"kgalign " + cmd.encode() + b" " in p.stdout
