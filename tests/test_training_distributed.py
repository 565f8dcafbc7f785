"""torch.distributed: a real 2-process gloo run on CPU launched with torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kgalign.features.synthetic import make_synthetic


def test_torchrun_two_processes_gloo(tmp_path):
    ds = make_synthetic(tmp_path / "ds", n=100, noise=1.0, seed=4)
    run = tmp_path / "run"
    extra = ["--epochs", "6", "--batch-size", "16", "--eval-every", "3", "--lr", "5e-3"]
    extra += ["--set", "model.hidden=32", "--set", "model.noise_size=16", "--set", "model.icl_weighting=kendall"]
    # bootstrapping from epoch 3: a mutual-NN search (rows split across the ranks) each epoch, pairs added at epoch 5
    extra += ["--iterative", "--il-start", "3", "--set", "iterative.step=1", "--set", "iterative.add_every=2"]
    res = _torchrun_train(ds, run, extra)  # one JSON document on stdout: only rank 0 prints
    assert res["world_size"] == 2
    assert json.loads((run / "env.json").read_text())["world_size"] == 2
    # only rank 0 writes: one metrics line per epoch, not two
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    # the ranks agreed on the pairs (else their batch counts would differ and DDP would stall)
    assert [r["epoch"] for r in records if r.get("bootstrap", {}).get("mutual_nn", 0) > 0] == [4, 5, 6]
    assert records[4]["bootstrap"]["added"] > 0
    pool = res["valid"]["candidates"]["kg2"]  # every KG2 entity outside the 30 seed links
    assert pool == 70 and res["valid"]["cosine"]["l2r"]["hits@1"] > 5 / pool  # chance is 1/70
    emb = np.load(run / "embeddings.npy")
    assert emb.shape[0] == 200 and np.isfinite(emb).all()


def test_ddp_replicas_keep_identical_parameters_and_buffers(tmp_path):
    """Training-time state changes only in after_step, so both ranks end with the same state."""
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    ds = make_synthetic(tmp_path / "ds", n=80, noise=1.0, seed=6)
    script = Path(__file__).parent / "support" / "ddp_replicas.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        str(script),
        str(ds),
        str(tmp_path),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert a.keys() == b.keys() and "noise.scale" in a
    assert bool(a["noise.initialised"].all())  # the adaptive scales really changed during training
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _torchrun_train(ds, run, extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2"]
    cmd += ["-m", "kgalign.cli", "train", str(ds), "--model", "noco", "-o", str(run), "--device", "cpu", "--json", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


# Tolerance of the 1- vs 2-process comparison: the ranks split every batch (the same effective
# batch and learning rate), but in-batch negatives are per rank and each rank samples its own
# subgraphs, so the runs are not bitwise equal; their valid metrics (ranked among the 70 non-seed
# entities per side) agree within these bounds (measured: 0.05 Hits@1, 0.03 MRR).
DDP_TOLERANCE = {"hits@1": 0.15, "mrr": 0.1}


@pytest.mark.parametrize("minibatch", ["true", "false"])
def test_two_processes_match_one_process_within_tolerance(tmp_path, minibatch):
    from kgalign.training import train

    ds = make_synthetic(tmp_path / "ds", n=100, noise=1.0, seed=4)
    opts = ["--epochs", "6", "--batch-size", "16", "--eval-every", "3", "--lr", "5e-3", "--select-on", "last"]
    opts += ["--minibatch", minibatch]
    sets = {"model.hidden": 32, "model.noise_size": 16, "train.fanout": 5}
    two = _torchrun_train(ds, tmp_path / "two", opts + [x for k, v in sets.items() for x in ("--set", f"{k}={v}")])
    one = train(
        ds,
        model="noco",
        out_dir=tmp_path / "one",
        epochs=6,
        batch_size=16,
        eval_every=3,
        lr=5e-3,
        select_on="last",
        device="cpu",
        hidden=32,
        noise_size=16,
        minibatch=minibatch == "true",
        fanout=5,
    ).results
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["minibatch"] is one["minibatch"] is (minibatch == "true")
    for key, tol in DDP_TOLERANCE.items():
        a, b = one["valid"]["cosine"]["l2r"][key], two["valid"]["cosine"]["l2r"][key]
        assert abs(a - b) <= tol, (key, a, b)
    assert two["test"]["cosine"]["l2r"]["hits@1"] > 0.2 and two["valid"]["cosine"]["l2r"]["mrr"] > 0.2  # chance: 1/50, 1/70
