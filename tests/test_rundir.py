"""The run directory has one owner: `train --force` leaves nothing of the old model behind,
and results, predictions and provenance carry one configuration hash."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from kgalign import rundir
from kgalign.cli import app
from kgalign.features.synthetic import make_synthetic

pytestmark = pytest.mark.usefixtures("single_thread")

COMMON = [
    "--model",
    "mclea",
    "--epochs",
    "4",
    "--eval-every",
    "2",
    "--device",
    "cpu",
    "--set",
    "model.hidden=24",
    "--set",
    "model.feature_dim=24",
    "--lr",
    "5e-3",
]


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("rd") / "ds", n=60, noise=1.0, seed=5)


def _invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def _links(ttl: str) -> set[tuple[str, str]]:
    return set(re.findall(r"<(http://kg1[^>]+)> owl:sameAs <(http://kg2[^>]+)> \.", ttl))


def test_force_retrain_then_export_exports_the_new_model(ds_path, tmp_path):
    run = tmp_path / "run"
    _invoke("train", ds_path, "-o", run, *COMMON, "--seed", "1", "-q")
    _invoke("align", run, "--threshold", "-1", "-q")
    old = json.loads((run / rundir.PREDICTIONS_META).read_text())
    _invoke("train", ds_path, "-o", run, *COMMON, "--seed", "2", "--force", "-q")
    assert not (run / rundir.PREDICTIONS).exists() and not (run / rundir.PREDICTIONS_META).exists()
    out = tmp_path / "links.nt"
    _invoke("export", run, "--format", "nt", "-o", out, "-q")  # aligns the new model first
    new = json.loads((run / rundir.PREDICTIONS_META).read_text())
    results = json.loads((run / rundir.RESULTS).read_text())
    assert new["config_sha256"] == results["config_hash"] != old["config_sha256"]


def test_results_predictions_and_provenance_share_one_config_hash(ds_path, tmp_path):
    run = tmp_path / "run"
    _invoke("train", ds_path, "-o", run, *COMMON, "-q")
    out = tmp_path / "links.ttl"
    _invoke("export", run, "--format", "ttl", "-o", out, "-q")
    chash = json.loads((run / rundir.RESULTS).read_text())["config_hash"]
    config = json.loads((run / rundir.CONFIG).read_text())
    assert rundir.run_config_hash(config) == chash
    assert json.loads((run / rundir.PREDICTIONS_META).read_text())["config_sha256"] == chash
    prov = next(tmp_path.glob("links.ttl.prov*"))
    assert chash in prov.read_text()
    ckpt = json.loads((run / rundir.CHECKPOINTS / "last.json").read_text())
    assert ckpt["config_hash"] == chash
    assert _links(out.read_text())


def test_a_bad_option_found_late_never_costs_the_old_run(ds_path, tmp_path):
    run = tmp_path / "run"
    _invoke("train", ds_path, "-o", run, *COMMON, "-q")
    before = sorted(p.name for p in run.iterdir())
    res = CliRunner().invoke(
        app, ["train", str(ds_path), "-o", str(run), *COMMON, "--force", "--iterative", "--set", "iterative.lr_factor=abc"]
    )
    assert res.exit_code == 2 and "iterative.lr_factor" in res.output
    assert sorted(p.name for p in run.iterdir()) == before


def test_a_foreign_checkpoint_is_refused_before_loading(ds_path, tmp_path):
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    _invoke("train", ds_path, "-o", a, *COMMON, "-q")
    _invoke("train", ds_path, "-o", b, *COMMON, "--set", "model.hidden=16", "--stop-after", "1", "-q")
    shutil.rmtree(b / rundir.CHECKPOINTS)
    shutil.copytree(a / rundir.CHECKPOINTS, b / rundir.CHECKPOINTS)
    res = CliRunner().invoke(app, ["train", str(ds_path), "-o", str(b), *COMMON, "--set", "model.hidden=16", "--resume"])
    assert res.exit_code == 2 and "different configuration" in res.output
