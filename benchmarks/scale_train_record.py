"""Scaling records (scale_report.py's format) from a finished ``kgalign train`` run directory.

For a training run made by the command itself (e.g. the 1M-per-side mini-batch run), writes
``train_minibatch_epoch-<n>.json`` (median training seconds per epoch, evaluation excluded) and
``train_minibatch_total-<n>.json`` (wall seconds from the first epoch to the selected one, evaluations
included: the time to the plateau) into ``--out``. ``--time-log`` is the output of ``/usr/bin/time -v``
around the run, for the whole process's peak RSS and CPU seconds (else results.json's peak RSS).

    python benchmarks/scale_train_record.py benchmarks/out/mbrows/train-1m-b --n 1000000 \\
        --time-log benchmarks/out/mbrows/train-1m-b.log --out benchmarks/out/scale
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path


def time_v(path: Path) -> dict:
    """Peak RSS (GiB) and user/system CPU seconds from ``/usr/bin/time -v`` output; {} when absent.

    A log appended to by several processes (a run resumed with ``--resume``) gives the largest peak and the summed
    CPU seconds."""
    if not path or not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    out = {}
    rss = [float(v) for v in re.findall(r"Maximum resident set size \(kbytes\): (\d+)", text)]
    if rss:
        out["peak_rss_gib"] = max(rss) / 2**20
    for key, pat in (("user_s", r"User time \(seconds\): ([\d.]+)"), ("sys_s", r"System time \(seconds\): ([\d.]+)")):
        vals = [float(v) for v in re.findall(pat, text)]
        if vals:
            out[key] = sum(vals)
    out["processes"] = len(rss)
    return out


def records(run: Path, n: int, timing: dict, load: str | None = None) -> list[dict]:
    res = json.loads((run / "results.json").read_text(encoding="utf-8"))
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    epochs = [m for m in metrics if "seconds" in m]
    selected = res["selection"]["epoch"]
    evals = [m for m in metrics if "test" in m]
    sim = "csls" if "csls" in res["test"] else "cosine"
    test = res["test"][sim]["l2r"]
    valid = res["valid"][sim]["l2r"] if res.get("valid") else {"hits@1": None, "mrr": None}
    eval_s = float(res.get("seconds_per_evaluation") or 0.0)
    to_plateau = sum(m["seconds"] for m in epochs if m["epoch"] <= selected) + eval_s * sum(1 for m in evals if m["epoch"] <= selected)
    t = cfg["train"]
    env = json.loads((run / "env.json").read_text(encoding="utf-8")) if (run / "env.json").is_file() else {}
    manifest = Path(cfg["dataset"], "manifest.json")
    triples = None
    if manifest.is_file():
        counts = json.loads(manifest.read_text(encoding="utf-8"))["counts"]
        triples = round((counts["kg1"]["relation_triples"] + counts["kg2"]["relation_triples"]) / 2)
    extra = {
        "mode": "minibatch" if res.get("minibatch") else "full",
        "model": res["model"],
        "hidden": cfg["model"].get("hidden"),
        "batch_size": t["batch_size"],
        "fanout": t["fanout"],
        "epochs_run": res["epochs_run"],
        "selected_epoch": selected,
        "seconds_per_evaluation": eval_s,
        "evaluation": res["test"].get("protocol"),
        "similarity": sim,
        "valid_hits1": valid["hits@1"],
        "valid_mrr": valid["mrr"],
        "test_hits1": test["hits@1"],
        "test_mrr": test["mrr"],
        "valid_mrr_by_evaluation": {m["epoch"]: m["valid"][sim]["l2r"]["mrr"] for m in evals if "valid" in m},
        **{k: v for k, v in timing.items() if k != "peak_rss_gib"},
        "run": str(run),
    }
    base = {
        "n_per_side": n,
        "triples_per_side": triples,
        "peak_rss_gib": round(timing.get("peak_rss_gib", res["peak_memory"]["max_rss_mib"] / 1024), 3),
        "threads": env.get("torch_threads"),
        "load": load or "not recorded",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((run / "results.json").stat().st_mtime)),
        "command": f"benchmarks/scale_train.sh {cfg['dataset']} {run}",
        "extra": extra,
    }
    per_epoch = statistics.median(m["seconds"] for m in epochs)
    return [
        {**base, "stage": "train_minibatch_epoch", "seconds": round(per_epoch, 1)},
        {**base, "stage": "train_minibatch_total", "seconds": round(to_plateau, 1)},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, required=True, help="entities per side")
    ap.add_argument("--time-log", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/scale"))
    ap.add_argument("--load", default=None, help="the load average during the run, as text (it is not in the run directory)")
    args = ap.parse_args()
    if not (args.run / "results.json").is_file():
        raise SystemExit(f"error: {args.run}: no results.json (the run has not finished)")
    args.out.mkdir(parents=True, exist_ok=True)
    for rec in records(args.run, args.n, time_v(args.time_log), args.load):
        path = args.out / f"{rec['stage']}-{args.n}.json"
        path.write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
        print(path, rec["seconds"], rec["peak_rss_gib"])


if __name__ == "__main__":
    main()
