"""The engine's contract beyond the shipped models: a second optimizer, structured numeric
inputs, model-reported metrics and after_step state, checkpointed and resumed bit-exactly
(in-process and through a real SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from support.toy_model import NAME, register, unregister

from kgalign.features.store import save_feature
from kgalign.features.synthetic import make_synthetic
from kgalign.training import train

pytestmark = pytest.mark.usefixtures("single_thread", "toy_registered")


@pytest.fixture(scope="module")
def toy_registered():
    register()
    yield
    unregister()


KW = dict(epochs=8, eval_every=2, batch_size=20, lr=1e-2, device="cpu", checkpoint_every=3, select_on="valid")


def _with_numeric(path: Path, n: int, seed: int = 0) -> None:
    """Numeric facts correlated across the two graphs (presence about 60 %)."""
    rng = np.random.default_rng(seed)
    from kgalign.data.store import load_dataset

    ds = load_dataset(path)
    gold = ds.links
    values = np.zeros((2 * n, 6), np.float32)
    present = (rng.random((2 * n, 6)) < 0.6).astype(np.float32)
    latent = rng.random((n, 6))
    values[gold[:, 0]] = latent
    values[gold[:, 1]] = np.clip(latent + 0.05 * rng.normal(size=latent.shape), 0, 1)
    values *= present
    save_feature(path, "numeric_present", present, present.any(1), {"featurizer": "test"})
    save_feature(path, "numeric", values, present.any(1), {"featurizer": "test"})


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory):
    path = make_synthetic(tmp_path_factory.mktemp("eng") / "ds", n=120, noise=1.0, seed=3, modalities=("attribute",))
    _with_numeric(path, 120)
    return path


@pytest.fixture(scope="module")
def reference(ds_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("engref") / "run"
    res = train(ds_path, model=NAME, out_dir=out, **KW)
    assert res.finished
    return out


def _records(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows


def test_numeric_present_travels_inside_numeric(ds_path):
    from kgalign.data.store import load_dataset
    from kgalign.features.store import load_features
    from kgalign.models.inputs import build_inputs

    inputs = build_inputs(load_dataset(ds_path), load_features(ds_path, ["attribute", "numeric", "numeric_present"]))
    assert set(inputs.features) == {"attribute", "numeric"}
    assert inputs.numeric is not None and inputs.numeric.num_attributes == 6
    assert 0.5 < len(inputs.numeric.entity) / (240 * 6) < 0.7


def test_two_optimizers_are_checkpointed_and_metrics_reported(reference):
    tensors = load_file(reference / "checkpoints" / "last.safetensors")
    meta = json.loads((reference / "checkpoints" / "last.json").read_text())
    assert sorted(meta["optimizers"]) == ["critic", "main"]
    assert any(k.startswith("optim.critic.") for k in tensors) and any(k.startswith("optim.main.") for k in tensors)
    groups = meta["optimizers"]["critic"]["param_groups"]
    assert groups[0]["weight_decay"] == 0.0 and groups[0]["lr_scale"] == 2.0
    records = _records(reference / "metrics.jsonl")
    steps = np.cumsum([r["steps"] for r in records])
    # after_step ran once per step; epoch_metrics and averaged step_metrics reach metrics.jsonl
    assert [r["model"]["steps_seen"] for r in records] == steps.tolist()
    assert all(0.0 <= r["model"]["critic.accuracy"] <= 1.0 for r in records)
    assert records[-1]["parts"]["critic"] < records[0]["parts"]["critic"]
    results = json.loads((reference / "results.json").read_text())
    pool = results["valid"]["candidates"]["kg2"]  # KG2 entities outside the seed links
    assert results["valid"]["cosine"]["l2r"]["hits@1"] > 10 / pool, pool


@pytest.mark.parametrize("stop", [2, 5])
def test_stop_and_resume_with_two_optimizers_is_bitwise_identical(ds_path, reference, tmp_path, stop):
    out = tmp_path / "run"
    first = train(ds_path, model=NAME, out_dir=out, stop_after=stop, **KW)
    assert not first.finished and first.epoch == stop
    again = train(ds_path, model=NAME, out_dir=out, resume=True, **KW)
    assert again.finished
    assert np.array_equal(np.load(out / "embeddings.npy"), np.load(reference / "embeddings.npy"))
    assert _records(out / "metrics.jsonl") == _records(reference / "metrics.jsonl")


def _cli(*args):
    return [sys.executable, str(Path(__file__).parent / "support" / "cli_with_toy.py"), *args]


def test_sigint_mid_run_then_resume_matches_with_two_optimizers(ds_path, reference, tmp_path):
    args = [
        "train",
        str(ds_path),
        "-o",
        str(tmp_path / "run"),
        "--model",
        NAME,
        "--epochs",
        "8",
        "--eval-every",
        "2",
        "--batch-size",
        "20",
        "--lr",
        "1e-2",
        "--device",
        "cpu",
        "--checkpoint-every",
        "3",
        "-q",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and metrics.read_text().count("\n") >= 2:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    p = subprocess.run(_cli(*args, "--resume"), capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "run"
    assert np.array_equal(np.load(run / "embeddings.npy"), np.load(reference / "embeddings.npy"))
    assert _records(run / "metrics.jsonl") == _records(reference / "metrics.jsonl")


def test_groups_must_cover_every_parameter(ds_path, monkeypatch, tmp_path):
    from support.toy_model import NumericToy

    monkeypatch.setattr(NumericToy, "optimizer_groups", lambda self: [{"params": list(self.critic.parameters())}])
    with pytest.raises(ValueError, match="leaves out parameters"):
        train(ds_path, model=NAME, out_dir=tmp_path / "run", **KW)


def test_interrupt_after_the_last_step_of_an_epoch_logs_the_right_lr_on_resume(ds_path, reference, tmp_path, monkeypatch):
    """SIGINT arrives while the last step of epoch 2 runs: the resumed run finishes that epoch with no
    step left, and its metrics (lr included) equal the uninterrupted run's."""
    import signal as sig

    from support.toy_model import NumericToy

    from kgalign.training.loop import TrainingInterrupted

    steps_per_epoch = json.loads((reference / "metrics.jsonl").read_text().splitlines()[0])["steps"]
    original = NumericToy.after_step

    def after_step(self, out):
        original(self, out)
        if int(self.steps_seen) == 2 * steps_per_epoch:
            os.kill(os.getpid(), sig.SIGINT)

    monkeypatch.setattr(NumericToy, "after_step", after_step)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="during epoch 2"):
        train(ds_path, model=NAME, out_dir=out, **KW)
    monkeypatch.setattr(NumericToy, "after_step", original)
    train(ds_path, model=NAME, out_dir=out, resume=True, **KW)
    assert _records(out / "metrics.jsonl") == _records(reference / "metrics.jsonl")
