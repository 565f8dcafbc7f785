"""Runs for the report and review tests: the bundled example trained for a few epochs, and a hostile tiny run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
KG = [sys.executable, "-m", "kgalign.cli"]
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">Evil & "Co"'


def kgalign(*args, timeout=300, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run([*KG, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"kgalign {shlex.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


def example_run(tmp_path_factory) -> Path:
    """The example graphs: ingest, structural features, 6 epochs of NoCo, align with a review band.

    Built once per test session (about 30 s on 2 cores) and shared by the report and review tests;
    tests that write decisions copy it first."""
    base = tmp_path_factory.getbasetemp() / "review_example"
    run = base / "run"
    if (base / "done").is_file():
        return run
    ds = base / "ds"
    graphs = ["--kg1", EXAMPLES / "kg1.ttl", "--kg2", EXAMPLES / "kg2.ttl", "--links", EXAMPLES / "links.tsv"]
    kgalign("ingest", "-q", "--force", "-o", ds, *graphs)
    kgalign("features", "-q", ds, "--modalities", "relation,attribute,numeric")
    kgalign("train", "-q", ds, "--model", "noco", "--epochs", "6", "--eval-every", "2", "--device", "cpu", "-o", run, "--force")
    kgalign("align", "-q", run, "--threshold", "0.6", "--review-threshold", "0.3")
    (base / "done").write_text("ok")
    return run


def copy_run(run: Path, dest: Path) -> Path:
    """A run directory of its own (config, embeddings, predictions) pointing at the same dataset."""
    dest.mkdir(parents=True)
    for name in ("config.json", "embeddings.npy", "predictions.tsv", "predictions.tsv.json", "metrics.jsonl", "results.json"):
        if (run / name).is_file():
            (dest / name).write_bytes((run / name).read_bytes())
    return dest


def hostile_run(tmp: Path) -> Path:
    """A tiny dataset whose names, attributes and terms try to inject markup, with predictions in the review band."""
    from kgalign.data.store import Dataset, load_dataset, write_dataset
    from kgalign.export.predictions import LinkTable, write_predictions

    n = 6
    kg1 = [f"http://a.org/e{i}" for i in range(n)]
    kg2 = [f"http://b.org/f{i}" for i in range(n)]
    kg1[0] = 'http://a.org/"><script>window.__pwned=3</script>'
    ds = Dataset(
        entities=kg1 + kg2,
        entity_kg=np.array([1] * n + [2] * n, np.int8),
        attributes=["http://a.org/label<b>"],
        attribute_kg=np.array([1], np.int8),
        attr_entity=np.array([0], np.int64),
        attr_key=np.array([0], np.int64),
        attr_value=[HOSTILE],
        attr_datatype=[""],
        attr_lang=[""],
        name_entity=np.array([0, n], np.int64),
        name_text=[HOSTILE, "</title><script>window.__pwned=4</script>"],
        name_lang=["en", "en"],
        links=np.array([[i, n + i] for i in range(n)], np.int64),
        link_split=["train", "train", "valid", "test", "test", "test"],
        manifest={"sources": []},
    )
    write_dataset(ds, tmp / "ds")
    ds = load_dataset(tmp / "ds")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 8))
    emb = np.concatenate([z, z + 0.3 * rng.normal(size=z.shape)]).astype(np.float32)
    run = tmp / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": str((tmp / "ds").resolve()), "model": "test", "seed": 0}))
    np.save(run / "embeddings.npy", emb)
    rows = [(ds.entities[i], ds.entities[n + i], 0.45 - 0.01 * i, "review") for i in (0, 3, 4)]
    rows += [(ds.entities[5], ds.entities[n + 5], 0.9, "accepted")]
    write_predictions(run / "predictions.tsv", LinkTable(*(list(c) for c in zip(*rows, strict=True))))
    return run


class Serving:
    """A review server on a free port in a background thread (the real server, the real sockets)."""

    def __init__(self, run: Path, **kw):
        from kgalign.review.server import make_server, make_state

        self.state = make_state(run, **kw)
        self.server = make_server(self.state, "127.0.0.1", 0)
        self.url = self.server.url
        self.base = self.url.split("/?")[0]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
