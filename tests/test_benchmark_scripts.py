"""The benchmark scripts that read run directories: time-to-accuracy curves and the GPU suite's summary."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kgalign.features.synthetic import make_synthetic
from kgalign.training import train

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench")
    ds = make_synthetic(base / "ds", n=80, noise=1.0, seed=3)
    kw = dict(epochs=4, eval_every=2, batch_size=32, lr=5e-3, device="cpu", hidden=16)
    train(ds, model="mclea", out_dir=base / "runs" / "mclea_off", **kw)
    # a row stopped by the suite's budget: checkpointed after 2 of 4 epochs, no results.json
    train(ds, model="meaformer", out_dir=base / "runs" / "meaformer_bf16", stop_after=2, **kw)
    return base / "runs"


def _benchmark_module(name: str):
    """Import ``benchmarks/NAME.py`` (the scripts import each other as top-level modules)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_plot_curves_writes_png_and_points(runs, tmp_path):
    png = tmp_path / "img" / "curves.png"
    p = _script("benchmarks/plot_curves.py", f"{runs / 'mclea_off'}:MCLEA", str(runs / "meaformer_bf16"), "-o", str(png))
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    points = json.loads(png.with_suffix(".json").read_text())
    assert set(points) == {"MCLEA", "meaformer_bf16"}
    records = [json.loads(x) for x in (runs / "mclea_off" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "valid" in r]
    assert points["MCLEA"]["epoch"] == [r["epoch"] for r in evals] == [2, 4]
    assert points["MCLEA"]["valid"] == [r["valid"]["csls"]["l2r"]["hits@1"] for r in evals]
    assert points["MCLEA"]["seconds"][-1] == pytest.approx(sum(r["seconds"] for r in records), abs=1e-2)
    p = _script("benchmarks/plot_curves.py", str(tmp_path / "missing"), "-o", str(png))
    assert p.returncode != 0 and "no such file" in p.stderr


def test_gpu_suite_summary_reports_finished_and_stopped_rows(runs, tmp_path):
    p = _script("benchmarks/gpu_suite_summary.py", "--runs", str(runs), "--out", str(tmp_path), "--budget", "300")
    assert p.returncode == 0, p.stderr
    rows = {r["model"]: r for r in json.loads((tmp_path / "summary.json").read_text())["rows"]}
    res = json.loads((runs / "mclea_off" / "results.json").read_text())
    assert rows["mclea"]["precision"] == "fp32" and rows["mclea"]["status"] == "finished"
    assert rows["mclea"]["test_h1"] == res["test"]["csls"]["l2r"]["hits@1"] and rows["mclea"]["epochs"] == 4
    assert rows["meaformer"]["precision"] == "bf16" and rows["meaformer"]["status"].startswith("stopped at the budget (epoch 2)")
    assert rows["meaformer"]["test_h1"] is not None
    md = (tmp_path / "summary.md").read_text()
    assert "| mclea | fp32 | finished | 4 |" in md and "still running after 300 s stopped there" in md


def _record(folder: Path, stage: str, n: int, seconds: float, rss: float, **extra) -> None:
    rec = {"stage": stage, "n_per_side": n, "triples_per_side": 5 * n, "seconds": seconds, "peak_rss_gib": rss, "extra": extra}
    (folder / f"{stage}-{n}.json").write_text(json.dumps(rec))


def test_scale_report_fits_growth_exponents_and_plots(tmp_path):
    d = tmp_path / "scale"
    d.mkdir()
    for n in (10_000, 100_000, 1_000_000):
        _record(d, "ingest", n, 2e-4 * n, 1e-5 * n)  # linear: b = 1
        _record(d, "search_exact", n, 1e-8 * n * n, 0.5, **{"recall@1": 1.0})  # quadratic time, flat memory
    p = _script("benchmarks/scale_report.py", "--dir", str(d), "-o", str(tmp_path / "s.png"), "--md", str(tmp_path / "s.md"))
    assert p.returncode == 0, p.stderr
    md = (tmp_path / "s.md").read_text()
    assert "| ingest | 1.00 | 1.00 | 10k, 100k, 1M |" in md
    assert "| search_exact | 2.00 | 0.00 | 10k, 100k, 1M |" in md
    assert "| search_exact | 1M | 5000000 | 10000.0 | 0.50 | recall@1 1.000 |" in md
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    (d / "broken.json").write_text('{"stage": "x"}')
    p = _script("benchmarks/scale_report.py", "--dir", str(d), "-o", str(tmp_path / "t.png"))
    assert p.returncode != 0 and "broken.json" in p.stderr and not (tmp_path / "t.png").exists()


def test_scale_train_record_turns_a_run_into_scaling_records(runs, tmp_path):
    log = tmp_path / "time.log"
    log.write_text("\tUser time (seconds): 12.5\n\tSystem time (seconds): 1.5\n\tMaximum resident set size (kbytes): 2097152\n")
    out = tmp_path / "scale"
    p = _script("benchmarks/scale_train_record.py", str(runs / "mclea_off"), "--n", "40", "--time-log", str(log), "--out", str(out))
    assert p.returncode == 0, p.stderr
    epoch = json.loads((out / "train_minibatch_epoch-40.json").read_text())
    total = json.loads((out / "train_minibatch_total-40.json").read_text())
    res = json.loads((runs / "mclea_off" / "results.json").read_text())
    records = [json.loads(x) for x in (runs / "mclea_off" / "metrics.jsonl").read_text().splitlines()]
    secs = sorted(r["seconds"] for r in records)
    assert epoch["seconds"] == pytest.approx((secs[1] + secs[2]) / 2, abs=0.06)  # median of 4 epochs
    assert total["seconds"] >= epoch["seconds"] and total["peak_rss_gib"] == 2.0
    assert total["extra"]["test_hits1"] == res["test"]["csls"]["l2r"]["hits@1"] and total["extra"]["user_s"] == 12.5
    p = _script("benchmarks/scale_report.py", "--dir", str(out), "-o", str(tmp_path / "s.png"))
    assert p.returncode == 0, p.stderr
    p = _script("benchmarks/scale_train_record.py", str(runs / "meaformer_bf16"), "--n", "40", "--out", str(out))
    assert p.returncode != 0 and "no results.json" in p.stderr


def test_mpsea_low_resource_resplit_keeps_test_fixed_and_nests_train(tmp_path):
    resplit = _benchmark_module("mpsea_sweeps").resplit
    from kgalign.data.store import load_dataset

    ds = make_synthetic(tmp_path / "ds", n=200, noise=1.0, seed=1)
    splits = {}
    for r in (0.05, 0.2):
        out = resplit(ds, tmp_path / f"r{r}", r, seed=4)
        d = load_dataset(out)
        splits[r] = {s: {tuple(x) for x in d.links_for(s).tolist()} for s in ("train", "valid", "test")}
        assert (out / "features" / "manifest.json").is_file()
    assert len(splits[0.05]["train"]) == 10 and len(splits[0.2]["train"]) == 40
    assert splits[0.05]["train"] < splits[0.2]["train"]  # nested
    assert splits[0.05]["test"] == splits[0.2]["test"] and len(splits[0.2]["test"]) == 120
    assert splits[0.05]["valid"] == splits[0.2]["valid"] and len(splits[0.2]["valid"]) == 20
    assert not splits[0.2]["train"] & (splits[0.2]["test"] | splits[0.2]["valid"])


def test_mpsea_sensitivity_sweep_end_to_end(tmp_path):
    ds = make_synthetic(tmp_path / "ds", n=60, noise=1.0, seed=2)
    out = tmp_path / "sens.md"
    p = _script(
        "benchmarks/mpsea_sweeps.py", "sensitivity", str(ds), "--param", "mi_weight", "--values", "0.0", "0.5",
        "--epochs", "2", "--out", str(out), "--work", str(tmp_path / "w"),
        "--", "--device", "cpu", "--batch-size", "16", "--eval-every", "2",
        "--set", "model.hidden=40", "--set", "model.fusion_ffn=40", "--set", "model.outlook_grid=10",
        "--set", "model.mi_negatives=64",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["value"] for r in lines] == [0.0, 0.5] and all(0 <= r["hits@1"] <= 1 for r in lines)
    cfg = json.loads((tmp_path / "w" / "mi_weight_0.5_s1" / "config.json").read_text())
    assert cfg["model"]["mi_weight"] == 0.5
    assert "| mi_weight |" in out.read_text() and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


TINY_MPSEA = [
    "--set",
    "model.hidden=40",
    "--set",
    "model.fusion_ffn=40",
    "--set",
    "model.outlook_grid=10",
    "--set",
    "model.mi_negatives=64",
]


def test_job_queue_resumes_an_interrupted_run_and_skips_a_finished_one(tmp_path):
    run_jobs = _benchmark_module("job_queue").run_jobs
    ds = make_synthetic(tmp_path / "ds", n=60, noise=1.0, seed=2)
    run = tmp_path / "runs" / "r"
    cmd = ["kgalign", "train", str(ds), "--model", "mclea", "--epochs", "3", "--eval-every", "1", "--device", "cpu"]
    cmd += ["--batch-size", "16", "--set", "model.hidden=16", "-o", str(run), "-q"]
    stop = subprocess.run([sys.executable, "-m", "kgalign.cli", *cmd[1:], "--stop-after", "1"], capture_output=True, text=True, cwd=REPO)
    assert stop.returncode == 0, stop.stderr
    assert not (run / "results.json").exists() and (run / "checkpoints").is_dir()
    (msg,) = run_jobs([(cmd, run)], 1, REPO)
    assert msg.startswith("r: exit 0 ") and msg.endswith("(resumed)") and (run / "results.json").is_file()
    epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]  # resumed after epoch 1, nothing trained twice
    assert (run.parent / "r.cmd").read_text().split() == cmd
    assert run_jobs([(cmd, run)], 1, REPO) == ["done already: r"]


def test_mpsea_ablation_writes_table_plot_and_continues(tmp_path):
    ds = make_synthetic(tmp_path / "ds", n=60, noise=1.0, seed=2)
    out = tmp_path / "abl.md"
    args = ["benchmarks/mpsea_ablate.py", str(ds), "--rows", "full", "w/o CPRL", "w/o image", "--epochs", "2", "--seeds", "0"]
    args += ["--out", str(out), "--runs-dir", str(tmp_path / "runs"), "--jobs", "2"]
    args += ["--", "--device", "cpu", "--batch-size", "16", "--eval-every", "2", *TINY_MPSEA]
    p = _script(*args)
    assert p.returncode == 0, p.stderr
    recs = {r["row"]: r for r in map(json.loads, out.with_suffix(".jsonl").read_text().splitlines())}
    assert set(recs) == {"full", "w/o CPRL", "w/o image"}
    res = json.loads((tmp_path / "runs" / "wo_CPRL_s0" / "results.json").read_text())
    assert recs["w/o CPRL"]["test_csls_l2r"] == res["test"]["csls"]["l2r"]
    assert json.loads((tmp_path / "runs" / "wo_CPRL_s0" / "config.json").read_text())["model"]["cprl"] is False
    md = out.read_text()
    assert "| full |" in md and "| w/o CPRL |" in md and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    again = _script(*args)  # the same command again: nothing retrained
    assert again.returncode == 0 and again.stderr.count("done already") == len(recs), again.stderr


def test_mpsea_rank_parts_ranks_every_part_of_a_checkpoint(tmp_path):
    ds = make_synthetic(tmp_path / "ds", n=60, noise=1.0, seed=2)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "kgalign.cli", "train", str(ds), "--model", "mpsea", "--epochs", "2", "--eval-every", "2"]
    cmd += ["--device", "cpu", "--batch-size", "16", "-o", str(run), "-q", *TINY_MPSEA]
    assert subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).returncode == 0
    p = _script("benchmarks/mpsea_rank_parts.py", str(run))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [x.split()[0] for x in lines[:3]] == ["graph", "attribute", "image"]
    assert [x.split(":")[0] for x in lines[-3:]] == ["joint at level 0", "joint at level 0.5", "joint at level 1"]
    assert all(0.0 <= float(x.split()[-1]) <= 1.0 for x in lines[-3:])


def test_mpsea_ablation_skips_image_rows_without_images(tmp_path):
    ds = make_synthetic(tmp_path / "ds", n=40, noise=1.0, seed=2, modalities=("attribute",))
    out = tmp_path / "abl.md"
    p = _script(
        "benchmarks/mpsea_ablate.py",
        str(ds),
        "--rows",
        "w/o OA",
        "w/o MMPF-img",
        "w/o image",
        "--out",
        str(out),
        "--runs-dir",
        str(tmp_path / "r"),
    )
    assert p.returncode == 0, p.stderr
    md = out.read_text()
    assert "| w/o OA | n/a (no image features: the switch changes nothing) |" in md and "| w/o image | n/a (no image features) |" in md
    assert not (tmp_path / "r").exists()  # nothing trained
