"""Scaling benchmark of the training-free aligner (``--model lightea``): seconds, peak RSS, Hits@1/MRR.

    .venv/bin/python benchmarks/scale_lightea.py --n 10000 --out benchmarks/out/scale/lightea-10000.json
    flock /tmp/kgalign-bigrun.lock .venv/bin/python benchmarks/scale_lightea.py --n 100000 --structure-only \\
        --out benchmarks/out/scale/lightea-100000.json

Dataset: ``--dataset DIR`` (a kgalign dataset), else ``/work/scale-data/synth-<size>`` when
``/work/scale-data/READY-<size>`` exists, else ``benchmarks/out/scale-data/ds-<n>`` (generated here with
``kgalign synth`` + ``kgalign ingest`` when missing: structure only, no features).
Timed stage ("seconds"): building the model (sparse operators) + every round of ``fit`` (propagation,
bootstrapping). Evaluation is not timed in it: each round is scored on up to ``--eval-sample`` valid links (the
round is selected on valid), the selected round on up to ``--eval-sample`` test links ranked against all KG2
entities of the test links (cosine, left to right; ties pessimistic). ``extra.spmm`` compares one propagation
product with torch sparse CSR and with scipy.sparse on the same operator.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SIZES = {10_000: "10k", 100_000: "100k", 1_000_000: "1m"}


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def find_dataset(n: int, given: str | None) -> Path:
    if given:
        return Path(given)
    label = SIZES.get(n, str(n))
    shared = Path(f"/work/scale-data/synth-{label}")
    if Path(f"/work/scale-data/READY-{label}").exists() and shared.is_dir():
        return shared
    local = ROOT / "benchmarks" / "out" / "scale-data" / f"ds-{n}"
    if not (local / "manifest.json").is_file():
        pair = local.with_name(f"pair-{n}")
        kg = [sys.executable, "-m", "kgalign.cli"]
        subprocess.run([*kg, "synth", str(pair), "--entities", str(n), "--force"], check=True)
        cmd = json.loads((pair / "synth.json").read_text())["ingest"].replace("DATASET", shlex.quote(str(local)))
        subprocess.run(kg + shlex.split(cmd)[1:], check=True)
    return local


def sampled_hits(emb: torch.Tensor, links: np.ndarray, sample: int, seed: int = 0, block_elems: int = 1 << 27) -> dict:
    """Hits@1/10 and MRR of ``sample`` links (or all), each KG1 end ranked against every KG2 end of ``links``.

    Query blocks hold at most ``block_elems`` scores (512 MiB in float32), whatever the number of candidates.
    """
    rng = np.random.default_rng(seed)
    rows = links if len(links) <= sample else links[rng.choice(len(links), sample, replace=False)]
    cands = torch.from_numpy(np.unique(links[:, 1]))
    target = emb[cands]
    gold_col = torch.searchsorted(cands, torch.from_numpy(np.ascontiguousarray(rows[:, 1])))
    block = max(1, block_elems // max(len(cands), 1))
    ranks = []
    for s in range(0, len(rows), block):
        q = torch.from_numpy(rows[s : s + block, 0])
        sims = emb[q] @ target.T
        gold = sims.gather(1, gold_col[s : s + block, None])
        ranks.append((sims >= gold).sum(1))
    r = torch.cat(ranks).double()
    hits = {f"hits@{k}": float((r <= k).double().mean()) for k in (1, 10)}
    return {**hits, "mrr": float((1 / r).mean()), "queries": len(rows)}


def compare_spmm(adj: torch.Tensor, width: int, repeats: int = 2) -> dict:
    """Seconds of one (n, n) sparse @ (n, width) dense product: torch sparse CSR (``adj``) vs scipy CSR."""
    import scipy.sparse as sp

    a_sp = sp.csr_array((adj.values().numpy(), adj.col_indices().numpy(), adj.crow_indices().numpy()), shape=tuple(adj.shape))
    x = torch.randn(adj.shape[0], width)
    x_np = x.numpy()
    out = {}
    for name, fn in (("torch_csr", lambda: torch.sparse.mm(adj, x)), ("scipy_csr", lambda: a_sp @ x_np)):
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        out[name] = (time.perf_counter() - t0) / repeats
    out["width"], out["nnz"] = width, int(a_sp.nnz)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="entities per side")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--structure-only", action="store_true", help="no feature views (model option features=false)")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=JSON", help="a model option, e.g. --set iterations=0")
    ap.add_argument("--eval-sample", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-spmm", action="store_true", help="skip the torch vs scipy product comparison")
    args = ap.parse_args()

    from kgalign.data.store import load_dataset
    from kgalign.features.store import load_features, read_manifest
    from kgalign.models.inputs import build_inputs
    from kgalign.models.registry import build_model

    t_all = time.perf_counter()
    path = find_dataset(args.n, args.dataset)
    t0 = time.perf_counter()
    ds = load_dataset(path)
    wanted = [] if args.structure_only else [m for m in read_manifest(path) if m not in ("numeric_present",)]
    feats = load_features(path, wanted) if wanted else {}
    inputs = build_inputs(ds, feats)
    load_s = time.perf_counter() - t0
    options = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.structure_only:
        options["features"] = False
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model = build_model("lightea", inputs, **options)
    del inputs
    build_s = time.perf_counter() - t0
    valid, test = ds.links_for("valid"), ds.links_for("test")
    rounds, best = [], None
    fit_s = 0.0
    t0 = time.perf_counter()
    for links, source in model.fit(torch.from_numpy(ds.links_for("train"))):
        fit_s += time.perf_counter() - t0
        emb = model.embed()
        v = sampled_hits(emb, valid, args.eval_sample, args.seed) if len(valid) else None
        boot = int((source > 0).sum())
        rounds.append({"seconds_cumulative": build_s + fit_s, "train_links": len(links), "bootstrapped": boot, "valid": v})
        print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
        if best is None or (v is not None and v["mrr"] > best[1]["mrr"]):
            best = (len(rounds) - 1, v, sampled_hits(emb, test, args.eval_sample, args.seed + 1))
        del emb
        t0 = time.perf_counter()
    spmm = None if args.no_spmm else compare_spmm(model.graph.adj, model.ent_dim)
    tri = np.asarray(ds.relation_triples)
    kg = ds.entity_kg
    record = {
        "stage": "lightea",
        "n_per_side": args.n,
        "triples_per_side": int(round(len(tri) / 2)),
        "seconds": build_s + fit_s,
        "peak_rss_gib": rss_gib(),
        "threads": torch.get_num_threads(),
        "load": os.getloadavg().__repr__(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "extra": {
            "dataset": str(path),
            "entities": {"kg1": int((kg == 1).sum()), "kg2": int((kg == 2).sum())},
            "links": {"train": len(ds.links_for("train")), "valid": len(valid), "test": len(test)},
            "options": {**model_options(model), **options},
            "modalities": ["graph", *model.names[1:]],
            "view_weights": model.view_weights,
            "embedding_dim": int(model.joint().shape[1]),
            "seconds_load": load_s,
            "seconds_build": build_s,
            "seconds_fit": fit_s,
            "seconds_wall_total": time.perf_counter() - t_all,
            "rounds": rounds,
            "selected_round": best[0],
            "valid": best[1],
            "test": best[2],
            "hits@1": best[2]["hits@1"],
            "mrr": best[2]["mrr"],
            "protocol": "round selected on valid MRR; test: sampled KG1 ends ranked against all KG2 ends of the test links",
            "spmm": spmm,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("n_per_side", "seconds", "peak_rss_gib")} | {"test": best[2], "spmm": spmm}))


def model_options(model) -> dict:
    keys = ("ent_dim", "rel_dim", "mini_dim", "rounds", "iterations", "threshold", "top_k", "feature_dim", "feature_weight")
    return {k: getattr(model, k) for k in keys}


if __name__ == "__main__":
    main()
