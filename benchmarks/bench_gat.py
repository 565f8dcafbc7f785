"""Time the structural encoder: torch_geometric's GATConv path against the sparse (CSR) GAT.

A random graph of FB15K-DB15K 20 % size (27,793 nodes, about 675k directed
edges, both directions, no duplicates), a learnable 300-d entity table and
2 attention layers of 2 heads: the ``GraphEncoder`` of every kgalign model.
Layouts: heads concatenated (2 x 150) and averaged (2 x 300), each with
``impl=pyg`` and ``impl=sparse``, plus the reference codes' diagonal layer
(sparse only: GATConv has no diagonal weight); fp32 and bf16 autocast.

One iteration = forward (training mode) + a scalar loss + backward + one
AdamW step. Repetitions are interleaved (every layout once per round) so that
the load of the shared machine falls on all of them alike; medians are
reported, and the pyg / sparse ratios come from the same run. Peak RSS is
measured afterwards in a fresh subprocess per layout (the peak is per
process), over one iteration.

    python benchmarks/bench_gat.py --reps 2              # about 10 min on 2 busy cores
    python benchmarks/bench_gat.py --reps 1 --only sparse --json
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

LAYOUTS = {
    # name: (impl, weight, concat)
    "pyg-concat": ("pyg", "full", True),
    "sparse-concat": ("sparse", "full", True),
    "pyg-mean": ("pyg", "full", False),
    "sparse-mean": ("sparse", "full", False),
    "sparse-diagonal": ("sparse", "diagonal", False),
}
PRECISIONS = ("fp32", "bf16")


def random_graph(nodes: int, edges: int, seed: int):
    """(2, E) LongTensor: ``edges // 2`` random undirected pairs, both directions, duplicates and loops removed."""
    import numpy as np

    from kgalign.models.inputs import undirected_edges

    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, nodes, size=(int(edges / 2 * 1.003), 2))  # a few collide and are dropped
    triples = np.stack([pairs[:, 0], np.zeros(len(pairs), dtype=np.int64), pairs[:, 1]], 1)
    return undirected_edges(triples, nodes)


class Case:
    """One layout x precision: an encoder, its optimizer and its timings."""

    def __init__(self, layout: str, precision: str, nodes: int, dim: int):
        import torch

        from kgalign.models.layers import GraphEncoder

        impl, weight, concat = LAYOUTS[layout]
        torch.manual_seed(0)
        self.name, self.layout, self.precision = f"{layout}/{precision}", layout, precision
        self.encoder = GraphEncoder(nodes, dim, heads=2, layers=2, concat=concat, impl=impl, weight=weight).train()
        self.opt = torch.optim.AdamW(self.encoder.parameters(), lr=5e-4, weight_decay=1e-4)
        self.target = torch.randn(nodes, dim, generator=torch.Generator().manual_seed(1))
        self.times: list[dict[str, float]] = []

    def step(self, edge_index) -> dict[str, float]:
        import contextlib

        import torch

        amp = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        t0 = time.perf_counter()
        with amp:
            out = self.encoder(edge_index)
        loss = (out.float() * self.target).mean()
        t1 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        self.opt.step()
        t3 = time.perf_counter()
        return {"forward": t1 - t0, "backward": t2 - t1, "step": t3 - t2, "total": t3 - t0}


def peak_rss(layout: str, precision: str, args) -> dict[str, float]:
    """Run one layout in a fresh process; its peak RSS (GB) after building and after one iteration."""
    cmd = [sys.executable, __file__, "--rss-child", f"{layout}/{precision}", "--nodes", str(args.nodes), "--edges", str(args.edges)]
    cmd += ["--threads", str(args.threads), "--dim", str(args.dim)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _rss_gb() -> float:
    """Peak RSS of this process image in GB: VmHWM, which (unlike ru_maxrss) does not inherit the parent's peak across exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_child(spec: str, args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    layout, precision = spec.split("/")
    edge_index = random_graph(args.nodes, args.edges, seed=0)
    case = Case(layout, precision, args.nodes, args.dim)
    base = _rss_gb()
    case.step(edge_index)
    print(json.dumps({"rss_built_gb": round(base, 2), "peak_rss_gb": round(_rss_gb(), 2)}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=27_793)
    ap.add_argument("--edges", type=int, default=675_000, help="directed edges, both directions counted")
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3, help="timed rounds after one warm-up round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["pyg", "sparse"], help="time only this implementation")
    ap.add_argument("--precision", choices=PRECISIONS, action="append", help="default: both")
    ap.add_argument("--no-rss", action="store_true", help="skip the per-layout peak-RSS subprocesses")
    ap.add_argument("--out", default="benchmarks/out/gat.json")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        return rss_child(args.rss_child, args)

    import torch

    torch.set_num_threads(args.threads)
    edge_index = random_graph(args.nodes, args.edges, seed=0)
    layouts = [name for name, (impl, _, _) in LAYOUTS.items() if args.only in (None, impl)]
    cases = [Case(lay, prec, args.nodes, args.dim) for lay in layouts for prec in args.precision or PRECISIONS]
    load_before = os.getloadavg()
    for rnd in range(args.reps + 1):
        for case in cases:
            t = case.step(edge_index)
            if rnd:
                case.times.append(t)
            print(f"round {rnd}{' (warm-up)' if rnd == 0 else ''} {case.name}: {t['total']:.2f} s", file=sys.stderr)
    rows = {}
    for case in cases:
        med = {k: round(statistics.median(t[k] for t in case.times), 3) for k in ("forward", "backward", "step", "total")}
        rows[case.name] = {**med, "totals": [round(t["total"], 3) for t in case.times]}
        if not args.no_rss:
            rows[case.name].update(peak_rss(case.layout, case.precision, args))
    ratios = {}
    for prec in args.precision or PRECISIONS:
        for lay in ("concat", "mean"):
            old, new = rows.get(f"pyg-{lay}/{prec}"), rows.get(f"sparse-{lay}/{prec}")
            if old and new:
                ratios[f"{lay}/{prec}"] = {k: round(old[k] / new[k], 2) for k in ("forward", "backward", "total")}
    result = {
        "nodes": args.nodes,
        "edges": int(edge_index.shape[1]),
        "dim": args.dim,
        "threads": args.threads,
        "reps": args.reps,
        "rows": rows,
        "pyg_over_sparse": ratios,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    if args.json:
        print(json.dumps(result))
    else:
        print("| layout / precision | forward s | backward s | step s | fwd+bwd+step s | peak RSS GB |")
        print("|---|---|---|---|---|---|")
        for name, r in rows.items():
            rss = r.get("peak_rss_gb", "")
            print(f"| {name} | {r['forward']} | {r['backward']} | {r['step']} | {r['total']} | {rss} |")
        for name, r in ratios.items():
            print(f"pyg / sparse, {name}: forward {r['forward']}x, backward {r['backward']}x, fwd+bwd+step {r['total']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
