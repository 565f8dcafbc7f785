"""What `kgalign evaluate` does, as library calls."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kgalign.errors import InputError, MissingResourceError
from kgalign.rundir import open_run

SPLITS = ("test", "valid")


def evaluate_run(
    run: str | os.PathLike,
    *,
    split: str = "test",
    candidates: str = "test",
    csls_k: int = 3,
    block_size: int = 4096,
    device: str | None = None,
    dataset: str | os.PathLike | None = None,
    sample: int | None = None,
    seed: int | None = None,
) -> dict:
    """Rank metrics of a run's embeddings on one split's links (see ranking.py for the protocol);
    with ``sample``, cosine metrics of that many sampled links (sampled.py)."""
    from kgalign.evaluation.ranking import evaluate_embeddings
    from kgalign.evaluation.sampled import SPLIT_SEEDS, evaluate_sampled

    if split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if candidates not in ("test", "pool", "all"):
        raise InputError(f"--candidates must be test, pool or all, got {candidates!r}")
    if csls_k < 1:
        raise InputError("--csls-k must be >= 1")
    if sample is not None and sample < 1:
        raise InputError("--sample must be >= 1")
    if device is not None:
        from kgalign.device import resolve_device

        device = resolve_device(device)  # a clear error, not a torch traceback, for cuda on a CPU build
    r = open_run(run, dataset)
    ds = r.load_dataset()
    emb = np.array(r.load_embeddings(ds.num_entities), dtype=np.float32)
    links = ds.links_for(split)
    if len(links) == 0:
        raise InputError(f"the dataset has no {split} links", str(ds.path))
    common = dict(candidates=candidates, kg=ds.entity_kg, exclude=ds.links_for("train"), block_size=block_size, device=device)
    try:
        if sample is None:
            res = evaluate_embeddings(emb, links, csls_k=csls_k, **common)
        else:
            # by default the sample training ranked for this split
            res = evaluate_sampled(emb, links, sample=sample, seed=SPLIT_SEEDS[split] if seed is None else seed, **common)
    except ValueError as exc:
        raise InputError(str(exc), str(ds.path)) from None
    res["split"] = split
    res["run"] = str(r.path)
    res["dataset"] = str(r.dataset_path)
    if candidates == "test" and split == "valid":
        res["protocol"] = res["protocol"].replace("(benchmark protocol)", "(benchmark protocol, on the valid links)")
    return res


def metrics_table(res: dict) -> str:
    from tabulate import tabulate

    ks = [k for k in res["cosine"]["l2r"] if k.startswith("hits@")]
    rows = []
    for sim in [s for s in ("cosine", "csls") if s in res]:
        for d in ("l2r", "r2l"):
            m = res[sim][d]
            rows.append([sim, d] + [f"{m[k]:.4f}" for k in ks] + [f"{m['mrr']:.4f}", f"{m['mr']:.1f}"])
    head = ["similarity", "direction"] + [k.replace("hits", "Hits") for k in ks] + ["MRR", "MR"]
    table = tabulate(rows, headers=head, tablefmt="github", disable_numparse=True)
    return f"{table}\n\nsplit: {res.get('split', '?')}; protocol: {res['protocol']}"


def evaluate_link_file(
    links_path: str | os.PathLike,
    *,
    run: str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    fmt: str | None = None,
    split: str = "test",
    count: str = "gold-entities",
    base_kg1: str | None = None,
    base_kg2: str | None = None,
    thresholds=None,
) -> dict:
    """Precision, recall and F1 of an exported link file against one split's links."""
    from kgalign.data.store import load_dataset
    from kgalign.evaluation.linkset import read_links, score_links

    if split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if count not in ("gold-entities", "all"):
        raise InputError(f"--count must be gold-entities or all, got {count!r}")
    if dataset is None:
        if run is None:
            raise InputError("give a RUN directory or --dataset DS to score --links against")
        ds_path = open_run(run).dataset_path if Path(run, "embeddings.npy").is_file() else _run_dataset(run)
    else:
        ds_path = Path(dataset)
    ds = load_dataset(ds_path)
    ls = read_links(links_path, fmt, base_kg1, base_kg2)
    gold = ds.links_for(split)
    if len(gold) == 0:
        raise InputError(f"the dataset has no {split} links", str(ds_path))
    out = score_links(ls, ds.entities, ds.entity_kg, gold, ds.links_for("train"), count=count, thresholds=thresholds)
    out.update(links=str(links_path), dataset=str(ds_path), split=split, gold_set=f"{split} links of the dataset")
    return out


def _run_dataset(run) -> Path:
    import json

    cfg = Path(run, "config.json")
    if not cfg.is_file():
        raise MissingResourceError(f"{run}: not a run directory (no config.json)")
    data = json.loads(cfg.read_text(encoding="utf-8"))
    if not data.get("dataset"):
        raise InputError('no "dataset" path in the run config (pass --dataset)', str(cfg))
    return Path(data["dataset"])


def linkset_table(res: dict) -> str:
    from tabulate import tabulate

    rows = [[f"{res['precision']:.4f}", f"{res['recall']:.4f}", f"{res['f1']:.4f}", res["true_positives"], res["counted"], res["gold"]]]
    text = tabulate(rows, headers=["precision", "recall", "F1", "TP", "counted", "gold"], tablefmt="github", disable_numparse=True)
    if "sweep" in res:
        srows = [
            [f"{r['threshold']:g}", f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", r["counted"]] for r in res["sweep"]
        ]
        text += "\n\n" + tabulate(
            srows, headers=["threshold", "precision", "recall", "F1", "kept"], tablefmt="github", disable_numparse=True
        )
    note = (
        f"gold: {res['gold_set']}; counted: "
        + ("pairs with a gold KG1 or KG2 entity" if res["count"] == "gold-entities" else "all pairs")
        + f"; {res['pairs_in_file']} pairs in file, {res['seeds_ignored']} training links ignored, "
        f"{res['outside']} outside the gold entities, {res['unknown_terms']} with terms unknown to the dataset"
    )
    return f"{text}\n\n{note}"
