"""`kgalign train --decisions`: a review's accepted pairs become seeds, rejected pairs leave the seeds
and are never bootstrapped; the run records the file and exports mark the accepted pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kgalign import rundir
from kgalign.cli import app
from kgalign.data.decisions import Decision, write_decisions
from kgalign.data.store import load_dataset
from kgalign.features.synthetic import make_synthetic

pytestmark = pytest.mark.usefixtures("single_thread")
ARGS = [
    "--model",
    "mclea",
    "--epochs",
    "6",
    "--eval-every",
    "2",
    "--device",
    "cpu",
    "--lr",
    "5e-3",
    "--set",
    "model.hidden=24",
    "--set",
    "model.feature_dim=24",
    "-q",
]


def _train(*args):
    res = CliRunner().invoke(app, ["train", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res


def test_decisions_change_seeds_negatives_and_the_export(tmp_path):
    ds_path = make_synthetic(tmp_path / "ds", n=80, noise=1.0, seed=2)
    ds = load_dataset(ds_path)
    seeds, test = ds.links_for("train"), ds.links_for("test")
    term = ds.entities
    accepted = [tuple(p) for p in test[:5].tolist()]
    rejected_seed = tuple(seeds[0].tolist())
    wrong = (int(test[6][0]), int(test[7][1]))
    decisions = [Decision(term[a], term[b], "accepted") for a, b in accepted]
    decisions += [
        Decision(term[rejected_seed[0]], term[rejected_seed[1]], "rejected"),
        Decision(term[wrong[0]], term[wrong[1]], "rejected"),
    ]
    dec = tmp_path / "decisions.tsv"
    write_decisions(dec, decisions)
    run = tmp_path / "run"
    _train(
        ds_path,
        "-o",
        run,
        *ARGS,
        "--decisions",
        dec,
        "--iterative",
        "--set",
        "iterative.start=2",
        "--set",
        "iterative.step=1",
        "--set",
        "iterative.add_every=1",
        "--set",
        "iterative.reset_every=1",
    )
    rows = [line.split("\t") for line in (run / rundir.TRAIN_LINKS).read_text().splitlines()[1:]]
    pairs = {(int(a), int(b)): s.strip() for a, b, s in rows}
    assert all(pairs.get(p) == "reviewed" for p in accepted)
    assert rejected_seed not in pairs and wrong not in pairs  # left out, and never bootstrapped
    assert any(s.startswith("bootstrap@") for s in pairs.values())  # bootstrapping did run
    cfg = json.loads((run / rundir.CONFIG).read_text())
    assert cfg["train"]["decisions"] == str(dec.resolve()) and len(cfg["train"]["decisions_sha256"]) == 64
    assert (run / rundir.DECISIONS).read_text() == dec.read_text()  # reviewing the new run resumes them
    # the export of the new run marks the accepted pairs as reviewed
    out = tmp_path / "links.jsonl"
    res = CliRunner().invoke(app, ["export", str(run), "--format", "jsonl", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    status = {(r["kg1"], r["kg2"]): r.get("status") for r in map(json.loads, out.read_text().splitlines())}
    assert all(status.get((term[a], term[b])) == "reviewed" for a, b in accepted)
    assert (term[wrong[0]], term[wrong[1]]) not in status
    # a changed decisions file cannot be resumed into the same run
    write_decisions(dec, decisions[:2])
    res = CliRunner().invoke(
        app,
        [
            "train",
            str(ds_path),
            "-o",
            str(run),
            *ARGS,
            "--decisions",
            str(dec),
            "--iterative",
            "--set",
            "iterative.start=2",
            "--set",
            "iterative.step=1",
            "--set",
            "iterative.add_every=1",
            "--set",
            "iterative.reset_every=1",
            "--resume",
        ],
    )
    assert res.exit_code == 2 and "decisions_sha256" in res.output


def test_missing_decisions_file_is_one_message(tmp_path):
    ds_path = make_synthetic(tmp_path / "ds", n=30, noise=1.0, seed=2)
    res = CliRunner().invoke(app, ["train", str(ds_path), "-o", str(tmp_path / "run"), *ARGS, "--decisions", str(tmp_path / "nope.tsv")])
    assert res.exit_code == 3 and "no such decisions file" in res.output


def test_bootstrapping_never_proposes_a_known_negative():
    import torch

    from kgalign.training.bootstrap import Bootstrapping, ILSchedule

    # four entities per graph whose mutual nearest neighbours are (i, 4 + i)
    emb = torch.eye(4).repeat(2, 1)

    class Model:
        def embed(self):
            return emb

    class Loop:
        model, epoch, partial = Model(), 1, None
        links = np.zeros((0, 2), np.int64)
        source = np.zeros(0, np.int64)

        def embeddings(self):
            return self.model.embed()

    kg = np.array([1] * 4 + [2] * 4)
    boot = Bootstrapping(
        ILSchedule(0, 1, 1, 1),
        kg=kg,
        num_entities=8,
        lr=1e-3,
        lr_factor=1.0,
        warmup=0.0,
        phase_schedule="constant",
        reload_best=False,
        excluded=np.array([[1, 5]]),
    )
    boot.started = True
    loop, record = Loop(), {}
    boot.on_epoch_end(loop, record)
    assert sorted(map(tuple, loop.links.tolist())) == [(0, 4), (2, 6), (3, 7)]
    assert record["bootstrap"]["added"] == 3
