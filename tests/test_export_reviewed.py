"""Review decisions flow into `kgalign export`: accepted pairs marked reviewed, rejected pairs left out."""

import json

import pytest
import rdflib
from review_helpers import kgalign
from test_export_helpers import make_run

from kgalign.data.decisions import Decision, read_decisions, write_decisions
from kgalign.export.predictions import read_predictions, write_predictions


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    run, _, _ = make_run(tmp_path_factory.mktemp("reviewed"))
    kgalign("align", "-q", run, "--threshold", "0.9", "--review-threshold", "0.0")
    table = read_predictions(run / "predictions.tsv")
    rows = list(zip(table.kg1, table.kg2, table.score, table.status, strict=True))
    review = [r for r in rows if r[3] == "review"]
    accepted = [r for r in rows if r[3] == "accepted"]
    seed = [r for r in rows if r[3] == "seed"]
    assert len(review) >= 3 and accepted and seed
    picks = {
        "accept_review": review[0],
        "reject_review": review[1],
        "skip_review": review[2],
        "reject_accepted": accepted[0],
        "accept_seed": seed[0],
    }
    absent = ("http://a.org/not-predicted", "http://b.org/not-predicted")
    write_decisions(
        run / "decisions.tsv",
        [
            Decision(*picks["accept_review"][:2], "accepted", picks["accept_review"][2], "t"),
            Decision(*picks["reject_review"][:2], "rejected", None, "t"),
            Decision(*picks["skip_review"][:2], "skipped", None, "t"),
            Decision(*picks["reject_accepted"][:2], "rejected", None, "t"),
            Decision(*picks["accept_seed"][:2], "accepted", None, "t"),
            Decision(*absent, "accepted", 0.42, "t"),
        ],
    )
    return run, picks, absent, accepted


def test_tsv_and_jsonl_rows_carry_the_review_status(reviewed, tmp_path):
    run, picks, absent, accepted = reviewed
    kgalign("export", run, "--format", "jsonl", "-o", tmp_path / "l.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "l.jsonl").read_text(encoding="utf-8").splitlines()]
    status = {(r["kg1"], r["kg2"]): r["status"] for r in rows}
    assert status[picks["accept_review"][:2]] == "reviewed"
    assert status[picks["accept_seed"][:2]] == "reviewed"  # a training link a person confirmed is exported
    assert status[absent] == "reviewed" and [r["score"] for r in rows if (r["kg1"], r["kg2"]) == absent] == [0.42]
    assert picks["reject_review"][:2] not in status and picks["reject_accepted"][:2] not in status
    assert picks["skip_review"][:2] not in status  # skipped: still in the review band, not exported by default
    assert sum(1 for s in status.values() if s == "accepted") == len(accepted) - 1
    kgalign("export", run, "--format", "tsv", "-o", tmp_path / "l.tsv")
    tsv = (tmp_path / "l.tsv").read_text(encoding="utf-8")
    assert sum(1 for line in tsv.splitlines() if line.endswith("\treviewed")) == 3


def _plain(term: str) -> bool:
    return term.startswith(("http://a.org/e", "http://b.org/f", "http://a.org/not", "http://b.org/not"))


def test_sssom_justification_and_provenance(reviewed, tmp_path):
    run, picks, absent, _ = reviewed
    # SSSOM holds IRIs only: keep the fixture's plain-IRI pairs (it also has blank nodes and odd terms)
    table = read_predictions(run / "predictions.tsv")
    keep = [i for i, (a, b) in enumerate(zip(table.kg1, table.kg2, strict=True)) if _plain(a) and _plain(b)]
    write_predictions(tmp_path / "p.tsv", table.take(keep), table.meta)
    decisions = [d for d in read_decisions(run / "decisions.tsv") if _plain(d.kg1) and _plain(d.kg2)]
    write_decisions(tmp_path / "d.tsv", decisions)
    n = sum(1 for d in decisions if d.decision == "accepted")
    p = kgalign(
        "export", run, "--predictions", tmp_path / "p.tsv", "--decisions", tmp_path / "d.tsv", "-f", "sssom", "-o", tmp_path / "l.sssom.tsv"
    )
    summary = json.loads(p.stderr.strip().splitlines()[-1])
    assert summary["counts"]["reviewed"] == n >= 2 and summary["decisions"] == str(tmp_path / "d.tsv")
    body = [x.split("\t") for x in (tmp_path / "l.sssom.tsv").read_text(encoding="utf-8").splitlines() if not x.startswith("#")]
    head, rows = body[0], body[1:]
    just = head.index("mapping_justification")
    assert sum(1 for r in rows if r[just] == "semapv:ManualMappingCuration") == n
    assert all(r[just] in ("semapv:ManualMappingCuration", "semapv:SemanticSimilarityThresholdMatching") for r in rows)
    assert "reviewDecisions" in (tmp_path / "l.sssom.tsv.prov.ttl").read_text(encoding="utf-8")


def test_plain_triples_leave_rejected_pairs_out(reviewed, tmp_path):
    run, picks, _, _ = reviewed
    kgalign("export", run, "--format", "nt", "--include-review", "-o", tmp_path / "l.nt")
    g = rdflib.Graph()
    g.parse(tmp_path / "l.nt", format="nt")
    subjects = {str(s) for s in g.subjects()}
    assert picks["reject_review"][0] not in subjects and picks["reject_accepted"][0] not in subjects
    assert picks["skip_review"][0] in subjects and picks["accept_review"][0] in subjects


def test_decisions_option(reviewed, tmp_path):
    run, picks, _, _ = reviewed
    other = tmp_path / "other.tsv"
    write_decisions(other, [Decision(*picks["reject_accepted"][:2], "accepted", None, "t")])
    kgalign("export", run, "--format", "jsonl", "--decisions", other, "-o", tmp_path / "l.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "l.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["status"] for r in rows if (r["kg1"], r["kg2"]) == picks["reject_accepted"][:2]] == ["reviewed"]
    p = kgalign("export", run, "--decisions", tmp_path / "missing.tsv", check=False)
    assert p.returncode == 3 and "no such decisions file" in p.stderr and p.stdout == ""
    bad = tmp_path / "bad.tsv"
    bad.write_text("kg1\tkg2\tdecision\nx\ty\tyes\n")
    p = kgalign("export", run, "--decisions", bad, "-o", tmp_path / "never.nt", check=False)
    assert p.returncode == 2 and f"{bad}:2:" in p.stderr and not (tmp_path / "never.nt").exists()


def test_a_persons_pair_wins_over_other_predicted_pairs_of_its_entities():
    import math

    from kgalign.export.predictions import LinkTable
    from kgalign.export.reviewed import apply_decisions

    table = LinkTable(["a1", "a2", "a3"], ["b1", "b2", "b3"], [0.9, 0.8, 0.4], ["accepted", "accepted", "review"], {"one_to_one": True})
    decisions = [Decision("a1", "b2", "accepted"), Decision("a3", "b3", "rejected")]
    out = apply_decisions(table, decisions)
    rows = list(zip(out.kg1, out.kg2, out.status, strict=True))
    assert rows == [("a1", "b2", "reviewed")]  # a1-b1 and a2-b2 lose their ends; a3-b3 rejected
    assert math.isnan(out.score[0]) and out.meta["reviewed"] == 1 and out.meta["rejected"] == 1
    table.meta = {}  # not one-to-one (e.g. top1): other pairs stay
    assert len(apply_decisions(table, decisions)) == 3
