"""Training-free models (``model.trainable = False``, e.g. ``lightea``): no loop, no optimizer.

The trainer hands over after building the model: each round that ``model.fit`` yields is
evaluated on valid and test (test only reported), the selection split picks the round, and the
run directory gets the same files as a trained run (config, env, metrics, embeddings, weights,
train links, results), so ``evaluate``, ``align`` and ``export`` read it unchanged.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from kgalign import rundir
from kgalign.device import peak_memory
from kgalign.errors import InputError
from kgalign.training.results import TEST_SELECTION_WARNING, best_on_test
from kgalign.training.selection import Selection, metric_value

log = logging.getLogger("kgalign.training")


def protocol_text(split: str, metric: str) -> str:
    if split == "valid":
        return (
            f"Training-free model: each round's embeddings were evaluated and the round selected on the validation links by "
            f"{metric}; test links were used for neither the seeds, the bootstrapped pairs nor the selection. "
            "Ranking candidates: the entities of the evaluated split's links."
        )
    if split == "test":
        return TEST_SELECTION_WARNING
    return "Training-free model, no selection: the last round; test links were used for neither the seeds nor the bootstrapped pairs."


def run_training_free(trainer):
    """Fit ``trainer.model`` round by round and write the run; returns a ``TrainResult``."""
    from kgalign.training.pipeline import TrainResult

    cfg, t = trainer.cfg, trainer.cfg["train"]
    name = cfg["model"]["name"]
    if trainer.dist.enabled and trainer.dist.world_size > 1:
        raise InputError(f"model {name!r} is training-free: run it in one process (not under torchrun)")
    if trainer.resume:
        raise InputError(f"model {name!r} is training-free: there is nothing to resume; rerun without --resume (--force replaces the run)")
    trainer._prepare_dir()
    out = trainer.out
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_json(out / rundir.CONFIG, cfg)
    rundir.write_json(out / rundir.ENV, rundir.environment(trainer.device, trainer.precision.mode, 1))
    rundir.atomic_write_text(out / rundir.METRICS, "")
    if t["select_on"] == "test":
        log.warning(TEST_SELECTION_WARNING)

    from kgalign.evaluation.ranking import evaluate_embeddings
    from kgalign.evaluation.sampled import SPLIT_SEEDS, evaluate_sampled

    def evaluate_split(emb, split: str, links) -> dict:
        if cfg["eval"]["sample"] is not None:  # a large graph: a seeded sample of the links, cosine only
            return evaluate_sampled(emb, links, sample=cfg["eval"]["sample"], seed=SPLIT_SEEDS.get(split, 0), candidates="test")
        return evaluate_embeddings(emb, links, candidates="test", csls_k=cfg["eval"]["csls_k"])

    sel = Selection(t["select_on"], t["select_metric"], patience=0)
    splits = {s: links for s, links in trainer.splits.items() if len(links)}
    excluded = None if trainer.negatives is None else torch.from_numpy(np.asarray(trainer.negatives, dtype=np.int64).reshape(-1, 2))
    best = None
    fit_seconds = eval_seconds = 0.0
    rounds = 0
    t0 = time.perf_counter()
    for links, source in trainer.model.fit(torch.from_numpy(np.asarray(trainer.seeds, dtype=np.int64)), excluded):
        fit_seconds += time.perf_counter() - t0
        t1 = time.perf_counter()
        emb = trainer.model.embed()
        evals = {s: evaluate_split(emb, s, lk) for s, lk in splits.items()}
        eval_seconds += time.perf_counter() - t1
        record = {"epoch": rounds, "round": rounds, "train_links": len(links), "bootstrapped": int((source > 0).sum()), **evals}
        value = metric_value(evals[sel.split], sel.metric) if sel.split in evals else None
        if sel.update(value, rounds):
            record["selected"] = True
            best = (emb, links, source, evals)
        rundir.append_metrics(out / rundir.METRICS, record)
        shown = "; ".join(f"{s} {sel.metric} {metric_value(evals[s], sel.metric):.4f}" for s in ("valid", "test") if s in evals)
        log.info("round %d: %d train links (%d bootstrapped); %s", rounds, len(links), record["bootstrapped"], shown)
        rounds += 1
        t0 = time.perf_counter()
    emb, links, source, evals = best
    results = {
        "model": name,
        "dataset": cfg["dataset"],
        "config_hash": trainer.chash,
        "protocol": protocol_text(sel.split, sel.metric),
        "training_free": True,
        "selection": {
            "split": sel.split,
            "metric": sel.metric,
            "epoch": sel.best_epoch,
            "value": sel.best_value,
            "selected_on_test": sel.split == "test",
        },
        "valid": evals.get("valid"),
        "test": evals.get("test"),
        "epochs_run": rounds,
        "epochs_planned": int(getattr(trainer.model, "iterations", 0)) + 1,
        "stopped_early": False,
        "seconds_fit": fit_seconds,
        "seconds_per_epoch": fit_seconds / max(rounds, 1),
        "seconds_per_evaluation": eval_seconds / max(rounds, 1),
        "peak_memory": peak_memory(trainer.device),
        "train_links": {"seed": int((source == 0).sum()), "bootstrapped": int((source > 0).sum())},
        "device": str(trainer.device),
        "precision": trainer.precision.mode,
        "world_size": 1,
        "csls_k": cfg["eval"]["csls_k"],
    }
    if sel.split == "test":
        results["warning"] = TEST_SELECTION_WARNING
    results["best_on_test"] = best_on_test(out / rundir.METRICS, sel.metric)
    rundir.write_embeddings(out / rundir.EMBEDDINGS, emb)
    rundir.write_weights(out / rundir.BEST, trainer.model.state_dict(), {"model": name, "epoch": str(sel.best_epoch)})
    rundir.write_train_links(out / rundir.TRAIN_LINKS, links, source, reviewed=trainer.reviewed)
    if t["decisions"] and not (out / rundir.DECISIONS).exists():
        import shutil

        shutil.copyfile(t["decisions"], out / rundir.DECISIONS)
    rundir.write_json(out / rundir.RESULTS, results)
    if sel.split == "test":
        log.warning(TEST_SELECTION_WARNING)
    return TrainResult(out, cfg, True, rounds, results)
