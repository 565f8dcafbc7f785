"""MPSEA ablations in the shape of the paper's Tables 5 (modalities) and 6 (components).

Trains the full model and one variant per removed modality or component on one
dataset (same inputs, epochs, seeds and training settings for every row) and
writes a Markdown table, a bar chart (``.png``) and one JSON line per run (``.jsonl``)::

    python benchmarks/mpsea_ablate.py DATASET --epochs 100 --seeds 1 2 3 --jobs 2 -- --lr 1e-3
    python benchmarks/mpsea_ablate.py DATASET --rows full "w/o CPRL" repl.GAT --epochs 5
    python benchmarks/mpsea_ablate.py DATASET --report     # table and plot of the runs finished so far

Runs go through benchmarks/job_queue.py: a finished run is skipped and an interrupted one resumed,
so the same command continues after an interruption.

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
import sys
from pathlib import Path

from job_queue import run_jobs

from kgalign.fsutil import atomic_path

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
# Rows whose switch acts on the image pathway only (the visual prefix, the image FFN): without image
# features they compute exactly the full model, so they are not run.
IMAGE_ONLY = {"w/o MMPF-img", "w/o OA", "w/o OC"}


def _stored_modalities(dataset: Path) -> list[str]:
    from kgalign.features.store import read_manifest

    return [m for m in read_manifest(dataset) if m != "numeric_present"]


def run_dir(runs_dir: Path, row: str, seed: int) -> Path:
    return runs_dir / f"{row.replace('/', '').replace(' ', '_').replace('.', '_')}_s{seed}"


def train_command(dataset: Path, row: str, seed: int, modalities: list[str], epochs: int, run: Path, extra: list[str]) -> list[str]:
    cmd = ["kgalign", "train", str(dataset), "--model", "mpsea", "--epochs", str(epochs), "--seed", str(seed)]
    cmd += ["--modalities", ",".join(modalities), "-o", str(run), "-q"]
    for key, value in ROWS[row][0].items():
        cmd += ["--set", f"model.{key}={json.dumps(value)}"]
    return cmd + extra


def record(run: Path, row: str, seed: int) -> dict | None:
    """The row's figures from a finished run directory (None while unfinished)."""
    if not (run / "results.json").is_file():
        return None
    res = json.loads((run / "results.json").read_text())
    best = res.get("best_on_test") or {}
    return {
        "row": row,
        "seed": seed,
        "command": (run.parent / f"{run.name}.cmd").read_text().strip() if (run.parent / f"{run.name}.cmd").is_file() else None,
        "selected_epoch": res["selection"]["epoch"],
        "test_csls_l2r": res["test"]["csls"]["l2r"] if res.get("test") else None,
        "papers_protocol_test": best.get("test"),
        "papers_protocol_epoch": best.get("epoch"),
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


def plot(records: list[dict], rows: list[str], png: Path) -> None:
    """Bar chart of test H@1 per variant (mean, spread over seeds), the full model's level dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if any(x["row"] == r and x["test_csls_l2r"] for x in records)]
    values = [[x["test_csls_l2r"]["hits@1"] for x in records if x["row"] == r and x["test_csls_l2r"]] for r in shown]
    means = [statistics.mean(v) for v in values]
    sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(shown) + 1.5), 3.8))
    colors = ["#4c72b0" if r == "full" else "#999999" for r in shown]
    ax.bar(range(len(shown)), means, yerr=sds, capsize=3, color=colors)
    if "full" in shown:
        ax.axhline(means[shown.index("full")], color="#4c72b0", ls="--", lw=1)
    ax.set_xticks(range(len(shown)), shown, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test CSLS l2r Hits@1 (selected on valid)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(png) as tmp:  # never a half-written PNG under the name
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


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
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (the cores are split between them)")
    ap.add_argument("--report", action="store_true", help="only write the table and plot from the finished runs")
    args = ap.parse_args(argv)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown row(s) {unknown}; choose from {list(ROWS)}")
    dataset = args.dataset.resolve()
    stored = _stored_modalities(dataset)
    skipped, jobs, cells = {}, [], []
    for row in args.rows:
        dropped = ROWS[row][1]
        if dropped is not None and dropped not in stored:
            skipped[row] = f"no {dropped} features"
            continue
        if row in IMAGE_ONLY and "image" not in stored:
            skipped[row] = "no image features: the switch changes nothing"
            continue
        mods = [m for m in stored if m != dropped]
        for seed in args.seeds:
            run = run_dir(args.runs_dir, row, seed)
            jobs.append((train_command(dataset, row, seed, mods, args.epochs, run, extra), run))
            cells.append((run, row, seed))
    if not args.report:
        run_jobs(jobs, args.jobs, REPO)
    records = [r for run, row, seed in cells if (r := record(run, row, seed)) is not None]
    missing = [run.name for run, _, _ in cells if not (run / "results.json").is_file()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = args.out.with_suffix(".jsonl")
    with atomic_path(jsonl) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    header = (
        f"MPSEA ablation on `{dataset}` ({args.epochs} epochs, seeds {args.seeds}, extra options: "
        f"`{shlex.join(extra) or 'none'}`). Test links, CSLS, left-to-right, epoch selected on the validation links; "
        "the papers' protocol columns take the best test epoch of the same runs (optimistic)."
    )
    if missing:
        header += f" Unfinished, not in the table: {', '.join(missing)}."
    text = table(records, skipped, args.rows, header)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    if records:
        plot(records, args.rows, args.out.with_suffix(".png"))
    print(text)
    return 1 if missing and not args.report else 0


if __name__ == "__main__":
    sys.exit(main())
