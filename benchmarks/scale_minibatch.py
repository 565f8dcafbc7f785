"""Mini-batch (or full-graph) training at scale: per-epoch and total-to-plateau time, peak RSS, Hits@1/MRR.

    flock /tmp/kgalign-bigrun.lock .venv/bin/python benchmarks/scale_minibatch.py --n 100000 --out benchmarks/out/scale

Data: /work/scale-data/synth-<size>/ when /work/scale-data/READY-<size> exists (scale-synth's generator),
else ``kgalign.data.synthetic.synthetic_pair`` (uniform random graph, ``--degree`` relation triples per
entity / 2 per side, noisy copies, informative features) written once to ``<out>/data/synth-<n>`` in a
child process, so the training process's peak RSS is training only. Valid and test are capped at
``--eval-links`` links each (the rest of the gold links are ``unused``), so evaluation stays a small
share of the time.

Writes ``<out>/train_minibatch_epoch-<n>.json`` and ``<out>/train_minibatch_total-<n>.json`` (the scaling
JSON of docs/benchmarks.md; ``--mode full`` writes ``train_full_*``), and prints one summary line.
Plateau: the selected epoch (best valid csls.l2r.mrr) of a run stopped early after ``--patience``
evaluations without improvement; total-to-plateau = the training seconds of the epochs up to it plus
the evaluations run until then.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _size_name(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _generate(path: str, n: int, degree: int, noise: float, eval_links: int, seed: int) -> None:
    from kgalign.data.store import write_dataset
    from kgalign.data.synthetic import synthetic_pair
    from kgalign.features.store import save_feature

    ds, features = synthetic_pair(n, degree, {"attribute": 64, "image": 64}, 32, noise, (0.3, 0.2, 0.5), seed, 0.05)
    split = np.asarray(ds.link_split, dtype=object)
    for name in ("valid", "test"):
        idx = np.flatnonzero(split == name)
        split[idx[eval_links:]] = "unused"
    ds.link_split = [str(s) for s in split]
    out = write_dataset(ds, path, overwrite=True)
    for name, (mat, mask) in features.items():
        save_feature(out, name, mat, mask, {"featurizer": "synthetic"})
    Path(path, ".complete").write_text(json.dumps({"triples_per_side": len(ds.relation_triples) // 2}))


def dataset_for(args) -> Path:
    size = _size_name(args.n)
    shared = Path("/work/scale-data")
    if (shared / f"READY-{size}").exists() and not args.own_data:
        return shared / f"synth-{size}"
    path = Path(args.out) / "data" / f"synth-{size}"
    if not (path / ".complete").exists():
        ctx = mp.get_context("spawn")  # its memory is not this process's peak
        p = ctx.Process(target=_generate, args=(str(path), args.n, args.degree, args.noise, args.eval_links, 0))
        t = time.perf_counter()
        p.start()
        p.join()
        if p.exitcode != 0:
            sys.exit(f"generating {path} failed")
        print(f"generated {path} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return path


def _triples(ds_path: Path) -> int | None:
    mark = ds_path / ".complete"
    return json.loads(mark.read_text()).get("triples_per_side") if mark.exists() else None


def sampler_profile(ds_path: Path, batch: int, fanout: int, steps: int = 5) -> dict:
    """Seconds and subgraph size per batch of the NumPy sampler (with feature gathering)."""
    from kgalign.data.store import load_dataset
    from kgalign.features.store import load_features
    from kgalign.models.inputs import build_inputs
    from kgalign.training.sampling import Adjacency, FeatureSource, batch_subgraph

    ds = load_dataset(ds_path)
    inputs = build_inputs(ds, load_features(ds_path))
    adj = Adjacency(inputs.edge_index, inputs.num_entities)
    src = FeatureSource(inputs.features, inputs.masks)
    links = ds.links_for("train")
    rng = np.random.default_rng(0)
    secs, nodes, edges = [], [], []
    for i in range(steps):
        b = links[rng.permutation(len(links))[:batch]]
        t = time.perf_counter()
        sub = batch_subgraph(adj, src, b, [fanout, fanout], np.random.default_rng(i))
        secs.append(time.perf_counter() - t)
        nodes.append(sub.num_nodes)
        edges.append(int(sub.edge_index.shape[1]))
    return {
        "sample_seconds_per_batch": round(float(np.median(secs)), 4),
        "subgraph_nodes": int(np.median(nodes)),
        "subgraph_edges": int(np.median(edges)),
        "graph_nodes": int(inputs.num_entities),
        "graph_edges": int(inputs.edge_index.shape[1]),
    }


class RssSampler:
    """Peak RSS (GiB) of this process while the block runs, read from /proc every 5 ms."""

    def __enter__(self):
        import threading

        self.peak, self.stop = self.now(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    @staticmethod
    def now() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**3

    def _run(self):
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, self.now())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def probe(ds_path: Path, args) -> dict:
    """``--probe K``: K mini-batch (or full-graph) optimizer steps without the rest of training:
    median seconds per step and the RSS above the loaded state while stepping (the per-step memory)."""
    import torch

    from kgalign.data.store import load_dataset
    from kgalign.features.store import load_features
    from kgalign.models.inputs import build_inputs
    from kgalign.models.registry import build_model
    from kgalign.models.subgraph import placeholder_inputs
    from kgalign.training.minibatch import MiniBatchStep
    from kgalign.training.sampling import Adjacency, FeatureSource

    ds = load_dataset(ds_path)
    inputs = build_inputs(ds, load_features(ds_path))
    opts = {"hidden": args.hidden, **({"noise_size": 64} if args.model == "noco" else {})}
    torch.manual_seed(0)
    if args.mode == "minibatch":
        dims = {m: f.shape[1] for m, f in inputs.features.items()}
        model = build_model(args.model, placeholder_inputs(inputs.num_entities, dims, inputs.masks), **opts)
        adj = Adjacency(inputs.edge_index, inputs.num_entities)
        source = FeatureSource(inputs.features, inputs.masks)
        if args.step == "both":
            return _alternate(model, adj, source, ds, inputs, args)
        rows_only = args.step == "rows"
        net = MiniBatchStep(model, adj, source, [args.fanout] * 2, 0, 0, torch.device("cpu"), rows_only=rows_only)
    else:
        from kgalign.training.distributed import TrainStep

        model = build_model(args.model, inputs, **opts)
        net = TrainStep(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    links = torch.from_numpy(ds.links_for("train"))
    perm = torch.randperm(len(links), generator=torch.Generator().manual_seed(0))
    secs, sizes = [], []
    base = RssSampler.now()
    with RssSampler() as rss:
        for i in range(args.probe):
            batch = links[perm[i * args.batch_size : (i + 1) * args.batch_size]]
            t = time.perf_counter()
            loss, _, out = net(batch)
            if hasattr(out, "subgraph"):
                sizes.append(out.subgraph.num_nodes)
            loss.backward()
            opt.step()
            opt.zero_grad()
            secs.append(time.perf_counter() - t)
    return {
        "step_seconds_median": round(float(np.median(secs)), 3),
        "subgraph_nodes_median": int(np.median(sizes)) if sizes else int(inputs.num_entities),
        "rss_loaded_gib": round(base, 3),
        "rss_peak_while_stepping_gib": round(rss.peak, 3),
        "per_step_gib": round(rss.peak - base, 3),
        "steps": args.probe,
        "graph_nodes": int(inputs.num_entities),
        "graph_edges": int(inputs.edge_index.shape[1]),
    }


def _trim() -> None:
    """Give freed heap memory back to the OS (glibc), so the next step's RSS rise is its own."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _alternate(model, adj, source, ds, inputs, args) -> dict:
    """``--step both``: the whole-subgraph step (``rows_only=False``, before 2026-11-28) and the
    rows-only step alternating on the same model and batches, after one unmeasured warm-up step
    (it creates the AdamW moments). Per variant: median CPU seconds (all threads), wall seconds,
    and per-step memory = peak RSS during the step minus RSS just before it (after ``malloc_trim``)."""
    import torch

    from kgalign.training.minibatch import MiniBatchStep

    steps = {
        name: MiniBatchStep(model, adj, source, [args.fanout] * 2, 0, 0, torch.device("cpu"), rows_only=name == "rows")
        for name in ("all", "rows")
    }
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    links = torch.from_numpy(ds.links_for("train"))
    perm = torch.randperm(len(links), generator=torch.Generator().manual_seed(0))
    rec = {name: {"cpu": [], "wall": [], "mem": [], "rows": []} for name in steps}
    order = ["rows"] + [name for _ in range(args.probe) for name in ("all", "rows")]  # the first is the warm-up
    for i, name in enumerate(order):
        batch = links[perm[(i * args.batch_size + torch.arange(args.batch_size)) % len(links)]]  # wraps around on small splits
        _trim()
        before = RssSampler.now()
        c, t = time.process_time(), time.perf_counter()
        with RssSampler() as rss:
            loss, _, out = steps[name](batch)
            loss.backward()
            opt.step()
            opt.zero_grad()
        if i == 0:
            continue
        r = rec[name]
        r["cpu"].append(time.process_time() - c)
        r["wall"].append(time.perf_counter() - t)
        r["mem"].append(rss.peak - before)
        r["rows"].append(out.subgraph.num_nodes)
    res = {
        f"{name}_{key}": round(float(np.median(r[src])), 3 if key != "rows" else 0)
        for name, r in rec.items()
        for key, src in (("cpu_s", "cpu"), ("wall_s", "wall"), ("per_step_gib", "mem"), ("rows", "rows"))
    }
    res.update(
        {f"{name}_cpu_s_each": [round(x, 3) for x in r["cpu"]] for name, r in rec.items()},
        cpu_ratio=round(res["all_cpu_s"] / res["rows_cpu_s"], 2),
        steps_each=args.probe,
        graph_nodes=int(inputs.num_entities),
        rss_loaded_gib=round(RssSampler.now(), 3),
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="entities per side")
    ap.add_argument("--out", default="benchmarks/out/scale")
    ap.add_argument("--mode", choices=("minibatch", "full"), default="minibatch")
    ap.add_argument("--model", default="noco")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--fanout", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--degree", type=int, default=10)
    ap.add_argument("--noise", type=float, default=1.5)
    ap.add_argument("--eval-links", type=int, default=5000)
    ap.add_argument("--own-data", action="store_true", help="use synthetic_pair even when /work/scale-data has this size")
    ap.add_argument("--probe", type=int, default=0, help="only run this many optimizer steps and report step time and per-step memory")
    ap.add_argument(
        "--step",
        choices=("rows", "all", "both"),
        default="rows",
        help="mini-batch probe: per-row modules on the batch's rows only (rows, the default), on every subgraph node (all), "
        "or both alternating on the same batches",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.probe:
        ds_path = dataset_for(args)
        import torch

        res = {
            "n_per_side": args.n,
            "mode": args.mode,
            "step": args.step,
            "batch_size": args.batch_size,
            "fanout": args.fanout,
            "hidden": args.hidden,
        }
        res.update(probe(ds_path, args))
        res["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        res["threads"] = torch.get_num_threads()
        res["command"] = " ".join([sys.executable.split("/")[-1], *sys.argv])
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (
            Path(args.out)
            / f"probe_{args.mode}{'' if args.step == 'rows' else '_' + args.step}{'_own' if args.own_data else ''}-{args.n}.json"
        ).write_text(json.dumps(res, indent=2) + "\n")
        print(json.dumps(res))
        return

    import torch

    from kgalign.training import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds_path = dataset_for(args)
    run = out / "runs" / f"{args.mode}-{_size_name(args.n)}"
    t0 = time.perf_counter()
    res = train(
        ds_path,
        model=args.model,
        out_dir=run,
        force=True,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=0.05,
        eval_every=args.eval_every,
        patience=args.patience,
        checkpoint_every=1000,
        device="cpu",
        hidden=args.hidden,
        minibatch=args.mode == "minibatch",
        fanout=args.fanout,
        **({"noise_size": 64} if args.model == "noco" else {}),
    ).results
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    sampling = sampler_profile(ds_path, args.batch_size, args.fanout) if args.mode == "minibatch" else {}  # after: not in the peak
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    best = res["selection"]["epoch"]
    epoch_secs = [r["seconds"] for r in records]
    evals_until = sum(1 for r in records if "valid" in r and r["epoch"] <= best)
    to_plateau = sum(r["seconds"] for r in records if r["epoch"] <= best) + evals_until * res["seconds_per_evaluation"]
    quality = {
        f"{split}_{k}": res[split]["csls"]["l2r"][k.replace("hits1", "hits@1")] for split in ("valid", "test") for k in ("hits1", "mrr")
    }
    common = {
        "n_per_side": args.n,
        "triples_per_side": _triples(ds_path),
        "peak_rss_gib": round(peak, 3),
        "threads": torch.get_num_threads(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
    }
    extra = {
        "mode": args.mode,
        "model": args.model,
        "hidden": args.hidden,
        "batch_size": args.batch_size,
        "fanout": args.fanout,
        "epochs_run": res["epochs_run"],
        "plateau_epoch": best,
        "plateau_reached": bool(res["stopped_early"]),  # False: the epoch cap came first, the figures are not at the plateau
        "seconds_per_evaluation": res["seconds_per_evaluation"],
        "wall_seconds_whole_run": round(wall, 1),
        "dataset": str(ds_path),
        **quality,
        **sampling,
    }
    stage = "train_minibatch" if args.mode == "minibatch" else "train_full"
    epoch = {"stage": f"{stage}_epoch", "seconds": round(float(np.median(epoch_secs)), 3), **common, "extra": extra}
    total = {"stage": f"{stage}_total", "seconds": round(to_plateau, 1), **common, "extra": extra}
    for doc in (epoch, total):
        (out / f"{doc['stage']}-{args.n}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"epoch_s": epoch["seconds"], "to_plateau_s": total["seconds"], "peak_rss_gib": common["peak_rss_gib"], **quality}))


if __name__ == "__main__":
    main()
