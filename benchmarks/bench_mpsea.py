"""MPSEA's cost against NoCo's, and the multi-weight GAT's against the plain GAT's, on synthetic graphs.

Two measurements, each model in its own child process so that each peak RSS is its own:

- ``gat``: fwd+bwd (timed alternately in one process) of the 2-layer, 2-head, 300-d structural encoder, PyG
  ``GATConv`` (kgalign's plain GAT) versus :class:`MultiWeightGAT` (relation
  groups), on ``--gat-entities`` nodes and ``--gat-edges`` typed directed edges;
- ``epoch``: one full training epoch (``--step rows``, the training default: the structural encoder over the
  whole graph, every per-row module on the loss's rows; ``--step full``: forward over all entities), loss on one
  batch of links, backward, AdamW step) of NoCo and of MPSEA on the same
  synthetic inputs (typed relation edges with a Zipf relation distribution,
  relation/attribute bag-of-words, numeric facts, optional image features).

Medians over ``--repeats`` after one warm-up; results as JSON in
``benchmarks/out/mpsea_bench.json`` (and on stdout)::

    python benchmarks/bench_mpsea.py                          # both, mid-size defaults
    python benchmarks/bench_mpsea.py --only gat --threads 2
    python benchmarks/bench_mpsea.py --amp bf16 --out benchmarks/out/mpsea_bench_bf16.json
    python benchmarks/bench_mpsea.py --only epoch --mpsea-set fusion_checkpoint=true
    python benchmarks/bench_mpsea.py --only epoch --step full     # every module on all rows (train.loss_rows_only=false)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _inputs(entities: int, edges: int, relations: int, seed: int = 0, image: int = 0):
    """Synthetic :class:`ModelInputs` with typed edges and numeric facts."""
    import numpy as np
    import torch

    from kgalign.models.inputs import NumericFacts, RelationEdges
    from kgalign.models.synthetic import random_inputs

    dims = {"relation": 1000, "attribute": 1000, "numeric": 50}
    if image:
        dims["image"] = image
    inputs = random_inputs(entities, edges, dims, seed=seed, missing={"numeric": 0.3, "image": 0.05})
    rng = np.random.default_rng(seed + 1)
    m = edges // 2  # triples: both directions make ``edges`` directed edges
    h, t = rng.integers(0, entities, m), rng.integers(0, entities, m)
    r = np.minimum(rng.zipf(1.5, m) - 1, relations - 1)
    inputs.relation_edges = RelationEdges.from_triples(np.stack([h, r, t], 1), relations)
    present = (rng.random((entities, dims["numeric"])) < 0.05) & inputs.masks["numeric"].numpy()[:, None]
    values = rng.random((entities, dims["numeric"])).astype(np.float32) * present
    inputs.numeric = NumericFacts.from_matrices(values, present)
    inputs.features["numeric"] = torch.from_numpy(values)
    return inputs


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process: less sensitive to other jobs than wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _child_gat(args) -> dict:
    """Both encoders in one process, timed alternately, so that other jobs slow both alike."""
    import torch

    from kgalign.models.layers import GraphEncoder
    from kgalign.models.relational_gat import MultiWeightGAT

    inputs = _inputs(args.gat_entities, args.gat_edges, args.relations)
    rel = inputs.relation_edges
    torch.manual_seed(0)
    plain = GraphEncoder(inputs.num_entities, 300, 2, 2, True)  # the same edges, untyped
    multi = MultiWeightGAT(inputs.num_entities, 300, rel.index, rel.type, rel.num_relations, 2, 2, True, 0.0, args.bands)
    runs = {"plain": lambda: plain(rel.index), "multi_weight": lambda: multi()}
    times = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    for i in range(args.repeats + 1):
        for name, run in runs.items():
            c0, t0 = _cpu_seconds(), time.perf_counter()
            run().square().mean().backward()
            if i:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(_cpu_seconds() - c0)
        plain.zero_grad(set_to_none=True)
        multi.zero_grad(set_to_none=True)
    res = {
        "edges": int(rel.index.shape[1]),
        "groups": multi.num_groups,
        **{f"{k}_fwd_bwd_s": round(statistics.median(v), 3) for k, v in times.items()},
        **{f"{k}_cpu_s": round(statistics.median(v), 3) for k, v in cpu.items()},
    }
    res["time_ratio"] = round(res["multi_weight_fwd_bwd_s"] / res["plain_fwd_bwd_s"], 2)
    res["cpu_ratio"] = round(res["multi_weight_cpu_s"] / res["plain_cpu_s"], 2)
    return res


def _child_epoch(args) -> dict:
    import contextlib

    import numpy as np
    import torch

    from kgalign.models.registry import build_model
    from kgalign.training.distributed import TrainStep
    from kgalign.training.rowstep import RowStep

    inputs = _inputs(args.entities, args.edges, args.relations, image=args.image)
    torch.manual_seed(0)
    overrides = {k: json.loads(v) for k, v in (x.split("=", 1) for x in args.mpsea_set)} if args.variant == "mpsea" else {}
    model = build_model(args.variant, inputs, **overrides)
    rows = args.step == "rows" and (model.supports_minibatch or getattr(model, "supports_row_step", False))
    step = RowStep(model) if rows else TrainStep(model)  # the training loop's step (train.loss_rows_only)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    rng = np.random.default_rng(1)
    n1 = args.entities // 2
    links = torch.from_numpy(np.stack([rng.choice(n1, args.links, replace=False), n1 + rng.choice(n1, args.links, replace=False)], 1))
    model.train()
    times, cpu = [], []
    for i in range(args.repeats + 1):
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if args.amp == "bf16" else contextlib.nullcontext()
        c0, t0 = _cpu_seconds(), time.perf_counter()
        with amp:
            loss, _, _ = step(links)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(_cpu_seconds() - c0)
    return {
        "variant": args.variant,
        "epoch_s": round(statistics.median(times), 3),
        "cpu_s": round(statistics.median(cpu), 3),
        "epochs_s": [round(t, 3) for t in times],
        "peak_rss_gb": _peak_gb(),
    }


def _spawn(kind: str, variant: str, argv: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--variant", variant, *argv]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"{kind}/{variant} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["gat", "epoch"], default=None)
    ap.add_argument("--gat-entities", type=int, default=20_000)
    ap.add_argument("--gat-edges", type=int, default=300_000, help="directed typed edges (both directions of 150k triples)")
    ap.add_argument("--entities", type=int, default=10_000, help="entities of the epoch benchmark (mid-size)")
    ap.add_argument("--edges", type=int, default=150_000)
    ap.add_argument("--links", type=int, default=1_000)
    ap.add_argument("--relations", type=int, default=500)
    ap.add_argument("--image", type=int, default=0, help="add an image modality of this width (e.g. 4096)")
    ap.add_argument("--bands", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--amp", choices=["off", "bf16"], default="off")
    ap.add_argument(
        "--step", choices=["rows", "full"], default="rows", help="epoch: per-row modules on the loss's rows (train default) or on all rows"
    )
    ap.add_argument("--mpsea-set", action="append", default=[], metavar="KEY=JSON", help="MPSEA option for the epoch benchmark")
    ap.add_argument("--out", default="benchmarks/out/mpsea_bench.json")
    ap.add_argument("--child", choices=["gat", "epoch"], help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps((_child_gat if args.child == "gat" else _child_epoch)(args)))
        return 0
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--only", "gat", "epoch")]
    result = {
        "threads": args.threads,
        "amp": args.amp,
        "step": args.step,
        "mpsea_set": args.mpsea_set,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    if args.only in (None, "gat"):
        result["gat"] = _spawn("gat", "both", passthrough)
    if args.only in (None, "epoch"):
        noco, mpsea = _spawn("epoch", "noco", passthrough), _spawn("epoch", "mpsea", passthrough)
        result["epoch"] = {
            "entities": args.entities,
            "noco": noco,
            "mpsea": mpsea,
            "time_ratio": round(mpsea["epoch_s"] / noco["epoch_s"], 2),
            "cpu_ratio": round(mpsea["cpu_s"] / noco["cpu_s"], 2),
            "peak_rss_ratio": round(mpsea["peak_rss_gb"] / noco["peak_rss_gb"], 2),
        }
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
