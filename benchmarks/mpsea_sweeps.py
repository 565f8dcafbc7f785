"""MPSEA's sensitivity and low-resource studies (the paper's Figs. 4-6), as tables and PNG plots.

Sensitivity: one MPSEA option swept over values on one dataset (the paper sweeps the reward threshold and the MI
weight), every other setting fixed::

    python benchmarks/mpsea_sweeps.py sensitivity DATASET --param reward_threshold --values 0.1 0.3 0.5 0.7 0.9 \\
        --epochs 100 --seeds 1 2 3 -- --lr 1e-3

Low resource: training-link ratios on one dataset, several models. The links are re-split once per seed with a
fixed valid (10 %) and test (60 %) part, and nested training sets drawn from the remaining 30 % (ratio r uses the
first r * |links| of them), so every ratio is ranked on the same test links::

    python benchmarks/mpsea_sweeps.py low-resource DATASET --ratios 0.01 0.05 0.1 0.2 0.3 \\
        --models mpsea noco meaformer mclea --epochs 100 --seeds 1 2 3

Runs go through benchmarks/job_queue.py (``--jobs`` at a time; a finished run is skipped, an interrupted one
resumed, so the same command continues after an interruption; ``--report`` only rewrites the table and plot).
Everything after ``--`` goes to ``kgalign train``. Cells are test CSLS l2r Hits@1 / MRR of the epoch selected on
the validation links (honest protocol), mean ± sd over seeds. Output: ``--out`` (Markdown; default
benchmarks/out/mpsea_<study>.md), the same path with ``.jsonl`` (one line per run) and ``.png`` (the plot).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
from job_queue import run_jobs

from kgalign.fsutil import atomic_path

REPO = Path(__file__).resolve().parents[1]
VALID_SHARE, TEST_SHARE = 0.1, 0.6


def train_command(dataset: Path, run: Path, model: str, seed: int, epochs: int, sets: dict, extra: list[str]) -> list[str]:
    cmd = ["kgalign", "train", str(dataset), "--model", model, "--epochs", str(epochs), "--seed", str(seed), "-o", str(run), "-q"]
    for key, value in sets.items():
        cmd += ["--set", f"model.{key}={json.dumps(value)}"]
    return cmd + extra


def record(run: Path) -> dict | None:
    """Test CSLS l2r figures of the epoch selected on valid, from a finished run (None while unfinished)."""
    if not (run / "results.json").is_file():
        return None
    res = json.loads((run / "results.json").read_text())
    test = res["test"]["csls"]["l2r"]
    cmd = run.parent / f"{run.name}.cmd"
    return {
        "command": cmd.read_text().strip() if cmd.is_file() else None,
        "selected_epoch": res["selection"]["epoch"],
        "hits@1": test["hits@1"],
        "mrr": test["mrr"],
        "train_links": res["train_links"]["seed"],
    }


def resplit(src: Path, dst: Path, ratio: float, seed: int) -> Path:
    """A copy of ``src`` (features included) whose links are re-split: fixed valid/test parts per seed, and the
    first ``ratio * |links|`` of the remaining links (a seeded order) as train; the rest unused."""
    from kgalign.data.store import load_dataset, write_dataset

    ds = load_dataset(src)
    n = len(ds.link_split)
    order = np.random.default_rng(seed).permutation(n)
    n_valid, n_test = int(VALID_SHARE * n), int(TEST_SHARE * n)
    n_train = max(1, int(round(ratio * n)))
    if n_train > n - n_valid - n_test:
        raise SystemExit(f"ratio {ratio} needs {n_train} training links; only {n - n_valid - n_test} are outside valid and test")
    labels = np.array(["unused"] * n, dtype=object)
    labels[order[:n_valid]] = "valid"
    labels[order[n_valid : n_valid + n_test]] = "test"
    labels[order[n_valid + n_test : n_valid + n_test + n_train]] = "train"
    ds.link_split = labels.tolist()
    out = write_dataset(ds, dst, overwrite=True)
    if (src / "features").is_dir():
        shutil.rmtree(out / "features", ignore_errors=True)
        shutil.copytree(src / "features", out / "features")
    return out


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _table(records: list[dict], key: str, columns: list[str], head: str) -> str:
    rows = sorted({r[key] for r in records})
    lines = [f"| {head} | " + " | ".join(f"{c} H@1" for c in columns) + " | " + " | ".join(f"{c} MRR" for c in columns) + " |"]
    lines.append("|---" * (1 + 2 * len(columns)) + "|")
    for value in rows:
        cells = []
        for metric in ("hits@1", "mrr"):
            for c in columns:
                vals = [r[metric] for r in records if r[key] == value and r["column"] == c]
                cells.append(_mean_sd(vals) if vals else "—")
        lines.append(f"| {value:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(records: list[dict], key: str, columns: list[str], xlabel: str, png: Path, logx: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for c in columns:
        xs = sorted({r[key] for r in records if r["column"] == c})
        for ax, metric in zip(axes, ("hits@1", "mrr"), strict=True):
            means = [statistics.mean(r[metric] for r in records if r[key] == x and r["column"] == c) for x in xs]
            sds = [
                statistics.stdev(v) if len(v := [r[metric] for r in records if r[key] == x and r["column"] == c]) > 1 else 0.0 for x in xs
            ]
            ax.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=c)
    for ax, metric, key in zip(axes, ("test CSLS l2r Hits@1", "test CSLS l2r MRR"), ("hits@1", "mrr"), strict=True):
        # from 0, so that a flat sweep looks flat (an autoscaled axis would blow up differences of 1e-4)
        ax.set_ylim(0.0, max(0.05, 1.15 * max(r[key] for r in records)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if logx:
            ax.set_xscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png) as tmp:  # never a half-written PNG under the name
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", choices=["sensitivity", "low-resource"])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--param", default="reward_threshold", help="sensitivity: the MPSEA option to sweep")
    ap.add_argument("--values", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--models", nargs="+", default=["mpsea", "noco", "meaformer", "mclea"])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "sweeps", help="runs and re-split datasets")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (the cores are split between them)")
    ap.add_argument("--report", action="store_true", help="only write the table and plot from the finished runs")
    args = ap.parse_args(argv)
    if not (args.dataset / "manifest.json").is_file():
        print(f"error: {args.dataset}: not a kgalign dataset (no manifest.json)", file=sys.stderr)
        return 2
    tag = "sensitivity" if args.study == "sensitivity" else "low_resource"
    out = args.out or REPO / "benchmarks" / "out" / f"mpsea_{tag}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    from kgalign.models.registry import get_model

    default = get_model("mpsea").defaults.get(args.param)
    # the registry validates types: an integer option (e.g. fusion_heads) gets integers
    integer_option = isinstance(default, int) and not isinstance(default, bool)
    cells = []  # (run, value, column, seed, command)
    for seed in args.seeds:
        if args.study == "sensitivity":
            for v in args.values:
                value = int(v) if integer_option else v
                run = args.work / f"{args.param}_{v:g}_s{seed}"
                cmd = train_command(args.dataset, run, "mpsea", seed, args.epochs, {args.param: value}, extra)
                cells.append((run, v, "mpsea", seed, cmd))
        else:
            for ratio in args.ratios:
                ds = args.work / f"ds_r{ratio:g}_s{seed}"
                if not args.report and not (ds / "manifest.json").is_file():
                    resplit(args.dataset, ds, ratio, seed)
                for model in args.models:
                    run = args.work / f"{model}_r{ratio:g}_s{seed}"
                    cells.append((run, ratio, model, seed, train_command(ds, run, model, seed, args.epochs, {}, extra)))
    if not args.report:
        run_jobs([(cmd, run) for run, _, _, _, cmd in cells], args.jobs, REPO)
    records = [{**rec, "value": v, "column": c, "seed": seed} for run, v, c, seed, _ in cells if (rec := record(run)) is not None]
    missing = [run.name for run, *_ in cells if not (run / "results.json").is_file()]
    with atomic_path(out.with_suffix(".jsonl")) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    columns = ["mpsea"] if args.study == "sensitivity" else args.models
    head = args.param if args.study == "sensitivity" else "train ratio"
    text = f"{args.study} on {args.dataset}, {args.epochs} epochs, seeds {args.seeds}; extra: {shlex.join(extra) or '—'}\n"
    if missing:
        text += f"Unfinished, not in the table: {', '.join(missing)}.\n"
    text += "\n" + _table(records, "value", columns, head)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    if records:
        _plot(records, "value", columns, head, out.with_suffix(".png"), logx=args.study == "low-resource")
    print(text)
    return 1 if missing and not args.report else 0


if __name__ == "__main__":
    sys.exit(main())
