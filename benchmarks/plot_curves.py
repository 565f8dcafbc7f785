"""Time-to-accuracy curves: valid and test Hits@1 of runs against training seconds and against epochs.

Reads each run's metrics.jsonl (``seconds`` per epoch, ``valid``/``test`` metrics at evaluations) and writes one
PNG with two panels, plus the curve points as JSON beside it. Seconds are cumulative training seconds (evaluation
time excluded), so runs measured under different loads are comparable only roughly.

    python benchmarks/plot_curves.py benchmarks/out/runs/plateau_meaformer_full:MEAformer \\
        benchmarks/out/runs/plateau_meaformer_identity:"MEAformer, identity GAT" -o docs/img/curves_fb_db_20.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def curve(run: Path, metric: str = "hits@1", sim: str = "csls", direction: str = "l2r") -> dict:
    """``{"epoch": [...], "seconds": [...], "valid": [...], "test": [...]}`` at the run's evaluations."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file (not a run directory?)")
    out: dict = {"epoch": [], "seconds": [], "valid": [], "test": []}
    elapsed = 0.0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        elapsed += float(r.get("seconds", 0.0))
        if "valid" not in r and "test" not in r:
            continue
        out["epoch"].append(r["epoch"])
        out["seconds"].append(round(elapsed, 3))
        for split in ("valid", "test"):
            m = r.get(split)
            out[split].append(None if m is None else m[sim][direction][metric])
    return out


def plot(curves: dict[str, dict], png: Path, title: str, metric: str) -> None:
    import matplotlib

    from kgalign.fsutil import atomic_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, c) in enumerate(curves.items()):
        col = colours[i % len(colours)]
        for ax, xkey in zip(axes, ("seconds", "epoch"), strict=True):
            for split, style in (("test", "-"), ("valid", "--")):
                pts = [(x, y) for x, y in zip(c[xkey], c[split], strict=True) if y is not None]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, style, color=col, marker="o", markersize=3, label=f"{label} ({split})")
    axes[0].set_xlabel("training seconds (cumulative, evaluation excluded)")
    axes[1].set_xlabel("epoch")
    axes[0].set_ylabel(metric)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(png) as tmp:  # never a half-written PNG under the name
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="RUN_DIR or RUN_DIR:LABEL")
    ap.add_argument("-o", "--output", type=Path, required=True, help="PNG path (the points go to the same name .json)")
    ap.add_argument("--metric", default="hits@1", help="hits@1, hits@10, mrr (CSLS, l2r)")
    ap.add_argument("--title", default="valid (dashed) and test (solid) CSLS l2r Hits@1")
    args = ap.parse_args(argv)
    curves = {}
    for spec in args.runs:
        path, _, label = spec.partition(":")
        curves[label or Path(path).name] = curve(Path(path), args.metric)
    plot(curves, args.output, args.title, args.metric)
    args.output.with_suffix(".json").write_text(json.dumps(curves, indent=1) + "\n", encoding="utf-8")
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
