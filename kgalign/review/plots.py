"""The report's figures, one function per PNG (matplotlib, Agg backend, imported lazily).

Every function writes its file even when there is nothing to draw, with a
sentence saying why, so a report always has the same set of images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = (7.5, 4.0)
COLOURS = {"correct": "#2b8a3e", "incorrect": "#c92a2a", "precision": "#1864ab", "recall": "#e67700", "f1": "#5f3dc4"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display: render to files only
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def placeholder(path: Path, title: str, text: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(SIZE[0], 1.6))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=11, color="#555555", wrap=True)
    return _save(fig, path)


def loss_curves(path: Path, records: list[dict]) -> Path:
    """Total loss and its named parts by epoch."""
    rows = [r for r in records if "loss" in r]
    if not rows:
        return placeholder(path, "Training loss", "no loss records in metrics.jsonl")
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["loss"] for r in rows], color="black", lw=2, label="loss (total)")
    parts = sorted({k for r in rows for k in (r.get("parts") or {})})
    for k in parts:
        ax.plot(epochs, [(r.get("parts") or {}).get(k, np.nan) for r in rows], lw=1.2, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training loss and its parts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def _get(d: dict, dotted: str):
    for k in dotted.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def eval_curves(path: Path, records: list[dict], selected_epoch: int | None, metrics=None) -> Path:
    """Valid and test metrics at each evaluation (CSLS l2r Hits@1 and MRR; cosine for a sampled evaluation, which
    has no CSLS); the selected epoch marked."""
    if metrics is None:
        csls = any(isinstance(r.get(s), dict) and "csls" in r[s] for r in records for s in ("valid", "test"))
        sim = "csls" if csls else "cosine"
        metrics = (f"{sim}.l2r.hits@1", f"{sim}.l2r.mrr")
    plt = _plt()
    lines = []
    for split, style in (("valid", "-"), ("test", "--")):
        for m in metrics:
            pts = [(r["epoch"], _get(r[split], m)) for r in records if isinstance(r.get(split), dict)]
            pts = [(e, v) for e, v in pts if v is not None]
            if pts:
                lines.append((f"{split} {m}", style, pts))
    if not lines:
        return placeholder(path, "Validation and test metrics", "no evaluation records in metrics.jsonl")
    fig, ax = plt.subplots(figsize=SIZE)
    for label, style, pts in lines:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, label=label)
    if selected_epoch is not None:
        ax.axvline(selected_epoch, color="grey", lw=1, ls=":", label=f"selected (epoch {selected_epoch})")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_title("Validation and test metrics by epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def hits_at_k(path: Path, results: dict) -> Path:
    """Hits@1/5/10 in both directions, cosine and CSLS, for the valid and test links."""
    splits = [s for s in ("valid", "test") if isinstance(results.get(s), dict)]
    if not splits:
        return placeholder(path, "Hits@k", "no results.json (the run has not finished)")
    plt = _plt()
    fig, axes = plt.subplots(1, len(splits), figsize=(SIZE[0], SIZE[1]), squeeze=False, sharey=True)
    ks = ("hits@1", "hits@5", "hits@10")
    # a sampled evaluation has cosine only: no empty CSLS bars
    groups = [(sim, d) for sim in ("cosine", "csls") if any(sim in results[s] for s in splits) for d in ("l2r", "r2l")]
    width = 0.8 / len(groups)
    for ax, split in zip(axes[0], splits, strict=True):
        x = np.arange(len(ks))
        for i, (sim, d) in enumerate(groups):
            vals = [_get(results[split], f"{sim}.{d}.{k}") or 0.0 for k in ks]
            bars = ax.bar(x + (i - (len(groups) - 1) / 2) * width, vals, width, label=f"{sim} {d}")
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        ax.set_xticks(x, ks)
        ax.set_ylim(0, 1.1)
        ax.set_title(f"{split} links")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Hits@k (l2r: KG1 to KG2, r2l: KG2 to KG1)")
    return _save(fig, path)


def score_distributions(path: Path, scores: np.ndarray, correct: np.ndarray, score_name: str, thresholds: dict) -> Path:
    """Histogram of top-1 scores on the valid links, correct against incorrect."""
    if len(scores) == 0:
        return placeholder(path, "Scores of top-1 matches", "no validation links to score")
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    bins = np.linspace(min(0.0, float(scores.min())), max(1.0, float(scores.max())), 31)
    ax.hist(scores[correct], bins=bins, alpha=0.65, color=COLOURS["correct"], label=f"correct ({int(correct.sum())})")
    ax.hist(scores[~correct], bins=bins, alpha=0.65, color=COLOURS["incorrect"], label=f"incorrect ({int((~correct).sum())})")
    _mark(ax, thresholds)
    ax.set_xlabel(f"score ({score_name})")
    ax.set_ylabel("valid links")
    ax.set_title("Scores of the top-1 matches of the valid links")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _mark(ax, thresholds: dict) -> None:
    for name, value in thresholds.items():
        if value is not None:
            ax.axvline(value, color="black", lw=1, ls="--" if name == "threshold" else ":", label=f"{name} {value:g}")


def threshold_curves(path: Path, grid: np.ndarray, prf: dict, thresholds: dict, score_name: str) -> Path:
    """Precision, recall and F1 of the valid links' matches against the score threshold."""
    if len(grid) == 0:
        return placeholder(path, "Precision / recall / F1 against the threshold", "no validation links to score")
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    for k in ("precision", "recall", "f1"):
        ax.plot(grid, prf[k], color=COLOURS[k], lw=1.8, label=k)
    _mark(ax, thresholds)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"threshold on the score ({score_name})")
    ax.set_title("Precision / recall / F1 of the valid links against the threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def model_values(path: Path, records: list[dict]) -> tuple[Path, bool]:
    """``weight.*`` and ``confidence.*`` values the model reports per epoch (the records' ``model`` object)."""
    keys = sorted({k for r in records for k in (r.get("model") or {}) if k.startswith(("weight.", "confidence."))})
    if not keys:
        return placeholder(path, "Modality weights and confidences", "not reported by this model"), False
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    for k in keys:
        pts = [(r["epoch"], (r.get("model") or {}).get(k)) for r in records]
        pts = [(e, v) for e, v in pts if isinstance(v, (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="-" if k.startswith("weight.") else "--", label=k)
    ax.set_xlabel("epoch")
    ax.set_title("Modality weights (solid) and confidences (dashed) reported by the model")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path), True


def feature_coverage(path: Path, coverage: dict[str, tuple[float, float]]) -> Path:
    """Share of KG1 and KG2 entities that have each modality."""
    if not coverage:
        return placeholder(path, "Feature coverage", "no features stored (run `kgalign features`)")
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    names = list(coverage)
    x = np.arange(len(names))
    for i, (label, colour) in enumerate((("KG1", "#1864ab"), ("KG2", "#e67700"))):
        vals = [coverage[n][i] for n in names]
        bars = ax.bar(x + (i - 0.5) * 0.4, vals, 0.4, label=label, color=colour)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in vals], fontsize=7, padding=1)
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("entities with the modality")
    ax.set_title("Feature coverage per modality")
    ax.legend(fontsize=8)
    return _save(fig, path)
