"""Files of the run directory (layout in docs/architecture.md).

Every writer is atomic; ``metrics.jsonl`` is appended one line per epoch and
truncated back to the checkpoint's epoch when a run resumes.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from kgalign.fsutil import atomic_path, atomic_write_text

CONFIG = "config.json"
ENV = "env.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
BEST = "best.safetensors"
EMBEDDINGS = "embeddings.npy"
TRAIN_LINKS = "train_links.tsv"
RESULTS = "results.json"
RUN_FILES = (CONFIG, ENV, METRICS, BEST, EMBEDDINGS, TRAIN_LINKS, RESULTS)


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")


def _default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG).is_file()


def clear_run_dir(path: Path) -> None:
    """Remove the files a run writes (and only those) before a forced re-run."""
    for name in RUN_FILES:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / CHECKPOINTS, ignore_errors=True)


def git_hash() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device, precision: str, world_size: int) -> dict:
    from kgalign import __version__

    env = {
        "kgalign": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "precision": precision,
        "world_size": world_size,
        "torch_threads": torch.get_num_threads(),
        "git": git_hash(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def note_resume(path: Path, epoch: int, device: torch.device, world_size: int) -> None:
    """Record a resume (time, epoch, device) in env.json, keeping the original start."""
    env = read_json(path) if path.is_file() else {}
    env.setdefault("resumed", []).append(
        {
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "epoch": epoch,
            "device": str(device),
            "world_size": world_size,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }
    )
    write_json(path, env)


def append_metrics(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, default=_default) + "\n")


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(path: Path, last_epoch: int) -> None:
    """Keep the records of epochs ``<= last_epoch`` (those the checkpoint covers)."""
    kept = [r for r in read_metrics(path) if int(r.get("epoch", 0)) <= last_epoch]
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def write_embeddings(path: Path, emb: torch.Tensor) -> None:
    """float32 (n, D), rows L2-normalised."""
    arr = torch.nn.functional.normalize(emb.detach().float().cpu(), dim=1).numpy().astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def write_train_links(path: Path, links: np.ndarray, source: np.ndarray) -> None:
    """``kg1 kg2 source`` with source ``seed`` or ``bootstrap@EPOCH`` (global ids)."""
    rows = ["kg1\tkg2\tsource\n"]
    for (a, b), s in zip(links.tolist(), source.tolist(), strict=False):
        rows.append(f"{a}\t{b}\t{'seed' if s == 0 else f'bootstrap@{s}'}\n")
    atomic_write_text(path, "".join(rows))
