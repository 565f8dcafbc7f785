"""`kgalign synth`: deterministic, the promised properties hold on a small pair, bad settings exit 2, ingest reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from kgalign.data.ingest import GraphSpec, IngestOptions, ingest_to
from kgalign.data.synthgen import SynthSettings, _misspell, generate
from kgalign.errors import InputError

REPO = Path(__file__).resolve().parents[1]
FILES = ("kg1.tsv", "kg2.tsv", "kg1_attributes.tsv", "kg2_attributes.tsv", "links.tsv", "synth.json")
LABELS = ("http://www.w3.org/2000/01/rdf-schema#label", "http://schema.org/name")


def rows(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "pair"
    generate(SynthSettings(entities=3000, seed=7), out)
    return out


def test_same_seed_same_bytes_other_seed_other_files(tmp_path, pair):
    generate(SynthSettings(entities=3000, seed=7), tmp_path / "again")
    for name in FILES[:-1]:
        assert (tmp_path / "again" / name).read_bytes() == (pair / name).read_bytes(), name
    again, first = (json.loads((d / "synth.json").read_text()) for d in (tmp_path / "again", pair))
    assert again.pop("ingest") != first.pop("ingest")  # it names the folder
    assert again == first
    generate(SynthSettings(entities=3000, seed=8), tmp_path / "other")
    assert (tmp_path / "other" / "kg1.tsv").read_bytes() != (pair / "kg1.tsv").read_bytes()


def test_heavy_tailed_degrees_and_skewed_relation_types(pair):
    triples = rows(pair / "kg1.tsv")
    degree = Counter([h for h, _, _ in triples] + [t for _, _, t in triples])
    d = np.array(sorted(degree.values(), reverse=True))
    assert d[0] >= 20 * np.median(d)  # hubs: a power law, not a Poisson graph
    assert d[: len(d) // 100].sum() / d.sum() > 0.1  # the top 1% hold more than 10% of the endpoints
    rel = np.array(sorted(Counter(r for _, r, _ in triples).values(), reverse=True))
    assert rel[0] >= 20 * np.median(rel)
    assert 4.0 <= len(triples) / 3000 <= 6.0  # about --degree (5) triples per entity


def test_dangling_entities_and_links_name_existing_entities(pair):
    links = rows(pair / "links.tsv")
    for k, col in ((1, 0), (2, 1)):
        ents = {h for h, _, _ in rows(pair / f"kg{k}.tsv")} | {t for _, _, t in rows(pair / f"kg{k}.tsv")}
        ents |= {e for e, _, _ in rows(pair / f"kg{k}_attributes.tsv")}
        linked = {link[col] for link in links}
        assert linked <= ents
        assert len(linked) == len(links)  # one-to-one
        assert 0.07 <= 1 - len(linked) / len(ents) <= 0.13  # --dangling 0.1
    summary = json.loads((pair / "synth.json").read_text())
    assert summary["counts"]["links"] == len(links)


def test_vocabularies_are_renamed_per_side(pair):
    for kind in ("kg{}.tsv", "kg{}_attributes.tsv"):
        col = 1
        v1 = {r[col] for r in rows(pair / kind.format(1))}
        v2 = {r[col] for r in rows(pair / kind.format(2))}
        assert v1 and v2 and not v1 & v2
    e1 = {r[0] for r in rows(pair / "kg1.tsv")}
    e2 = {r[0] for r in rows(pair / "kg2.tsv")}
    assert not e1 & e2


def side_facts(pair: Path, k: int) -> tuple[dict, dict]:
    names, numbers = {}, {}
    for e, a, v in rows(pair / f"kg{k}_attributes.tsv"):
        if a == LABELS[k - 1]:
            names[e] = v
        else:
            numbers.setdefault(e, []).append(float(v))
    return names, numbers


def test_names_are_misspelled_and_numbers_perturbed(pair):
    n1, v1 = side_facts(pair, 1)
    n2, v2 = side_facts(pair, 2)
    links = rows(pair / "links.tsv")
    both = [(n1[a], n2[b]) for a, b in links if a in n1 and b in n2]
    same = np.mean([x == y for x, y in both])
    assert 0.3 <= same <= 0.7  # (1 - 0.3)^2 ≈ 0.49 of the names untouched on both sides
    close = [abs(len(x) - len(y)) <= 2 for x, y in both if x != y]
    assert np.mean(close) > 0.8  # most differences are single edits, not other names
    # numbers: the sorted values of a gold pair's shared facts are near, not equal
    rel_err = []
    for a, b in links:
        if a in v1 and b in v2 and len(v1[a]) == len(v2[b]) == 1 and v1[a][0] > 100:
            rel_err.append(abs(v1[a][0] - v2[b][0]) / v1[a][0])
    rel_err = np.array(rel_err)
    assert len(rel_err) > 50
    assert np.median(rel_err) < 0.1 and (rel_err > 0).mean() > 0.5


def test_misspell_edits_are_single_edits():
    rng = np.random.default_rng(0)
    names = ["Abcdef Ghijk"] * 400
    out = _misspell(names, rng, 1.0)
    lengths = Counter(len(x) - len(names[0]) for x in out)
    assert set(lengths) <= {-1, 0, 1} and lengths[-1] and lengths[1] and lengths[0]
    assert sum(x != names[0] for x in out) > 300  # a swap of equal letters or same-letter substitution may be no change


def test_ingest_reads_the_generated_files(tmp_path):
    src = tmp_path / "pair"
    summary = generate(SynthSettings(entities=400, seed=3), src)
    opts = IngestOptions(
        kg1=GraphSpec([str(src / "kg1.tsv")], [str(src / "kg1_attributes.tsv")]),
        kg2=GraphSpec([str(src / "kg2.tsv")], [str(src / "kg2_attributes.tsv")]),
        links=[str(src / "links.tsv")],
    )
    ds, report = ingest_to(opts, tmp_path / "ds")
    counts = ds.manifest["counts"]
    for k in ("kg1", "kg2"):
        assert counts[k]["entities"] == summary["counts"][k]["entities"]
        assert counts[k]["relation_triples"] == summary["counts"][k]["relation_triples"]
        assert counts[k]["numeric_values"] == summary["counts"][k]["numeric_triples"]
        assert counts[k]["entities_with_name"] == summary["counts"][k]["names"]
    assert counts["links"]["total"] == summary["counts"]["links"]
    assert report["skipped_lines"] == 0


@pytest.mark.parametrize(
    "settings, flag",
    [(dict(entities=0), "--entities"), (dict(entities=100, dangling=1.0), "--dangling"), (dict(entities=100, degree=-1), "--degree")],
)
def test_bad_settings_are_refused_before_writing(tmp_path, settings, flag):
    with pytest.raises(InputError, match=flag):
        generate(SynthSettings(**settings), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_bad_entities_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "kgalign.cli", "synth", str(out), "--entities", "0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert p.returncode == 2
    assert "--entities must be an integer of at least 10, got 0" in p.stderr
    assert not out.exists()


def test_cli_writes_a_pair_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "kgalign.cli", "synth", str(out), "--entities", "50", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["counts"]["links"] == len(rows(out / "links.tsv"))
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    assert p.returncode == 2 and "already exists" in p.stderr
