"""Candidate search and 1:1 matching at 10k / 100k / 1M entities per side: exact blocked vs FAISS.

Embeddings: random but clustered, ``--n`` entities per side, ``--dim`` dims. Latent points
are drawn around ``n / 200`` centres with heavy-tailed cluster sizes (Zipf, exponent 0.7);
KG1 and KG2 rows are the latent point plus independent noise; 90% of the entities are
linked (row i of KG1 = row i of KG2), the other 10% per side are dangling (own latent points).

Stages, each in its own child process so that its peak RSS (``os.wait4``) is its own:

- ``exact``: CSLS (k=3) exact blocked top-10 for every source (two blocked passes), then greedy
  matching, when ``n <= --exact-full-max``. Always: exact cosine top-10 of a ``--sample`` of
  sources (for recall). Above ``--exact-full-max`` only the sample runs, and the exact CSLS
  time is extrapolated as 2 passes x (sample time x n / sample): the targets' CSLS neighbour
  means need the full n x n pass.
- ``faiss``: FAISS kNN both ways (``--index``, ``--nprobe``...), CSLS rescoring of the kNN lists,
  then greedy (and stable, and sparse Hungarian up to ``--hungarian-max`` sources) matching.

Recall vs exact on the sample: recall@1 = share of sample sources whose approximate first
candidate is the exact first one; recall@10 = mean overlap of the two top-10 sets / 10.
Cosine recall measures the ANN kNN lists; CSLS recall the final ranking (only where exact
CSLS exists, n <= --exact-full-max). Hits@1 is on the synthetic links (greedy pairs).

Writes ``--out/search_exact-N.json``, ``search_faiss-N.json``, ``match-N.json`` (schema of
docs/benchmarks.md's scaling table) and prints them.

    python benchmarks/scale_search.py --n 100000 --dim 128 --out benchmarks/out/scale
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SAMPLE_SEED = 1


def _data_path(args) -> Path:
    return Path(args.out) / f"emb-{args.n}-{args.dim}-s{args.spread}-z{args.noise}-r{args.seed}.npy"


def make_embeddings(args) -> Path:
    """(2n, d) float32: KG1 rows 0..n-1, KG2 rows n..2n-1; the first 90% of each side are linked."""
    import numpy as np

    path = _data_path(args)
    if path.exists():
        return path
    n, d = args.n, args.dim
    rng = np.random.default_rng(args.seed)
    n_centres = max(16, n // 200)
    centres = rng.standard_normal((n_centres, d), dtype=np.float32)
    w = 1.0 / np.arange(1, n_centres + 1) ** 0.7
    n_link = int(0.9 * n)
    out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(2 * n, d))
    for side in (0, 1):
        for s in range(0, n, 100_000):  # in chunks: no float64 temporaries of the full size
            e = min(n, s + 100_000)
            crng = np.random.default_rng([args.seed, s])  # the latent of row i is the same on both sides
            z = centres[crng.choice(n_centres, e - s, p=w / w.sum())] + args.spread * crng.standard_normal((e - s, d), dtype=np.float32)
            dang = np.arange(s, e) >= n_link
            if dang.any():  # dangling rows: a latent of their own on each side
                z[dang] = centres[rng.choice(n_centres, int(dang.sum()), p=w / w.sum())] + args.spread * rng.standard_normal(
                    (int(dang.sum()), d), dtype=np.float32
                )
            out[side * n + s : side * n + e] = z + args.noise * rng.standard_normal((e - s, d), dtype=np.float32)
    out.flush()
    del out
    os.replace(path.with_suffix(".tmp.npy"), path)
    return path


def _setup(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    emb = np.load(_data_path(args), mmap_mode="r")
    from kgalign.evaluation.similarity import normalise

    n = args.n
    A = normalise(np.array(emb[:n]))
    B = normalise(np.array(emb[n:]))
    sample = np.sort(np.random.default_rng(SAMPLE_SEED).choice(n, min(n, args.sample), replace=False))
    return A, B, sample


def _hits1(s, t, n_link) -> float:
    import numpy as np

    return float(np.sum((s == t) & (s < n_link)) / n_link)


def stage_exact(args) -> dict:
    import numpy as np
    import torch

    from kgalign.evaluation.search import SearchOptions, similarity_topk
    from kgalign.export import matching

    A, B, sample = _setup(args)
    n, k = args.n, 10
    opts = SearchOptions(method="exact", memory_budget=args.memory_budget << 20)
    out: dict = {"sample": len(sample)}
    t0 = time.perf_counter()
    cos = similarity_topk(A[torch.as_tensor(sample)], B, k, similarity="cosine", opts=opts)
    out["sample_cosine_s"] = time.perf_counter() - t0
    np.save(Path(args.out) / f"exact-cos-{n}-{args.dim}.npy", cos.index)
    if n <= args.exact_full_max:
        t0 = time.perf_counter()
        res = similarity_topk(A, B, k, similarity="csls", opts=opts)
        t1 = time.perf_counter()
        s, t, _ = matching.greedy(res.scores.astype(np.float64), res.index, n)
        t2 = time.perf_counter()
        np.save(Path(args.out) / f"exact-csls-{n}-{args.dim}.npy", res.index[sample])
        out.update(seconds=t2 - t0, search_s=t1 - t0, greedy_s=t2 - t1, extrapolated=False, hits1_greedy=_hits1(s, t, int(0.9 * n)))
        out["hits1_top1"] = float(np.mean(res.index[: int(0.9 * n), 0] == np.arange(int(0.9 * n))))
    else:
        # exact CSLS = two passes like the cosine one over all n sources (the targets' neighbour means need the
        # full n x n pass): extrapolated from the sample's cosine pass
        out.update(seconds=2 * out["sample_cosine_s"] * n / len(sample), extrapolated=True)
    return out


def stage_faiss(args) -> dict:
    import numpy as np

    from kgalign.evaluation.ann import AnnOptions
    from kgalign.evaluation.search import SearchOptions, similarity_topk
    from kgalign.export import matching

    t_start = time.perf_counter()
    A, B, sample = _setup(args)
    t_load = time.perf_counter() - t_start
    n, k = args.n, 10
    ann = AnnOptions(
        kind=args.index, nlist=args.nlist, nprobe=args.nprobe, hnsw_m=args.hnsw_m, ef_search=args.ef_search, threads=args.threads
    )
    t0 = time.perf_counter()
    res = similarity_topk(A, B, k, similarity="csls", opts=SearchOptions(method="faiss", ann=ann), keep_knn=True)
    t1 = time.perf_counter()
    np.save(Path(args.out) / f"faiss-csls-{n}-{args.dim}.npy", res.index[sample])
    np.save(Path(args.out) / f"faiss-cos-{n}-{args.dim}.npy", res.knn[1][sample, :k])
    sc = res.scores.astype(np.float64)
    t2 = time.perf_counter()
    s, t, _ = matching.greedy(sc, res.index, n)
    greedy_s = time.perf_counter() - t2
    out = dict(
        res.info, seconds=t1 - t0 + greedy_s, search_s=t1 - t0, load_s=t_load, greedy_s=greedy_s, hits1_greedy=_hits1(s, t, int(0.9 * n))
    )
    out["hits1_top1"] = float(np.mean(res.index[: int(0.9 * n), 0] == np.arange(int(0.9 * n))))
    out["match_pairs"] = int(len(s))
    t3 = time.perf_counter()
    s2, t2_, _ = matching.stable(sc, res.index, n)
    out["stable_s"] = time.perf_counter() - t3
    out["stable_equals_greedy"] = bool(len(s2) == len(s) and (s2 == s).all() and (t2_ == t).all())
    if n <= args.hungarian_max:
        t4 = time.perf_counter()
        s3, t3_, _ = matching.hungarian_sparse(sc, res.index, n)
        out["hungarian_sparse_s"] = time.perf_counter() - t4
        out["hungarian_hits1"] = _hits1(s3, t3_, int(0.9 * n))
        out["hungarian_one_to_one"] = matching.is_one_to_one(s3, t3_)
    out["one_to_one"] = matching.is_one_to_one(s, t) and matching.is_one_to_one(s2, t2_)
    return out


def _child(args, stage: str) -> tuple[dict, float]:
    """Run a stage in a child process; (its result with its CPU seconds, its peak RSS in GiB)."""
    cmd = [sys.executable, __file__, *sys.argv[1:], "--stage", stage]
    res_path = Path(args.out) / f".{stage}-{args.n}.json"
    res_path.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed with exit code {proc.returncode}")
    res = json.loads(res_path.read_text())
    res["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)  # the work, less dependent on the load than wall time
    return res, usage.ru_maxrss / (1 << 20)  # KiB -> GiB


def _recall(approx, exact, k) -> float:
    import numpy as np

    if k == 1:
        return float(np.mean(approx[:, 0] == exact[:, 0]))
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(approx.tolist(), exact.tolist(), strict=False)]))


def _recalls(out: Path, args) -> dict:
    """recall@1/@10 of the FAISS lists against the exact ones on the sample, where both files exist."""
    import numpy as np

    res = {}
    for sim in ("cos", "csls"):
        ex, fa = out / f"exact-{sim}-{args.n}-{args.dim}.npy", out / f"faiss-{sim}-{args.n}-{args.dim}.npy"
        if ex.exists() and fa.exists():
            e, f = np.load(ex), np.load(fa)
            name = "cosine" if sim == "cos" else "csls"
            res.update({f"recall1_{name}": _recall(f, e, 1), f"recall10_{name}": _recall(f, e, 10)})
    return res


def _record(args, stage: str, seconds: float, rss: float, extra: dict) -> dict:
    load = os.getloadavg()
    return {
        "stage": stage,
        "n_per_side": args.n,
        "triples_per_side": 0,  # embeddings only: the search does not see the graphs
        "seconds": round(seconds, 3),
        "peak_rss_gib": round(rss, 3),
        "threads": args.threads,
        "load": "load average: " + ", ".join(f"{x:.2f}" for x in load),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/scale_search.py " + " ".join(sys.argv[1:]),
        "extra": extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, required=True, help="entities per side")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/out/scale")
    ap.add_argument("--sample", type=int, default=10_000, help="sources whose exact top-10 measures recall")
    ap.add_argument("--exact-full-max", type=int, default=100_000, help="largest n aligned exactly in full")
    ap.add_argument("--hungarian-max", type=int, default=50_000, help="largest n for the sparse Hungarian timing")
    ap.add_argument("--index", default="auto")
    ap.add_argument("--nlist", type=int, default=None)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--memory-budget", type=int, default=1024, help="MiB per exact score block")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--spread", type=float, default=0.5, help="latent spread around a centre")
    ap.add_argument("--noise", type=float, default=0.75, help="per-side noise")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", default="exact,faiss")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.stage:
        res = {"exact": stage_exact, "faiss": stage_faiss}[args.stage](args)
        (Path(args.out) / f".{args.stage}-{args.n}.json").write_text(json.dumps(res))
        return
    t0 = time.perf_counter()
    make_embeddings(args)
    print(f"embeddings: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    stages = [s for s in args.stages.split(",") if s]  # "" only writes the embeddings
    done = {}
    for stage in stages:
        done[stage] = _child(args, stage)
    out = Path(args.out)
    records = []
    if "exact" in done:
        ex, rss = done["exact"]
        records.append(_record(args, "search_exact", ex["seconds"], rss, dict(ex, dim=args.dim)))
    if "faiss" in done:
        fa, rss = done["faiss"]
        records.append(_record(args, "search_faiss", fa["search_s"], rss, dict(fa, dim=args.dim, sample=min(args.n, args.sample))))
        match = {k: fa[k] for k in fa if k.startswith(("greedy", "stable", "hungarian", "one_to_one", "match", "hits1_greedy"))}
        match.update(candidates="faiss csls top-10", note="peak RSS: the faiss stage's")
        records.append(_record(args, "match", fa["greedy_s"], rss, match))
    elif (out / f"search_faiss-{args.n}.json").exists():  # an earlier faiss run: add the recall once exact has run
        records.append(json.loads((out / f"search_faiss-{args.n}.json").read_text()))
    for r in records:
        if r["stage"] == "search_faiss":
            r["extra"].update(_recalls(out, args))
    for r in records:
        (out / f"{r['stage']}-{args.n}.json").write_text(json.dumps(r, indent=1) + "\n")
        print(json.dumps(r))


if __name__ == "__main__":
    main()
