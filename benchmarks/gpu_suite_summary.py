"""Summarise the GPU suite's runs (benchmarks/gpu_suite.sh, step 4) into summary.json and summary.md.

A row's figures come from its results.json when it finished, else from the last evaluation in its
metrics.jsonl (the row ran out of the suite's budget; it is marked "stopped at the budget").

    python benchmarks/gpu_suite_summary.py --runs /tmp/kgalign-gpu-suite/runs --timings OUT/epoch_timings.jsonl --out OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _h1(metrics: dict | None) -> tuple[float | None, float | None]:
    if not metrics:
        return None, None
    m = metrics["csls"]["l2r"]
    return m["hits@1"], m["mrr"]


def summarise_run(run: Path) -> dict:
    """One row: model and precision from the directory name ``MODEL_PRECISION``."""
    model, _, precision = run.name.rpartition("_")
    row: dict = {"model": model, "precision": "fp32" if precision == "off" else precision, "run": str(run)}
    res_path = run / "results.json"
    records = _read_jsonl(run / "metrics.jsonl")
    row["epochs"] = records[-1]["epoch"] if records else 0
    train_s = sum(float(r.get("seconds", 0.0)) for r in records)
    row["seconds_per_epoch"] = round(train_s / max(len(records), 1), 4) if records else None
    if res_path.is_file():
        res = json.loads(res_path.read_text(encoding="utf-8"))
        row["status"] = "finished" + (" (early stop)" if res.get("stopped_early") else "")
        row["selected_epoch"] = res["selection"]["epoch"]
        row["valid_h1"], row["valid_mrr"] = _h1(res.get("valid"))
        row["test_h1"], row["test_mrr"] = _h1(res.get("test"))
        bot = res.get("best_on_test") or {}
        row["papers_test_h1"], row["papers_test_mrr"] = _h1(bot.get("test"))
        row["peak_gpu_mib"] = res.get("peak_memory", {}).get("cuda_max_allocated_mib")
        row["seconds_per_epoch"] = round(res["seconds_per_epoch"], 4)
    else:
        evals = [r for r in records if "test" in r]
        last = evals[-1] if evals else {}
        row["status"] = f"stopped at the budget (epoch {row['epochs']})" if records else "no epoch finished"
        row["selected_epoch"] = None
        row["valid_h1"], row["valid_mrr"] = _h1(last.get("valid"))
        row["test_h1"], row["test_mrr"] = _h1(last.get("test"))
        best = max(evals, key=lambda r: r["test"]["csls"]["l2r"]["mrr"], default={})
        row["papers_test_h1"], row["papers_test_mrr"] = _h1(best.get("test"))
        row["peak_gpu_mib"] = None
    return row


def _fmt(v, digits: int = 3) -> str:
    return "—" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def markdown(rows: list[dict], timings: list[dict], budget: float | None) -> str:
    lines = []
    if timings:
        dev = timings[0].get("device", "?")
        lines += [
            f"Isolated epoch timings on {dev} (FB15K-DB15K-scale synthetic inputs, one process at a time; "
            "median of the timed epochs after a warm-up):",
            "",
            "| model | precision | s/epoch | forward | loss | backward | step | peak GPU GiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in timings:
            sp = t.get("median_split_s", {})
            lines.append(
                f"| {t['model']} | {'fp32' if t['amp'] == 'off' else t['amp']} | {t['epoch_s_median']} | "
                + " | ".join(_fmt(sp.get(k), 4) for k in ("forward", "loss", "backward", "step"))
                + f" | {_fmt(t.get('peak_gpu_gb'), 2)} |"
            )
        lines.append("")
    lines += [
        "Training rows on FB15K-DB15K 20 % (legacy split, 10 % of train held out as valid; relation, attribute and numeric "
        "features; no names, no images), all rows at once on the one GPU"
        + (f", any row still running after {budget:.0f} s stopped there" if budget else "")
        + "; test CSLS l2r among the test links' entities (benchmark protocol); honest = selected on valid; "
        "papers' = best test evaluation of the same run (optimistic).",
        "",
        "| model | precision | status | epochs | s/epoch (shared GPU) | valid H@1 | test H@1 | test MRR | papers' H@1 | peak GPU MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['status']} | {r['epochs']} | {_fmt(r['seconds_per_epoch'], 4)} | "
            f"{_fmt(r['valid_h1'])} | {_fmt(r['test_h1'])} | {_fmt(r['test_mrr'])} | {_fmt(r['papers_test_h1'])} | "
            f"{_fmt(r['peak_gpu_mib'], 0)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder of MODEL_PRECISION run directories")
    ap.add_argument("--timings", type=Path, help="epoch_timings.jsonl from bench_noco_epoch.py --json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=None, help="seconds each training row was allowed")
    args = ap.parse_args(argv)
    runs = sorted(p for p in args.runs.iterdir() if p.is_dir()) if args.runs.is_dir() else []
    rows = [summarise_run(p) for p in runs]
    timings = _read_jsonl(args.timings) if args.timings else []
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"rows": rows, "epoch_timings": timings}, indent=2) + "\n", encoding="utf-8")
    (args.out / "summary.md").write_text(markdown(rows, timings, args.budget), encoding="utf-8")
    if not rows:
        print(f"error: no run directories under {args.runs}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
