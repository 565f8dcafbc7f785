"""Throughput of the featurizers on CPU (synthetic data, random model weights).

Measures, each through the library code `kgalign features` uses:

- relation / attribute / numeric features on a synthetic dataset of
  ``--entities`` entities (FB15K-DB15K scale by default), entities/s,
  including writing the feature files;
- name features with all-MiniLM-L6-v2 (and USE-multilingual if installed) on
  ``--names`` pseudo-word names, names/s;
- image fetching from a local http.server (cold cache, then warm cache), images/s;
- VGG-16 fc7 (random weights, real architecture) and a ViT-B/32-size CLIP
  (random weights, transformers) on ``--vgg-images`` / ``--clip-images`` images,
  images/s including decoding and preprocessing.

    python benchmarks/bench_features.py [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def synthetic_dataset(n: int, triples: int, rng: np.random.Generator):
    from kgalign.data.store import Dataset

    n1 = n // 2
    n_rel, n_attr, n_num = 1600, 330, 120
    rel = np.minimum(rng.zipf(1.3, triples) - 1, n_rel - 1)
    tri = np.stack([rng.integers(0, n, triples), rel, rng.integers(0, n, triples)], 1).astype(np.int64)
    n_at = 4 * n
    at_e = rng.integers(0, n, n_at)
    at_k = np.minimum(rng.zipf(1.5, n_at) - 1, n_attr - 1)
    n_nu = 2 * n
    nu_e = rng.integers(0, n, n_nu)
    nu_k = rng.integers(0, n_num, n_nu)
    nu_v = rng.lognormal(3, 2, n_nu)
    return Dataset(
        entities=[f"http://ex.org/{'a' if i < n1 else 'b'}/E{i}" for i in range(n)],
        entity_kg=np.array([1] * n1 + [2] * (n - n1), np.int8),
        relations=[f"r{i}" for i in range(n_rel)],
        relation_kg=np.array([1] * (n_rel // 2) + [2] * (n_rel - n_rel // 2), np.int8),
        relation_triples=tri,
        attributes=[f"a{i}" for i in range(n_attr)],
        attribute_kg=np.array([1] * (n_attr // 2) + [2] * (n_attr - n_attr // 2), np.int8),
        attr_entity=at_e,
        attr_key=at_k,
        attr_value=["v"] * n_at,
        attr_datatype=[""] * n_at,
        attr_lang=[""] * n_at,
        num_entity=nu_e,
        num_key=nu_k,
        num_value=nu_v,
    )


def pseudo_names(k: int, rng) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ra", "tu", "shi", "bel", "dor", "ven", "qua", "zi"]
    return [" ".join("".join(rng.choice(syll, rng.integers(2, 4))).title() for _ in range(rng.integers(1, 4))) for _ in range(k)]


def serve_images(k: int, rng):
    from PIL import Image

    bodies = {}
    for i in range(k):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=85)
        bodies[f"/img/{i}.jpg"] = buf.getvalue()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, [f"http://127.0.0.1:{httpd.server_address[1]}{p}" for p in bodies], bodies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=28000)
    ap.add_argument("--triples", type=int, default=600000)
    ap.add_argument("--names", type=int, default=3000)
    ap.add_argument("--fetch-images", type=int, default=400)
    ap.add_argument("--vgg-images", type=int, default=8)
    ap.add_argument("--clip-images", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch
    from PIL import Image

    from kgalign.data.store import write_dataset
    from kgalign.features.images_fetch import FetchConfig, ImageCache, fetch_all
    from kgalign.features.pipeline import FeatureOptions, compute_features
    from kgalign.features.text import load_text_encoder, name_features

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    out: dict = {"threads": args.threads, "load_before": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = synthetic_dataset(args.entities, args.triples, rng)
        write_dataset(ds, tmp / "ds")
        summary = compute_features(tmp / "ds", ["relation", "attribute", "numeric"], FeatureOptions())
        for r in summary["features"]:
            out[r["feature"]] = {"entities_per_s": r["throughput"]["entities_per_s"], "seconds": r["seconds"], "dim": r["dim"]}

        names = pseudo_names(args.names, rng)
        enc = load_text_encoder(None, "cpu", batch_size=64)
        t = time.perf_counter()
        name_features(names, enc)
        dt = time.perf_counter() - t
        out["name_minilm"] = {"names": len(set(names)), "names_per_s": round(len(set(names)) / dt, 1)}
        try:
            enc = load_text_encoder("use-multilingual", "cpu", batch_size=256, threads=args.threads)
            t = time.perf_counter()
            name_features(names, enc)
            dt = time.perf_counter() - t
            out["name_use_multilingual"] = {"names": len(set(names)), "names_per_s": round(len(set(names)) / dt, 1)}
        except Exception as exc:  # optional extra not installed
            out["name_use_multilingual"] = {"skipped": str(exc)}

        httpd, urls, bodies = serve_images(args.fetch_images, rng)
        cfg = FetchConfig(allow_private=True, workers=16, retries=0)
        cache = ImageCache(tmp / "cache")
        t = time.perf_counter()
        res = fetch_all(urls, cfg, cache)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        fetch_all(urls, cfg, cache)
        warm = time.perf_counter() - t
        httpd.shutdown()
        assert all(r.ok for r in res.values())
        out["fetch"] = {
            "images": len(urls),
            "cold_images_per_s": round(len(urls) / cold, 1),
            "cached_images_per_s": round(len(urls) / warm, 1),
        }

        imgs = [Image.open(io.BytesIO(b)) for b in list(bodies.values())]
        from kgalign.features.vgg import VGG16, preprocess

        model = VGG16().eval()
        with torch.inference_mode():
            model.fc7(torch.stack([preprocess(imgs[0])]))  # warm-up
            t = time.perf_counter()
            x = torch.stack([preprocess(im) for im in imgs[: args.vgg_images]])
            model.fc7(x)
            dt = time.perf_counter() - t
        out["vgg16_fc7"] = {"images": args.vgg_images, "images_per_s": round(args.vgg_images / dt, 2)}
        del model

        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

        clip = CLIPModel(CLIPConfig(projection_dim=512)).eval()  # ViT-B/32 sizes are the defaults
        proc = CLIPImageProcessor()
        with torch.inference_mode():
            clip.get_image_features(**proc(images=imgs[:2], return_tensors="pt"))
            t = time.perf_counter()
            for i in range(0, args.clip_images, 16):
                clip.get_image_features(**proc(images=imgs[i : i + 16], return_tensors="pt"))
            dt = time.perf_counter() - t
        out["clip_vit_b32"] = {"images": args.clip_images, "images_per_s": round(args.clip_images / dt, 1)}
    out["load_after"] = os.getloadavg()
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
