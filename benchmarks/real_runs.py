"""Train and evaluate models on the real benchmark datasets; print a Markdown table.

Prerequisite (builds the datasets and their features, about 3 minutes on 2 cores)::

    python benchmarks/prepare_datasets.py -o benchmarks/out/datasets
    for v in fb_db_20 fb_db_80 fb_yg_20 en_fr_30; do
      kgalign features benchmarks/out/datasets/$v --modalities relation,attribute,numeric --image-model none
    done

Then, e.g.::

    python benchmarks/real_runs.py --runs fb_db_20:noco fb_db_20:meaformer --epochs 40 -- --lr 2e-3

Everything after ``--`` is passed to ``kgalign train``. Each row reports the test
metrics of the epoch selected on the validation links (honest protocol) and, from
the same run's per-evaluation log, the best test figure over all evaluations (the
papers' protocol, optimistic). Results accumulate in benchmarks/out/real_runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def run_one(variant: str, model: str, epochs: int, extra: list[str]) -> dict:
    ds = OUT / "datasets" / variant
    run = OUT / "runs" / f"{variant}_{model}"
    cmd = [
        "kgalign",
        "train",
        str(ds.relative_to(REPO)),
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--device",
        "cpu",
        "-o",
        str(run.relative_to(REPO)),
        "--force",
        "-q",
        *extra,
    ]
    t0 = time.time()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    res = json.loads((run / "results.json").read_text())
    return {"variant": variant, "model": model, "command": shlex.join(cmd), "wall_s": round(wall, 1), "results": res}


def _m(block: dict, sim: str, direction: str) -> dict:
    return block[sim][direction]


def row(rec: dict) -> str:
    r = rec["results"]
    test = r["test"]
    l2r, r2l = _m(test, "csls", "l2r"), _m(test, "csls", "r2l")
    cos = _m(test, "cosine", "l2r")
    best = r["best_on_test"]
    bl2r = best["test"]["csls"]["l2r"]
    sel = r["selection"]
    return (
        f"| {rec['variant']} | {rec['model']} | {l2r['hits@1']:.3f} | {l2r['hits@10']:.3f} | {l2r['mrr']:.3f} "
        f"| {r2l['hits@1']:.3f} / {r2l['hits@10']:.3f} / {r2l['mrr']:.3f} | {cos['hits@1']:.3f} "
        f"| {bl2r['hits@1']:.3f} / {bl2r['mrr']:.3f} (ep {best['epoch']}) | {sel['epoch']} / {r['epochs_run']} "
        f"| {r['seconds_per_epoch']:.1f} | {r['peak_memory']['max_rss_mib'] / 1024:.1f} |"
    )


HEADER = (
    "| dataset | model | H@1 | H@10 | MRR | r2l H@1 / H@10 / MRR | cosine l2r H@1 | papers' protocol: best test H@1 / MRR "
    "| selected / run epochs | s/epoch | peak RSS GiB |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, help="VARIANT:MODEL items, e.g. fb_db_20:noco")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--table-only", action="store_true", help="only print the table from real_runs.jsonl")
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    log = OUT / "real_runs.jsonl"
    if not args.table_only:
        OUT.mkdir(parents=True, exist_ok=True)
        for item in args.runs:
            variant, model = item.split(":")
            print(f"running {variant} {model} ...", file=sys.stderr, flush=True)
            rec = run_one(variant, model, args.epochs, extra)
            with open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(row(rec), flush=True)
    recs = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    print(HEADER)
    for rec in recs:
        print(row(rec))


if __name__ == "__main__":
    main()
