"""Link splits: random, legacy (bit-for-bit MEAformer family), legacy + valid, given files; link checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgalign.data.ingest import GraphSpec, IngestOptions, ingest
from kgalign.data.split import legacy_split, random_split
from kgalign.errors import InputError

DATA = Path(__file__).parent / "data"
PF = DATA / "mclea_db15k_fb15k"
RDF = DATA / "rdf"


def meaformer_reference(path: Path, rate: float):
    """What MCLEA/MEAformer/NoCo do: read ill_ent_ids as tuples, np.random.seed(42), np.random.shuffle."""
    ills = [tuple(int(x) for x in line.split("\t")) for line in path.read_text().splitlines()]
    state = np.random.get_state()
    try:
        np.random.seed(42)
        np.random.shuffle(ills)
    finally:
        np.random.set_state(state)
    n = int(len(ills) * rate)
    return ills[:n], ills[n:]


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_legacy_split_matches_meaformer_exactly(rate):
    ds, _ = ingest(IngestOptions(layouts=[("mclea", PF)], split="legacy", train_ratio=rate))
    train, test = meaformer_reference(PF / "ref_ent_ids", rate)
    assert {tuple(x) for x in ds.links_for("train").tolist()} == set(train)
    assert {tuple(x) for x in ds.links_for("test").tolist()} == set(test)
    assert len(ds.links_for("valid")) == 0
    assert ds.manifest["split"]["legacy_seed"] == 42 and ds.manifest["split"]["method"] == "legacy"


def test_legacy_valid_keeps_train_and_moves_a_seeded_fraction_of_test():
    n = 1000
    base = legacy_split(list(range(n)), 0.3)
    for seed in (0, 1):
        labels = legacy_split(list(range(n)), 0.3, legacy_valid=0.1, seed=seed)
        assert [i for i, l in enumerate(labels) if l == "train"] == [i for i, l in enumerate(base) if l == "train"]
        assert labels.count("valid") == 100 and labels.count("test") == n - 300 - 100
        assert all(base[i] == "test" for i, l in enumerate(labels) if l == "valid")
        assert labels == legacy_split(list(range(n)), 0.3, legacy_valid=0.1, seed=seed)  # deterministic
    assert legacy_split(list(range(n)), 0.3, 0.1, seed=0) != legacy_split(list(range(n)), 0.3, 0.1, seed=1)
    with pytest.raises(InputError):
        legacy_split(list(range(10)), 0.9, legacy_valid=0.5)


def test_random_split_ratios_seed_and_rest():
    labels = random_split(1000, 0.2, 0.1, None, seed=3)
    assert (labels.count("train"), labels.count("valid"), labels.count("test")) == (200, 100, 700)
    assert labels == random_split(1000, 0.2, 0.1, None, seed=3) != random_split(1000, 0.2, 0.1, None, seed=4)
    part = random_split(1000, 0.2, 0.1, 0.3, seed=3)
    assert part.count("test") == 300 and part.count("unused") == 400
    with pytest.raises(InputError):
        random_split(10, 0.8, 0.5)


def test_given_split_files_and_unused(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("http://example.org/kg1/Berlin\thttp://example.org/kg2/Q64\n")
    test = tmp_path / "test.tsv"
    test.write_text("http://example.org/kg1/Paris\thttp://example.org/kg2/Q90\n")
    opts = IngestOptions(
        kg1=GraphSpec([str(RDF / "kg1.ttl")]),
        kg2=GraphSpec([str(RDF / "kg2.nt")]),
        links=[str(RDF / "links.tsv")],
        train_links=[str(train)],
        test_links=[str(test)],
    )
    ds, _ = ingest(opts)
    assert ds.link_split == ["train", "unused", "test", "unused"]
    assert ds.manifest["split"]["method"] == "given" and str(train) in ds.manifest["split"]["files"]
    # without --links the split files are the links
    opts.links = []
    ds, _ = ingest(opts)
    assert ds.link_split == ["train", "test"]


def test_links_rdf_sameas_and_reversed_tsv(tmp_path):
    rev = tmp_path / "rev.tsv"
    rev.write_text("".join(f"{b}\t{a}\n" for a, b in (l.split("\t") for l in (RDF / "links.tsv").read_text().splitlines())))
    for links in (RDF / "links.nt", rev):
        ds, rep = ingest(IngestOptions(kg1=GraphSpec([str(RDF / "kg1.ttl")]), kg2=GraphSpec([str(RDF / "kg2.nt")]), links=[str(links)]))
        pairs = [(ds.entities[a], ds.entities[b]) for a, b in ds.links.tolist()]
        assert pairs[0] == ("http://example.org/kg1/Berlin", "http://example.org/kg2/Q64") and len(pairs) == 4
    assert any("the other way round" in w for w in rep["warnings"])


def test_unknown_duplicate_and_conflicting_links(tmp_path):
    links = tmp_path / "l.tsv"
    good = (RDF / "links.tsv").read_text()
    links.write_text(
        good + "http://example.org/kg1/Berlin\thttp://example.org/kg2/Q64\n"  # duplicate
        "http://example.org/kg1/Berlin\thttp://example.org/kg2/Q90\n"  # not one-to-one
        "http://example.org/kg1/Nowhere\thttp://example.org/kg2/Q64\n"
    )  # unknown, line 7
    base = dict(kg1=GraphSpec([str(RDF / "kg1.ttl")]), kg2=GraphSpec([str(RDF / "kg2.nt")]), links=[str(links)])
    with pytest.raises(InputError) as exc:
        ingest(IngestOptions(**base))
    assert "1 of 7 links name unknown entities" in str(exc.value) and f"{links}:7:" in str(exc.value)
    ds, rep = ingest(IngestOptions(**base, lenient=True))
    assert len(ds.links) == 5
    text = " ".join(rep["warnings"])
    assert "dropped 1 duplicate links" in text and "not one-to-one" in text and "unknown entities" in text
