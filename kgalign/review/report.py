"""`kgalign report RUN`: one self-contained HTML file (inline CSS, PNGs embedded) plus the PNGs beside it.

The valid-link figures mirror what `kgalign align` does: every entity outside
the training links is a candidate, with align's similarity, score and matching
strategy (taken from the run's ``predictions.tsv.json`` when `align` has run,
else align's defaults), looked at on the validation links, so the plotted
thresholds are the ones a user picks.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgalign import rundir
from kgalign.errors import InputError
from kgalign.fsutil import atomic_directory, atomic_write_text
from kgalign.rundir import open_run

FIGURES = (
    ("training_loss.png", "Training loss", "Total loss and the model's named loss parts by epoch."),
    ("training_metrics.png", "Metrics by epoch", "Validation (solid) and test (dashed) metrics at each evaluation."),
    ("hits_at_k.png", "Hits@k", "Final Hits@1/5/10 of the selected model in both directions, cosine and CSLS."),
    ("score_distribution.png", "Score distributions", "Scores of the top-1 matches of the valid links' KG1 ends, correct and incorrect."),
    ("threshold_prf.png", "Threshold", "Precision, recall and F1 on the valid links against the score threshold."),
    ("model_values.png", "Modality weights", "Modality weights and confidences reported by the model, by epoch."),
    ("feature_coverage.png", "Feature coverage", "Share of each graph's entities that have each modality."),
)
ALIGN_DEFAULTS = {"scope": "all", "similarity": "csls", "score": "cosine", "strategy": "greedy", "topk": 10, "csls_k": 3}


@dataclass
class ValidScores:
    scores: np.ndarray  # score of each matched valid KG1 end
    correct: np.ndarray  # bool, same length
    total: int  # valid links (unmatched ones count against recall)
    settings: dict = field(default_factory=dict)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", str(path), lineno) from None
        if isinstance(rec, dict) and "epoch" in rec:
            out.append(rec)
    return out


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", str(path), exc.lineno) from None
    return obj if isinstance(obj, dict) else {}


def _setting(meta: dict, key: str):
    if key == "csls_k":  # align records CSLS as "csls(k=N)"
        m = re.search(r"csls\(k=(\d+)\)", str(meta.get("similarity", "")) + str(meta.get("score", "")))
        return int(m.group(1)) if m else ALIGN_DEFAULTS["csls_k"]
    value = meta.get(key, ALIGN_DEFAULTS.get(key))
    if key in ("similarity", "score") and isinstance(value, str) and value.startswith("csls"):
        return "csls"
    if key == "strategy" and isinstance(value, str):
        return value.split(" ")[0]  # "hungarian (dense)" -> "hungarian"
    return value


def valid_scores(emb: np.ndarray, ds, align_meta: dict) -> ValidScores:
    """Match every candidate as `align` does, then look at the valid links' KG1 ends."""
    from kgalign.export.align import align_embeddings

    valid = ds.links_for("valid")
    settings = {k: _setting(align_meta, k) for k in ALIGN_DEFAULTS}
    settings["scope"] = "all"  # align's `test` scope would leave the valid links' entities out
    if len(valid) == 0:
        return ValidScores(np.zeros(0), np.zeros(0, bool), 0, settings)
    pred = align_embeddings(
        emb,
        ds.entity_kg,
        ds.links,
        ds.link_split,
        scope=settings["scope"],
        similarity=settings["similarity"],
        score=settings["score"],
        strategy=settings["strategy"],
        topk=int(settings["topk"]),
        csls_k=int(settings["csls_k"]),
        include_seeds=False,
    )
    match = dict(zip(pred.kg1.tolist(), zip(pred.kg2.tolist(), pred.score.tolist(), strict=True), strict=True))
    scores, correct = [], []
    for a, b in valid.tolist():
        if a in match:
            scores.append(match[a][1])
            correct.append(match[a][0] == b)
    return ValidScores(np.array(scores, float), np.array(correct, bool), len(valid), settings)


def prf_curves(vs: ValidScores, points: int = 101) -> tuple[np.ndarray, dict]:
    """P/R/F1 of the matched valid pairs kept at each threshold (recall over all valid links)."""
    if vs.total == 0:
        return np.zeros(0), {"precision": [], "recall": [], "f1": []}
    lo = min(0.0, float(vs.scores.min())) if len(vs.scores) else 0.0
    hi = max(1.0, float(vs.scores.max())) if len(vs.scores) else 1.0
    grid = np.linspace(lo, hi, points)
    kept = vs.scores[None, :] >= grid[:, None]
    tp = (kept & vs.correct[None, :]).sum(1)
    n = kept.sum(1)
    precision = np.where(n > 0, tp / np.maximum(n, 1), np.nan)  # undefined where nothing is kept: not drawn
    recall = tp / vs.total
    with np.errstate(invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    f1 = np.where(n > 0, f1, np.nan)
    return grid, {"precision": precision, "recall": recall, "f1": f1}


def coverage(ds) -> dict[str, tuple[float, float]]:
    """{modality: (share of KG1 entities, share of KG2 entities)} from the stored masks."""
    from kgalign.features.store import features_dir, read_manifest

    out = {}
    kg = np.asarray(ds.entity_kg)
    for name in sorted(read_manifest(ds.path)):
        p = features_dir(ds.path) / f"{name}.mask.npy"
        if not p.is_file():
            continue
        mask = np.load(p, allow_pickle=False)
        if mask.shape != kg.shape:
            continue
        out[name] = tuple(float(mask[kg == k].mean()) if (kg == k).any() else 0.0 for k in (1, 2))
    return out


def _selected_epoch(results: dict) -> int | None:
    sel = results.get("selection")
    return int(sel["epoch"]) if isinstance(sel, dict) and sel.get("epoch") is not None else None


def build_report(run: str | os.PathLike, output: str | os.PathLike | None = None) -> dict:
    """Write ``output`` (default ``RUN/report``): ``index.html`` and the PNGs. Returns a summary."""
    from kgalign.review import plots

    r = open_run(run)
    ds = r.load_dataset()
    emb = np.array(r.load_embeddings(ds.num_entities), dtype=np.float32)  # a writable copy for torch
    records = _read_jsonl(r.path / "metrics.jsonl")
    results = _read_json(r.path / "results.json")
    align_meta = _read_json(r.path / "predictions.tsv.json")
    vs = valid_scores(emb, ds, align_meta)
    grid, prf = prf_curves(vs)
    thresholds = {"threshold": align_meta.get("threshold"), "review threshold": align_meta.get("review_threshold")}
    score_name = str(align_meta.get("score", vs.settings.get("score")))
    out_dir = Path(output) if output is not None else r.path / rundir.REPORT
    with atomic_directory(out_dir, overwrite=True) as tmp:
        plots.loss_curves(tmp / FIGURES[0][0], records)
        plots.eval_curves(tmp / FIGURES[1][0], records, _selected_epoch(results))
        plots.hits_at_k(tmp / FIGURES[2][0], results)
        plots.score_distributions(tmp / FIGURES[3][0], vs.scores, vs.correct, score_name, thresholds)
        plots.threshold_curves(tmp / FIGURES[4][0], grid, prf, thresholds, score_name)
        _, reported = plots.model_values(tmp / FIGURES[5][0], records)
        plots.feature_coverage(tmp / FIGURES[6][0], coverage(ds))
        best = int(np.nanargmax(prf["f1"])) if len(grid) and not np.isnan(prf["f1"]).all() else None
        context = {
            "run": str(r.path.resolve()),
            "dataset": str(r.dataset_path),
            "model": r.model_name or "unknown",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "epochs": len(records),
            "selection": results.get("selection") or {},
            "protocol": results.get("protocol", ""),
            "results": _result_rows(results),
            "valid": {
                "links": vs.total,
                "matched": int(len(vs.scores)),
                "correct": int(vs.correct.sum()) if len(vs.correct) else 0,
                "settings": ", ".join(f"{k}={v}" for k, v in vs.settings.items()),
                "best_f1": None if best is None else (float(grid[best]), float(prf["f1"][best])),
            },
            "thresholds": {k: v for k, v in thresholds.items() if v is not None},
            "model_reported": reported,
            "figures": [
                {"file": f, "title": t, "caption": c, "data": base64.b64encode((tmp / f).read_bytes()).decode("ascii")}
                for f, t, c in FIGURES
            ],
        }
        atomic_write_text(tmp / "index.html", render_html(context))
    return {"output": str(out_dir / "index.html"), "figures": [str(out_dir / f) for f, _, _ in FIGURES], "valid_links": vs.total}


def _result_rows(results: dict) -> list[dict]:
    rows = []
    for split in ("valid", "test"):
        for sim in ("csls", "cosine"):
            for d in ("l2r", "r2l"):
                m = ((results.get(split) or {}).get(sim) or {}).get(d)
                if isinstance(m, dict):
                    values = {k: m.get(k) for k in ("hits@1", "hits@5", "hits@10", "mrr", "mr")}
                    rows.append({"split": split, "similarity": sim, "direction": d, **values})
    return rows


def render_html(context: dict) -> str:
    from kgalign.review.templating import environment

    return environment().get_template("report.html").render(**context)
