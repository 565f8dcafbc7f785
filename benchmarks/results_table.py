"""The results table (convergence issue §4): train rows to the validation plateau, then report them.

Prerequisite (builds the datasets and their features, about 3 minutes on 2 cores)::

    python benchmarks/prepare_datasets.py -o benchmarks/out/datasets
    for v in fb_db_20 fb_db_80 fb_yg_20 en_fr_30; do
      kgalign features benchmarks/out/datasets/$v --modalities relation,attribute,numeric --image-model none
    done

Run rows (each job is one ``kgalign train`` process; ``--jobs`` of them at a time, the cores split
between them; a finished run is skipped, an interrupted one resumed from its checkpoint)::

    python benchmarks/results_table.py run --datasets fb_db_20 --models noco meaformer mclea --seeds 0 1 2 --jobs 2
    python benchmarks/results_table.py run --datasets fb_db_20 --models noco --seeds 0 --iterative
    python benchmarks/results_table.py run --list fb_db_20:mpsea:0 en_fr_30:noco:0 fb_db_20:noco:0:it --jobs 2
    python benchmarks/results_table.py report --datasets fb_db_20 en_fr_30     # Markdown on stdout

Every run uses the same budget (``BUDGET``: cosine over 150 epochs, lr 2e-3, evaluation every 5 epochs,
early stop after 4 evaluations without a better valid CSLS l2r MRR); anything after ``--`` is added
to every ``kgalign train`` command, and changes the run directory's name through ``--tag``.
Run directories: ``benchmarks/out/table/DATASET_MODEL_sSEED[_it][_TAG]``; the exact command of each
is written beside it as ``NAME.cmd``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from job_queue import run_jobs

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
TABLE = OUT / "table"
BUDGET = ["--epochs", "150", "--lr", "2e-3", "--eval-every", "5", "--patience", "4", "--device", "cpu"]


def run_name(dataset: str, model: str, seed: int, iterative: bool, tag: str | None) -> str:
    return f"{dataset}_{model}_s{seed}" + ("_it" if iterative else "") + (f"_{tag}" if tag else "")


def train_command(dataset: str, model: str, seed: int, iterative: bool, run: Path, extra: list[str]) -> list[str]:
    ds = OUT / "datasets" / dataset
    cmd = ["kgalign", "train", str(ds.relative_to(REPO)), "--model", model, "--seed", str(seed), *BUDGET]
    if iterative:
        cmd.append("--iterative")
    return [*cmd, "-o", str(run.relative_to(REPO)), "-q", *extra]


def cmd_run(args: argparse.Namespace, extra: list[str]) -> None:
    specs = [(d, m, s, args.iterative) for d in args.datasets for s in args.seeds for m in args.models]
    if args.jobs_list:  # explicit DATASET:MODEL:SEED[:it] items, run in the order given
        specs = []
        for item in args.jobs_list:
            parts = item.split(":")
            specs.append((parts[0], parts[1], int(parts[2]), parts[3:] == ["it"]))
    jobs = []
    for dataset, model, seed, iterative in specs:
        run = TABLE / run_name(dataset, model, seed, iterative, args.tag)
        jobs.append((train_command(dataset, model, seed, iterative, run, extra), run))
    run_jobs(jobs, args.jobs, REPO)


def _metrics(res: dict, split: str, sim: str, direction: str) -> dict:
    return res[split][sim][direction]


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def collect(dataset: str, model: str, iterative: bool, tag: str | None) -> list[dict]:
    found = []
    for path in sorted(TABLE.glob(f"{dataset}_{model}_s*")):
        name = path.name
        rest = name[len(f"{dataset}_{model}_s") :].split("_", 1)
        suffix = rest[1] if len(rest) > 1 else ""
        want = "_".join(p for p in ("it" if iterative else "", tag or "") if p)
        if suffix != want or not (path / "results.json").exists():
            continue
        res = json.loads((path / "results.json").read_text())
        res["seed"] = int(rest[0])
        found.append(res)
    return found


HEADER = (
    "| dataset | model | seeds | H@1 | H@10 | MRR | r2l H@1 / MRR | papers' protocol: best test H@1 "
    "| selected / run epochs | s/epoch | candidates (valid / test) | peak RSS GiB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(dataset: str, model: str, runs: list[dict], label: str) -> str:
    l2r = [_metrics(r, "test", "csls", "l2r") for r in runs]
    r2l = [_metrics(r, "test", "csls", "r2l") for r in runs]
    best = [r["best_on_test"]["test"]["csls"]["l2r"]["hits@1"] for r in runs]
    epochs = ", ".join(f"{r['selection']['epoch']}/{r['epochs_run']}" for r in runs)
    spe = statistics.median(r["seconds_per_epoch"] for r in runs)
    valid_c = runs[0]["valid"]["candidates"]["kg2"] if runs[0].get("valid") else "—"
    test_c = runs[0]["test"]["candidates"]["kg2"]
    rss = max(r["peak_memory"]["max_rss_mib"] for r in runs) / 1024
    seeds = ",".join(str(r["seed"]) for r in runs)
    return (
        f"| {dataset} | {model}{label} | {seeds} | {_fmt([m['hits@1'] for m in l2r])} | {_fmt([m['hits@10'] for m in l2r])} "
        f"| {_fmt([m['mrr'] for m in l2r])} | {_fmt([m['hits@1'] for m in r2l])} / {_fmt([m['mrr'] for m in r2l])} "
        f"| {_fmt(best)} | {epochs} | {spe:.1f} | {valid_c} / {test_c} | {rss:.1f} |"
    )


def cmd_report(args: argparse.Namespace) -> None:
    print(HEADER)
    for dataset in args.datasets:
        for iterative in (False, True):
            for model in args.models:
                runs = collect(dataset, model, iterative, args.tag)
                if runs:
                    label = (" iterative" if iterative else "") + (f" ({args.tag})" if args.tag else "")
                    print(table_row(dataset, model, runs, label))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--datasets", nargs="+", default=["fb_db_20"])
        p.add_argument("--models", nargs="+", default=["noco", "meaformer", "mclea", "mpsea"])
        p.add_argument("--tag", default=None, help="suffix of the run directories (e.g. names)")
        if name == "run":
            p.add_argument("--seeds", nargs="+", type=int, default=[0])
            p.add_argument("--iterative", action="store_true")
            p.add_argument("--jobs", type=int, default=1, help="training processes at a time")
            p.add_argument("--list", dest="jobs_list", nargs="+", help="DATASET:MODEL:SEED[:it] items instead")
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    if args.command == "run":
        cmd_run(args, extra)
    else:
        if extra:
            ap.error(f"unexpected arguments: {extra}")
        cmd_report(args)


if __name__ == "__main__":
    main()
