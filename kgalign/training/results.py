"""``RUN/results.json``: the final metrics of a run with its protocol stated."""

from __future__ import annotations

from kgalign import rundir
from kgalign.device import peak_memory
from kgalign.training.selection import Selection, metric_value

TEST_SELECTION_WARNING = (
    "MODEL SELECTED ON THE TEST LINKS (--select-on test): paper-compatible protocol "
    "(MEAformer/NoCo style); the test metrics are optimistically biased and are not a held-out estimate."
)


_VALID_POOL = {
    "pool": "every entity not in a seed training link",
    "test": "the valid links' own entities",
    "all": "every entity",
}


def protocol_text(cfg: dict, sel: Selection) -> str:
    t = cfg["train"]
    pool = _VALID_POOL[cfg["eval"].get("valid_candidates", "test")]
    if sel.split == "valid":
        return (
            f"Model selected on the validation links by {sel.metric} (evaluated every {t['eval_every']} epoch(s), "
            f"early-stopping patience {t['patience']} evaluation(s)); test links were used for neither training, "
            f"selection nor bootstrapping. Ranking candidates: valid links among {pool}; test links among the "
            "test links' own entities (benchmark protocol)."
        )
    if sel.split == "test":
        return TEST_SELECTION_WARNING
    return "No model selection: the weights after the last epoch; test links were used for neither training nor bootstrapping."


def best_on_test(metrics_path, metric: str) -> dict | None:
    """The papers' protocol read off metrics.jsonl: the evaluation with the best test metric."""
    records = [r for r in rundir.read_metrics(metrics_path) if "test" in r]
    if not records:
        return None
    lower = metric.rsplit(".", 1)[-1] == "mr"
    best = None
    for r in records:
        v = metric_value(r["test"], metric)
        if best is None or (v < best[0] if lower else v > best[0]):
            best = (v, r)
    return {
        "description": "paper-compatible protocol (MEAformer/NoCo): the evaluation with the best test "
        f"{metric}; optimistic, shown for comparison only",
        "epoch": best[1]["epoch"],
        "test": best[1]["test"],
    }


def build_results(cfg: dict, chash: str, evals: dict, loop, selection, precision: str, world_size: int, metrics_path) -> dict:
    sel = selection.selection
    tm, ev = loop.timing, selection.timing
    n_boot = int((loop.source > 0).sum())
    res = {
        "model": cfg["model"]["name"],
        "dataset": cfg["dataset"],
        "config_hash": chash,
        "protocol": protocol_text(cfg, sel),
        "selection": {
            "split": sel.split,
            "metric": sel.metric,
            "epoch": sel.best_epoch if sel.split != "last" else loop.epoch,
            "value": sel.best_value,
            "selected_on_test": sel.split == "test",
        },
        "valid": evals.get("valid"),
        "test": evals.get("test"),
        "epochs_run": loop.epoch,
        "epochs_planned": cfg["train"]["epochs"],
        "stopped_early": bool(sel.stopped),
        "seconds_per_epoch": tm["train_seconds"] / max(tm["train_epochs"], 1),
        "seconds_per_evaluation": ev["eval_seconds"] / max(ev["evaluations"], 1),
        "peak_memory": peak_memory(loop.device),
        "train_links": {"seed": len(loop.links) - n_boot, "bootstrapped": n_boot},
        "device": str(loop.device),
        "precision": precision,
        "world_size": world_size,
        "csls_k": cfg["eval"]["csls_k"],
    }
    if sel.split == "test":
        res["warning"] = TEST_SELECTION_WARNING
    res["best_on_test"] = best_on_test(metrics_path, sel.metric)
    return res
