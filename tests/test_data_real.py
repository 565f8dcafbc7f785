"""The real benchmark files (SOURCES.md in the shared data folder): `kgalign ingest`
then `kgalign info --json`, counts checked against SOURCES.md.

Skipped when the shared data folder is absent: it is looked for at
$KGALIGN_SHARED_DATA, then <repo>/../shared/data (where CI has it), then /work/shared/data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path | None:
    for cand in (os.environ.get("KGALIGN_SHARED_DATA"), REPO.parent / "shared" / "data", "/work/shared/data"):
        if cand and (Path(cand) / "SOURCES.md").is_file():
            return Path(cand)
    return None


SHARED = _shared()
pytestmark = pytest.mark.skipif(
    SHARED is None, reason="shared benchmark data not found (set KGALIGN_SHARED_DATA or put it at <repo>/../shared/data)"
)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kgalign.cli", *args], capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )


def ingest_info(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "ds"
    proc = cli("ingest", "-q", "-o", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    proc = cli("info", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _check(counts: dict, kg1: tuple, kg2: tuple, links: int) -> None:
    for kg, (ents, rels, triples) in (("kg1", kg1), ("kg2", kg2)):
        assert (counts[kg]["entities"], counts[kg]["relations"], counts[kg]["relation_triples"]) == (ents, rels, triples), kg
    assert counts["links"]["total"] == links


def test_pathfusion_db15k_fb15k(tmp_path):
    info = ingest_info(tmp_path, "--layout", f"mclea:{SHARED}/mmkg_pathfusion/DB15K-FB15K", "--split", "legacy")
    # SOURCES.md: 12842 + 14951 entities, 279 + 1345 relations, triples_1 99028 lines = 89197 unique, no triples_2
    _check(info["counts"], (12842, 279, 89197), (14951, 1345, 0), 12846)
    assert info["counts"]["links"]["train"] == 2569 and info["counts"]["links"]["test"] == 10277
    # attr: DB15K 48044 values / 225 attributes, FB15K 29394 / 104
    assert info["counts"]["kg1"]["attribute_triples"] == 48044 and info["counts"]["kg1"]["attributes"] == 225
    assert info["counts"]["kg2"]["attribute_triples"] == 29394 and info["counts"]["kg2"]["attributes"] == 104


def test_pathfusion_yago15k_fb15k(tmp_path):
    info = ingest_info(tmp_path, "--layout", f"mclea:{SHARED}/mmkg_pathfusion/YAGO15K-FB15K")
    _check(info["counts"], (15404, 32, 122886), (14951, 1345, 0), 11199)
    assert info["counts"]["kg1"]["attribute_triples"] == 23532 and info["counts"]["kg1"]["attributes"] == 7


def test_openea_en_fr_15k_v1(tmp_path):
    info = ingest_info(tmp_path, "--layout", f"mclea:{SHARED}/openea_en_fr_15k_v1")
    # SOURCES.md: 15000 + 15000 entities, EN uses 267 relations and FR 210; 47334 / 40864 triples; 15000 links
    _check(info["counts"], (15000, 267, 47334), (15000, 210, 40864), 15000)
    assert (info["counts"]["kg1"]["attributes"], info["counts"]["kg2"]["attributes"]) == (308, 404)
    c = info["counts"]["links"]
    assert (c["train"], c["valid"], c["test"]) == (3000, 1500, 10500)  # default 20/10/70


@pytest.mark.parametrize("pair,links,kg1_images,kg2_images", [("DB15K-FB15K", 12846, 12837, 13444), ("YAGO15K-FB15K", 11199, None, 13444)])
def test_mmkg_raw_files(tmp_path, pair, links, kg1_images, kg2_images):
    info = ingest_info(tmp_path, "--layout", f"mmkg:{SHARED}/mmkg", "--mmkg-pair", pair)
    c = info["counts"]
    assert c["links"]["total"] == links
    # FB15K_NumericalTriples: 29395 lines, 116 attributes (no EntityTriples in the shared copy)
    assert c["kg2"]["numeric_values"] == 29395 and c["kg2"]["attributes"] == 116
    assert c["kg1"]["relation_triples"] == 0 and c["kg2"]["relation_triples"] == 0
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    cov = manifest["mmkg_image_index"]
    assert cov["kg2"]["entities_with_image_id"] == kg2_images
    if kg1_images:
        assert cov["kg1"]["entities_with_image_id"] == kg1_images
    if pair.startswith("YAGO"):
        assert c["kg1"]["numeric_values"] == 23532  # 48405 lines, 23532 unique


def test_legacy_split_on_real_links_matches_numpy_shuffle(tmp_path):
    ref = SHARED / "mmkg_pathfusion" / "DB15K-FB15K" / "ref_ent_ids"
    info = ingest_info(
        tmp_path, "--layout", f"mclea:{ref.parent}", "--split", "legacy", "--train-ratio", "0.8", "--legacy-valid", "0.1", "--seed", "7"
    )
    ills = [tuple(int(x) for x in line.split("\t")) for line in ref.read_text().splitlines()]
    rs = np.random.RandomState(42)
    shuffled = list(ills)
    rs.shuffle(shuffled)
    train = set(shuffled[: int(len(ills) * 0.8)])
    rows = [line.split("\t") for line in (tmp_path / "ds" / "links.tsv").read_text().splitlines()[1:]]
    assert {(int(a), int(b)) for a, b, s in rows if s == "train"} == train
    assert sum(s == "valid" for _, _, s in rows) == int(0.1 * len(ills)) == info["counts"]["links"]["valid"]
    assert info["split"]["legacy_valid"] == 0.1 and info["split"]["valid_seed"] == 7


def test_prepare_datasets_fb_db(tmp_path):
    """benchmarks/prepare_datasets.py rebuilds FB15K-DB15K from four sources (FB side from FB15k-237 + OpenKE)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "prepare_datasets.py"),
            "--shared",
            str(SHARED),
            "-o",
            str(tmp_path),
            "--only",
            "fb_db_20",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)["fb_db_20"]
    # SOURCES.md reconstruction check: 381186 unique triples over 14787 FB entities and 1056 relations
    assert counts["kg2"]["relation_triples"] == 381186
    assert counts["kg2"]["entities"] == 14951 and counts["kg1"]["relation_triples"] == 89197
    assert counts["links"]["train"] == 2569 and counts["links"]["valid"] == 1284
    assert counts["kg1"]["entities_with_name"] == 12842 and counts["kg2"]["entities_with_name"] == 14951
