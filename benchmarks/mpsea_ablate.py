"""MPSEA ablations in the shape of the paper's Tables 5 (modalities) and 6 (components).

Trains the full model and one variant per removed modality or component on one
dataset (same inputs, epochs, seeds and training settings for every row) and
writes a Markdown table plus one JSON line per run::

    python benchmarks/mpsea_ablate.py DATASET --epochs 100 --seeds 1 2 3 -- --lr 1e-3
    python benchmarks/mpsea_ablate.py DATASET --rows full "w/o CPRL" repl.GAT --epochs 5

Everything after ``--`` goes to ``kgalign train`` (e.g. ``--set model.hidden=64``).
Each cell is the test figure of the epoch selected on the validation links
(honest protocol), mean over seeds; the papers' protocol (best test epoch over
all evaluations, optimistic) is reported beside it from the same runs. A
modality row whose features the dataset lacks is listed as not applicable.
Output: ``--out`` (Markdown, default benchmarks/out/mpsea_ablation.md) and the
same path with ``.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Row name -> (model options, modality removed or None). Table 5 rows first, then Table 6.
ROWS: dict[str, tuple[dict, str | None]] = {
    "full": ({}, None),
    "w/o structure": ({"structure": False}, None),
    "w/o relation": ({}, "relation"),
    "w/o attribute": ({}, "attribute"),
    "w/o image": ({}, "image"),
    "w/o number": ({}, "numeric"),
    "w/o MMPF-img": ({"mmpf_img": False}, None),
    "w/o MMPF-gph": ({"mmpf_gph": False}, None),
    "w/o MMPF": ({"mmpf": False}, None),
    "w/o OA": ({"outlook": False}, None),
    "w/o OC": ({"outlook": False, "outlook_conv": False}, None),
    "w/o CPRL": ({"cprl": False}, None),
    "repl.GAT": ({"multi_weight_gat": False}, None),
}


def _stored_modalities(dataset: Path) -> list[str]:
    from kgalign.features.store import read_manifest

    return [m for m in read_manifest(dataset) if m != "numeric_present"]


def _run(dataset: Path, row: str, seed: int, modalities: list[str], epochs: int, out_root: Path, extra: list[str]) -> dict:
    options, _ = ROWS[row]
    run = out_root / f"{row.replace('/', '').replace(' ', '_').replace('.', '_')}_s{seed}"
    cmd = [sys.executable, "-m", "kgalign.cli", "train", str(dataset), "--model", "mpsea", "--epochs", str(epochs)]
    cmd += ["--seed", str(seed), "--modalities", ",".join(modalities), "-o", str(run), "--force", "-q"]
    for key, value in options.items():
        cmd += ["--set", f"model.{key}={json.dumps(value)}"]
    cmd += extra
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if p.returncode:
        raise SystemExit(f"{row} (seed {seed}) failed with exit {p.returncode}: {shlex.join(cmd)}\n{p.stderr[-2000:]}")
    res = json.loads((run / "results.json").read_text())
    test = res["test"]["csls"]["l2r"] if res.get("test") else None
    best = (res.get("best_on_test") or {}).get("test")
    return {
        "row": row,
        "seed": seed,
        "command": shlex.join(cmd),
        "wall_s": round(time.time() - t0, 1),
        "selected_epoch": res["selection"]["epoch"],
        "test_csls_l2r": test,
        "papers_protocol_test": best,
        "papers_protocol_epoch": (res.get("best_on_test") or {}).get("epoch"),
    }


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.mean(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {statistics.stdev(values):.3f}"


def _best_metric(best: dict | None, name: str) -> float | None:
    """``best_on_test["test"]`` is either a flat metrics dict or the ``{sim: {dir: metrics}}`` block."""
    if not best:
        return None
    if name in best:
        return best[name]
    try:
        return best["csls"]["l2r"][name]
    except (KeyError, TypeError):
        return None


def table(records: list[dict], skipped: dict[str, str], rows: list[str], header: str) -> str:
    lines = [
        header,
        "",
        "| variant | H@1 | H@10 | MRR | H@1 (papers' protocol) | MRR (papers' protocol) | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row in skipped:
            lines.append(f"| {row} | n/a ({skipped[row]}) | | | | | |")
            continue
        rs = [r for r in records if r["row"] == row and r["test_csls_l2r"]]
        h1 = [r["test_csls_l2r"]["hits@1"] for r in rs]
        h10 = [r["test_csls_l2r"]["hits@10"] for r in rs]
        mrr = [r["test_csls_l2r"]["mrr"] for r in rs]
        p_h1 = [v for r in rs if (v := _best_metric(r["papers_protocol_test"], "hits@1")) is not None]
        p_mrr = [v for r in rs if (v := _best_metric(r["papers_protocol_test"], "mrr")) is not None]
        lines.append(f"| {row} | {_cell(h1)} | {_cell(h10)} | {_cell(mrr)} | {_cell(p_h1)} | {_cell(p_mrr)} | {len(rs)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), help=f"subset of: {', '.join(ROWS)}")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "mpsea_ablation.md")
    ap.add_argument("--runs-dir", type=Path, default=REPO / "benchmarks" / "out" / "mpsea_ablation_runs")
    args = ap.parse_args(argv)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown row(s) {unknown}; choose from {list(ROWS)}")
    dataset = args.dataset.resolve()
    stored = _stored_modalities(dataset)
    records, skipped = [], {}
    jsonl = args.out.with_suffix(".jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("w") as log:
        for row in args.rows:
            dropped = ROWS[row][1]
            if dropped is not None and dropped not in stored:
                skipped[row] = f"no {dropped} features"
                continue
            mods = [m for m in stored if m != dropped]
            for seed in args.seeds:
                rec = _run(dataset, row, seed, mods, args.epochs, args.runs_dir, extra)
                records.append(rec)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(f"{row} seed {seed}: test csls l2r H@1 {rec['test_csls_l2r']['hits@1']:.3f} ({rec['wall_s']} s)", file=sys.stderr)
    header = (
        f"MPSEA ablation on `{dataset}` ({args.epochs} epochs, seeds {args.seeds}, extra options: "
        f"`{shlex.join(extra) or 'none'}`). Test links, CSLS, left-to-right, epoch selected on the validation links; "
        "the papers' protocol columns take the best test epoch of the same runs (optimistic)."
    )
    text = table(records, skipped, args.rows, header)
    tmp = args.out.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
