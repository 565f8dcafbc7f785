"""Align at scale in bounded memory, and export a million links.

Two phases, each in its own child process so that its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

- ``align``: ``--entities`` KG1 x ``--entities`` KG2 entities (100k x 100k by
  default), ``--dim``-d embeddings (300), no training links (so every entity is
  in scope), CSLS (k=3) + greedy one-to-one over exact top-10 lists, computed in
  bounded blocks; then the predictions file is written. Reports wall time and
  peak RSS (target: under 4 GB).
- ``export``: writes a predictions file of ``--links`` rows (1,000,000; DBpedia /
  Freebase-style IRIs), then times ``kgalign export --predictions P --format F -o
  OUT`` as a child process (CLI start-up, reading, sorting, writing, provenance)
  for every format. Target: under 10 s for N-Triples.

    python benchmarks/bench_align_export.py [--phase all|align|export] [--entities 100000] [--links 1000000] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def phase_align(args) -> dict:
    import numpy as np
    import torch

    from kgalign.export.align import align_embeddings
    from kgalign.export.predictions import LinkTable, write_predictions

    torch.set_num_threads(args.threads)
    n, d = args.entities, args.dim
    rng = np.random.default_rng(0)
    emb = np.empty((2 * n, d), np.float32)
    for s in range(0, n, 10_000):  # generate in chunks: no float64 temporaries of the full size
        e = min(n, s + 10_000)
        z = rng.standard_normal((e - s, d), dtype=np.float32)
        emb[s:e] = z + 0.5 * rng.standard_normal((e - s, d), dtype=np.float32)
        emb[n + s : n + e] = z + 0.5 * rng.standard_normal((e - s, d), dtype=np.float32)
    kg = np.repeat(np.array([1, 2], np.int8), n)
    perm = rng.permutation(n)  # KG2 order shuffled so the answer is not the identity
    emb[n:] = emb[n:][perm]
    rss_data = _peak_rss_mb()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    pred = align_embeddings(emb, kg, np.zeros((0, 2), np.int64), [], scope="all", similarity="csls", strategy="greedy", topk=10)
    t_align = time.perf_counter() - t0
    names = [f"http://a.example.org/e{i}" for i in range(n)] + [f"http://b.example.org/e{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        table = LinkTable([names[i] for i in pred.kg1.tolist()], [names[i] for i in pred.kg2.tolist()], pred.score.tolist(), pred.status)
        write_predictions(Path(tmp) / "predictions.tsv", table, pred.summary)
        t_write = time.perf_counter() - t1
    # KG2 row j holds the partner of KG1 entity perm[j]
    correct = float(np.mean(perm[pred.kg2 - n] == pred.kg1)) if len(pred) else 0.0
    return {
        "phase": "align",
        "entities_per_graph": n,
        "dim": d,
        "threads": args.threads,
        "similarity": "csls(k=3)",
        "strategy": "greedy over exact top-10",
        "seconds_align": round(t_align, 1),
        "seconds_write_predictions": round(t_write, 1),
        "matched": len(pred),
        "precision_vs_planted": round(correct, 4),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
        "rss_after_data_mb": round(rss_data, 0),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def phase_export(args) -> dict:
    import numpy as np

    out: dict = {"phase": "export", "links": args.links, "formats": {}}
    rng = np.random.default_rng(1)
    scores = rng.random(args.links)
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "predictions.tsv"
        with open(pred, "w", encoding="utf-8") as f:
            f.write("kg1\tkg2\tscore\tstatus\n")
            order = rng.permutation(args.links)  # unsorted input, as align writes it (by score)
            f.writelines(
                f"http://dbpedia.org/resource/Entity_{i}\thttp://rdf.freebase.com/ns/m.0{i:07x}\t{scores[i]:.6f}\taccepted\n"
                for i in order.tolist()
            )
        out["predictions_mb"] = round(pred.stat().st_size / 2**20, 1)
        for fmt in args.formats.split(","):
            target = Path(tmp) / f"links.{fmt}"
            load0 = os.getloadavg()
            t0 = time.perf_counter()
            p = subprocess.run(
                [sys.executable, "-m", "kgalign.cli", "export", "--predictions", str(pred), "--format", fmt, "-o", str(target), "-q"],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                raise SystemExit(p.stderr)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
            out["formats"][fmt] = {
                "seconds": round(wall, 2),
                "output_mb": round(target.stat().st_size / 2**20, 1),
                "children_peak_rss_mb": round(peak, 0),
                "load_before": [round(x, 2) for x in load0],
            }
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", default="all", choices=["all", "align", "export"])
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--links", type=int, default=1_000_000)
    ap.add_argument("--formats", default="nt,ttl,tsv,jsonl,sssom,alignment")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.phase == "all":
        results = []
        for phase in ("align", "export"):
            cmd = [sys.executable, __file__, "--phase", phase, "--json"] + [
                f"--entities={args.entities}",
                f"--dim={args.dim}",
                f"--links={args.links}",
                f"--formats={args.formats}",
                f"--threads={args.threads}",
            ]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(p.stderr)
            results.append(json.loads(p.stdout))
        print(json.dumps(results, indent=2))
        return
    res = phase_align(args) if args.phase == "align" else phase_export(args)
    print(json.dumps(res, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
