"""`kgalign train` on the command line: end-to-end subprocess run, run-directory contents, config precedence."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kgalign.cli import app
from kgalign.features.synthetic import make_synthetic

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "ds", n=100, noise=1.0, seed=3)


def _runner():
    return CliRunner()


def test_end_to_end_subprocess(ds_path, tmp_path):
    run = tmp_path / "RUN"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "kgalign.cli",
            "train",
            str(ds_path),
            "--model",
            "noco",
            "--epochs",
            "3",
            "-o",
            str(run),
            "--device",
            "cpu",
            "--set",
            "model.hidden=32",
            "--set",
            "model.noise_size=16",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    # data on stdout: the metrics table; logs on stderr, no progress bar (stderr is not a TTY)
    assert "valid" in p.stdout and "test" in p.stdout and "H@1" in p.stdout
    assert "INFO" not in p.stdout and "\r" not in p.stderr
    names = {x.name for x in run.iterdir()}
    assert names >= {
        "config.json",
        "env.json",
        "metrics.jsonl",
        "checkpoints",
        "best.safetensors",
        "embeddings.npy",
        "train_links.tsv",
        "results.json",
    }
    assert {x.name for x in (run / "checkpoints").iterdir()} == {"last.safetensors", "last.json"}
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["dataset"] == str(ds_path.resolve()) and cfg["model"]["name"] == "noco"
    assert cfg["train"]["epochs"] == 3 and cfg["train"]["seed"] == 42 and cfg["train"]["device"] == "cpu"
    assert cfg["train"]["select_on"] == "valid"
    env_json = json.loads((run / "env.json").read_text())
    assert {"python", "torch", "kgalign", "device", "started"} <= set(env_json)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    emb = np.load(run / "embeddings.npy", allow_pickle=False)
    assert emb.shape[0] == 200 and emb.dtype == np.float32
    header, *rows = (run / "train_links.tsv").read_text().splitlines()
    assert header == "kg1\tkg2\tsource" and len(rows) == 30 and all(r.endswith("\tseed") for r in rows)
    res = json.loads((run / "results.json").read_text())
    assert res["epochs_run"] == 3 and res["selection"]["split"] == "valid"


def test_json_output_and_select_on_test_warning(ds_path, tmp_path):
    r = _runner().invoke(
        app,
        [
            "train",
            str(ds_path),
            "-m",
            "mclea",
            "-o",
            str(tmp_path / "a"),
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--set",
            "model.hidden=16",
            "--set",
            "model.feature_dim=16",
            "--json",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out == json.loads((tmp_path / "a" / "results.json").read_text())
    r = _runner().invoke(
        app,
        [
            "train",
            str(ds_path),
            "-m",
            "mclea",
            "-o",
            str(tmp_path / "b"),
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--set",
            "model.hidden=16",
            "--select-on",
            "test",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("!!!") and "WARNING" in r.stdout and "TEST LINKS" in r.stdout
    assert "WARNING" in r.stderr


def test_config_file_set_and_flags_precedence(ds_path, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  name: meaformer\n  hidden: 48\ntrain:\n  epochs: 2\n  lr: 1.0e-3\n  eval_every: 1\n")
    run = tmp_path / "run"
    r = _runner().invoke(
        app,
        [
            "train",
            str(ds_path),
            "-o",
            str(run),
            "--config",
            str(conf),
            "--set",
            "model.hidden=24",
            "--set",
            "train.lr=2e-3",
            "--lr",
            "3e-3",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.stderr
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["name"] == "meaformer"  # from the file
    assert cfg["model"]["hidden"] == 24  # --set beats the file
    assert cfg["train"]["lr"] == 3e-3  # the explicit flag beats --set
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["eval_every"] == 1
    assert cfg["model"]["fusion_heads"] == 1  # registry default filled in
    # resume with a different config: refused with the differences, exit 2
    r = _runner().invoke(
        app,
        [
            "train",
            str(ds_path),
            "-o",
            str(run),
            "--config",
            str(conf),
            "--set",
            "model.hidden=24",
            "--lr",
            "1e-2",
            "--device",
            "cpu",
            "--resume",
        ],
    )
    assert r.exit_code == 2
    assert "different configuration" in r.stderr and "train.lr" in r.stderr


@pytest.mark.parametrize(
    "args, code, msg",
    [
        (["--model", "nope"], 2, "unknown model"),
        (["--model", "noco", "--select-on", "tset"], 2, "select_on"),
        (["--model", "noco", "--set", "train.bogus=1"], 2, "train.bogus"),
        (["--model", "noco", "--device", "cuda:7"], 3, "cuda"),
        (["--model", "noco", "--device", "cpu", "--amp", "fp16"], 2, "fp16"),
    ],
)
def test_bad_options_exit_with_one_message(ds_path, tmp_path, args, code, msg):
    if msg == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = _runner().invoke(app, ["train", str(ds_path), "-o", str(tmp_path / "run"), *args])
    assert r.exit_code == code, r.stderr
    assert r.stderr.startswith("error:") and msg in r.stderr
    assert not (tmp_path / "run").exists()


def test_no_features_exit_3(tmp_path):
    ds = make_synthetic(tmp_path / "nofeat", n=30, with_features=False)
    r = _runner().invoke(app, ["train", str(ds), "-m", "noco", "-o", str(tmp_path / "run"), "--device", "cpu"])
    assert r.exit_code == 3 and "kgalign features" in r.stderr


def test_stop_after_then_resume(ds_path, tmp_path):
    base = [
        "train",
        str(ds_path),
        "-m",
        "mclea",
        "-o",
        str(tmp_path / "run"),
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--set",
        "model.hidden=16",
        "-q",
    ]
    r = _runner().invoke(app, base + ["--stop-after", "1", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == {"finished": False, "epoch": 1, "run_dir": str(tmp_path / "run")}
    r = _runner().invoke(app, base + ["--resume"])
    assert r.exit_code == 0 and "3/3 epochs" in r.stdout


def test_resume_accepts_a_run_started_before_a_config_key_was_added(ds_path, tmp_path):
    from kgalign import rundir

    run = tmp_path / "run"
    base = ["train", str(ds_path), "-m", "mclea", "-o", str(run), "--epochs", "3", "--device", "cpu", "--set", "model.hidden=16", "-q"]
    r = _runner().invoke(app, base + ["--stop-after", "1"])
    assert r.exit_code == 0, r.stderr
    # what an older kgalign wrote: no eval.sample in the config, and the checkpoint hashed without it
    cfg = json.loads((run / "config.json").read_text())
    del cfg["eval"]["sample"]
    (run / "config.json").write_text(json.dumps(cfg))
    meta_path = run / "checkpoints" / "last.json"
    meta = json.loads(meta_path.read_text())
    meta["config_hash"] = rundir.run_config_hash(cfg)
    meta_path.write_text(json.dumps(meta))
    r = _runner().invoke(app, base[:-1] + ["--resume"])
    assert r.exit_code == 0, r.stderr
    assert "3/3 epochs" in r.stdout and "eval.sample were added" in r.stderr
    # a key the run did set still counts
    r = _runner().invoke(app, base[:-1] + ["--set", "train.lr=0.01", "--resume", "-q"])
    assert r.exit_code == 2 and "train.lr" in r.stderr


def test_help_has_an_example():
    r = _runner().invoke(app, ["train", "--help"])
    assert r.exit_code == 0 and "Example" in r.stdout and "--select-on" in r.stdout
