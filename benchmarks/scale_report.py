"""The scaling table and log-log plot (scale issue §7) from the per-stage measurements.

Each stage's benchmark (scale_pipeline.py, scale_lightea.py, scale_search.py, scale_minibatch.py) writes one JSON
object per (stage, size) to benchmarks/out/scale/<stage>-<n_per_side>.json::

    {"stage", "n_per_side", "triples_per_side", "seconds", "peak_rss_gib", "threads", "load", "date", "command",
     "extra": {...}}

This script fits, per stage, the growth exponent b of ``seconds ~ a * n^b`` and of peak RSS (least squares in
log-log over the sizes measured), writes a Markdown table and a PNG with one line per stage:

    python benchmarks/scale_report.py [--dir benchmarks/out/scale] [-o docs/img/scaling.png] [--md OUT.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load(folder: Path) -> dict[str, list[dict]]:
    """``{stage: [record, ...]}`` sorted by size; a file that is not a record is an error naming it."""
    stages: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            stage, n = str(rec["stage"]), int(rec["n_per_side"])
            float(rec["seconds"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"error: {path}: not a scaling record ({exc})") from None
        if n <= 0:
            raise SystemExit(f"error: {path}: n_per_side must be positive")
        stages.setdefault(stage, []).append(rec)
    for recs in stages.values():
        recs.sort(key=lambda r: r["n_per_side"])
    return stages


def growth_exponent(ns: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y against log n; None with fewer than two distinct sizes or a non-positive y."""
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys, strict=True) if n > 0 and y is not None and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else (f"{n // 1000}k" if n % 1000 == 0 else str(n))


# Quality figures the stages' benchmarks report under various names -> the table's label.
_QUALITY = {
    "hits@1": "H@1",
    "test_hits1": "test H@1",
    "hits1_greedy": "H@1 (greedy)",
    "mrr": "MRR",
    "test_mrr": "test MRR",
    "recall@1": "recall@1",
    "recall1_cosine": "recall@1",
    "recall@10": "recall@10",
    "recall10_cosine": "recall@10",
}


def _quality(extra: dict) -> str:
    return ", ".join(f"{label} {extra[k]:.3f}" for k, label in _QUALITY.items() if isinstance(extra.get(k), (int, float)))


def _load(value) -> str:
    """The 1-minute load average, from whichever form a benchmark recorded (list, tuple text, uptime text)."""
    import re

    m = re.search(r"\d+(?:\.\d+)?", str(value if not isinstance(value, (list, tuple)) else value[0]))
    return f"{float(m.group()):.1f}" if m else "—"


def markdown(stages: dict[str, list[dict]]) -> str:
    lines = [
        "| stage | entities/side | triples/side | seconds | peak RSS GiB | quality | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, recs in stages.items():
        for r in recs:
            lines.append(
                f"| {stage} | {_size(r['n_per_side'])} | {r.get('triples_per_side') or '—'} | {r['seconds']:.1f} | "
                f"{r.get('peak_rss_gib', float('nan')):.2f} | {_quality(r.get('extra') or {})} | {_load(r.get('load'))} |"
            )
    lines += ["", "| stage | time exponent b (seconds ~ n^b) | memory exponent | sizes |", "|---|---|---|---|"]
    for stage, recs in stages.items():
        ns = [r["n_per_side"] for r in recs]
        bt = growth_exponent(ns, [r["seconds"] for r in recs])
        bm = growth_exponent(ns, [r.get("peak_rss_gib") for r in recs])
        lines.append(
            f"| {stage} | {'—' if bt is None else f'{bt:.2f}'} | {'—' if bm is None else f'{bm:.2f}'} | {', '.join(_size(n) for n in ns)} |"
        )
    return "\n".join(lines) + "\n"


def plot(stages: dict[str, list[dict]], png: Path) -> None:
    import matplotlib

    from kgalign.fsutil import atomic_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("tab20").colors  # one distinct colour per stage (up to 20)
    for i, (stage, recs) in enumerate(stages.items()):
        col = colours[i % len(colours)]
        ns = [r["n_per_side"] for r in recs]
        b = growth_exponent(ns, [r["seconds"] for r in recs])
        label = stage + ("" if b is None else f" (b={b:.2f})")
        ax_t.plot(ns, [r["seconds"] for r in recs], marker="o", color=col, label=label)
        mem = [(n, r.get("peak_rss_gib")) for n, r in zip(ns, recs, strict=True) if r.get("peak_rss_gib")]
        if mem:
            ax_m.plot([n for n, _ in mem], [m for _, m in mem], marker="o", color=col, label=stage)
    for ax, ylabel in ((ax_t, "seconds"), (ax_m, "peak RSS (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("entities per side")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    ax_m.axhline(16, color="grey", linestyle=":", label="16 GiB target")
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    fig.suptitle("kgalign at scale on 2 CPU cores (synthetic pairs)", fontsize=10)
    fig.tight_layout()
    with atomic_path(png) as tmp:  # never a half-written PNG under the name
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=REPO / "benchmarks" / "out" / "scale")
    ap.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "out" / "scaling.png")
    ap.add_argument("--md", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    stages = load(args.dir)
    if not stages:
        print(f"error: no scaling records (*.json) in {args.dir}", file=sys.stderr)
        return 1
    text = markdown(stages)
    plot(stages, args.output)
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
