"""Checkpoints, interruption (SIGINT/SIGTERM) and --resume: a resumed run ends exactly where an uninterrupted one ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from kgalign.errors import InputError, MissingResourceError
from kgalign.features.synthetic import make_synthetic
from kgalign.training import train

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "ds", n=150, noise=1.5, seed=1)


# Iterative training on, so bootstrapped links, the IL optimizer/schedule switch and the
# candidate set all have to survive the restart; batch 16 gives several steps per epoch.
KW = dict(
    epochs=14,
    eval_every=3,
    batch_size=16,
    lr=5e-3,
    device="cpu",
    checkpoint_every=4,
    hidden=32,
    noise_size=16,
    iterative=True,
    iterative__start=5,
    iterative__step=2,
    iterative__reset_every=4,
    iterative__add_every=4,
)


def _records(path):
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        r.pop("seconds")
        out.append(r)
    return out


@pytest.fixture(scope="module")
def reference(ds_path, tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.set_num_threads(1)
        out = tmp_path_factory.mktemp("ref") / "run"
        res = train(ds_path, model="noco", out_dir=out, **KW)
    assert res.finished and res.results["train_links"]["bootstrapped"] > 0
    return out


@pytest.mark.parametrize("stop", [3, 7])  # before iterative training starts, and inside it
def test_stop_and_resume_is_bitwise_identical(ds_path, reference, tmp_path, stop):
    out = tmp_path / "run"
    part = train(ds_path, model="noco", out_dir=out, stop_after=stop, **KW)
    assert not part.finished and part.epoch == stop and part.results is None
    assert not (out / "embeddings.npy").exists()
    done = train(ds_path, model="noco", out_dir=out, resume=True, **KW)
    assert done.finished and done.epoch == 14
    assert [r["epoch"] for r in json.loads((out / "env.json").read_text())["resumed"]] == [stop]
    assert np.array_equal(np.load(out / "embeddings.npy"), np.load(reference / "embeddings.npy"))
    assert (out / "train_links.tsv").read_text() == (reference / "train_links.tsv").read_text()
    assert _records(out / "metrics.jsonl") == _records(reference / "metrics.jsonl")
    a, b = load_file(out / "best.safetensors"), load_file(reference / "best.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_changed_config_is_refused(ds_path, tmp_path):
    out = tmp_path / "run"
    train(ds_path, model="noco", out_dir=out, stop_after=1, **KW)
    with pytest.raises(InputError, match=r"different configuration[\s\S]*train\.lr: 0\.005 -> 0\.001"):
        train(ds_path, model="noco", out_dir=out, resume=True, **dict(KW, lr=1e-3))
    with pytest.raises(InputError, match="model.hidden"):
        train(ds_path, model="noco", out_dir=out, resume=True, **dict(KW, hidden=16))
    # the checkpoint cadence (like the device) is not part of the hash: the run may continue with another
    train(ds_path, model="noco", out_dir=out, resume=True, stop_after=1, **dict(KW, checkpoint_every=2))


def test_existing_run_dir_needs_resume_or_force(ds_path, tmp_path):
    out = tmp_path / "run"
    train(ds_path, model="noco", out_dir=out, stop_after=1, **KW)
    with pytest.raises(FileExistsError, match="--resume"):
        train(ds_path, model="noco", out_dir=out, **KW)
    res = train(ds_path, model="noco", out_dir=out, force=True, stop_after=2, **dict(KW, seed=3))
    assert res.epoch == 2 and json.loads((out / "config.json").read_text())["train"]["seed"] == 3
    # a --force start that fails on bad model options leaves the old run in place
    with pytest.raises(InputError, match="option hidden must be"):
        train(ds_path, model="noco", out_dir=out, force=True, **dict(KW, hidden="abc"))
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 3
    assert (out / "checkpoints" / "last.json").is_file()
    with pytest.raises(MissingResourceError, match="no run to resume"):
        train(ds_path, model="noco", out_dir=tmp_path / "none", resume=True, **KW)


def test_checkpoints_and_outputs_contain_no_pickle(reference):
    ck = reference / "checkpoints"
    tensors = load_file(ck / "last.safetensors")
    meta = json.loads((ck / "last.json").read_text())
    assert meta["epoch"] == 14 and meta["finished"] and len(meta["config_hash"]) == 64
    assert meta["seed"] == 42
    assert tensors["rng.torch"].dtype == torch.uint8 and "rng.shuffle" in tensors
    assert any(k.startswith("model.") for k in tensors) and any(k.startswith("optim.") for k in tensors)
    assert any(k.startswith("cb.selection.best.") for k in tensors)
    assert tensors["links.train"].shape[1] == 2 and tensors["links.source"].max() > 0
    with safe_open(str(ck / "last.safetensors"), framework="pt") as f:
        assert f.metadata()["token"] == meta["token"]
    load_file(reference / "best.safetensors")
    np.load(reference / "embeddings.npy", allow_pickle=False)
    for p in reference.rglob("*"):
        if p.is_file():
            assert not p.read_bytes()[:2].startswith(b"\x80"), f"{p} looks like a pickle"


def test_resume_of_a_finished_run_rewrites_the_same_outputs(ds_path, reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = np.load(out / "embeddings.npy")
    (out / "embeddings.npy").unlink()
    res = train(ds_path, model="noco", out_dir=out, resume=True, **KW)
    assert res.finished and res.epoch == 14
    assert np.array_equal(np.load(out / "embeddings.npy"), before)


# ---------------------------------------------------------------- real signals, real CLI process

# The same configuration as KW, through the command line.
CLI_ARGS = [
    "--model",
    "noco",
    "--device",
    "cpu",
    "--epochs",
    "14",
    "--eval-every",
    "3",
    "--batch-size",
    "16",
    "--lr",
    "5e-3",
    "--checkpoint-every",
    "4",
    "--set",
    "model.hidden=32",
    "--set",
    "model.noise_size=16",
    "--iterative",
    "--il-start",
    "5",
    "--set",
    "iterative.step=2",
    "--set",
    "iterative.reset_every=4",
    "--set",
    "iterative.add_every=4",
    "-q",
]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _interrupt(ds, out, sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "kgalign.cli", "train", str(ds), "-o", str(out), *CLI_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and metrics.read_text().count("\n") >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    meta = json.loads((out / "checkpoints" / "last.json").read_text())
    assert 2 <= meta["epoch"] < 14
    assert not (out / "results.json").exists()


def test_sigint_saves_checkpoint_exits_130_and_resume_matches(ds_path, reference, tmp_path):
    out = tmp_path / "run"
    _interrupt(ds_path, out, signal.SIGINT)
    p = subprocess.run(
        [sys.executable, "-m", "kgalign.cli", "train", str(ds_path), "-o", str(out), *CLI_ARGS, "--resume"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    # identical to the uninterrupted in-process run with the same configuration
    assert np.array_equal(np.load(out / "embeddings.npy"), np.load(reference / "embeddings.npy"))
    assert _records(out / "metrics.jsonl") == _records(reference / "metrics.jsonl")
    assert (out / "train_links.tsv").read_text() == (reference / "train_links.tsv").read_text()


def test_sigterm_saves_checkpoint_and_exits_130(ds_path, tmp_path):
    _interrupt(ds_path, tmp_path / "run", signal.SIGTERM)
