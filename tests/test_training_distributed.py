"""torch.distributed: a real 2-process gloo run on CPU launched with torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from kgalign.features.synthetic import make_synthetic


def test_torchrun_two_processes_gloo(tmp_path):
    ds = make_synthetic(tmp_path / "ds", n=100, noise=1.0, seed=4)
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes",
            "1",
            "--nproc_per_node",
            "2",
            "-m",
            "kgalign.cli",
            "train",
            str(ds),
            "--model",
            "noco",
            "-o",
            str(run),
            "--epochs",
            "6",
            "--device",
            "cpu",
            "--batch-size",
            "16",
            "--eval-every",
            "3",
            "--lr",
            "5e-3",
            "--set",
            "model.hidden=32",
            "--set",
            "model.noise_size=16",
            "--set",
            "model.icl_weighting=kendall",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout)  # one JSON document: only rank 0 prints
    assert res["world_size"] == 2
    assert json.loads((run / "env.json").read_text())["world_size"] == 2
    # only rank 0 writes: one metrics line per epoch, not two
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
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
