"""The run directory: every file in it, its configuration hash, and how to open one.

The one owner of the ``RUN/`` format (docs/architecture.md): training writes it,
``evaluate``/``align``/``export`` read it, and ``train --force`` clears exactly
the files listed here. Every writer is atomic; ``metrics.jsonl`` is appended one
line per epoch and truncated back to the checkpoint's epoch when a run resumes.
Importing this module is cheap: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgalign.config import config_hash as _hash
from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import atomic_path, atomic_write_text

CONFIG = "config.json"
ENV = "env.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
BEST = "best.safetensors"
EMBEDDINGS = "embeddings.npy"
TRAIN_LINKS = "train_links.tsv"
RESULTS = "results.json"
PREDICTIONS = "predictions.tsv"  # written by `kgalign align`, with a ``.json`` sidecar
PREDICTIONS_META = PREDICTIONS + ".json"
DECISIONS = "decisions.tsv"  # `kgalign review`: a person's verdicts; kept by `train --force` (they outlive a model)
REPORT = "report"  # `kgalign report`: index.html and its PNGs
# Files that describe one trained model; `train --force` removes them all (a stale
# predictions.tsv would otherwise be exported as the new model's links).
RUN_FILES = (CONFIG, ENV, METRICS, BEST, EMBEDDINGS, TRAIN_LINKS, RESULTS, PREDICTIONS, PREDICTIONS_META)
# Keys that do not change what is computed: allowed to differ on --resume, left out of the hash.
HASH_EXCLUDE = ("train.device", "train.checkpoint_every")


def run_config_hash(config: dict) -> str:
    """The run's identity: sha256 of its resolved config without :data:`HASH_EXCLUDE`.

    results.json, checkpoints, the predictions sidecar and export provenance all carry this value.
    """
    return _hash(config, HASH_EXCLUDE)


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
    shutil.rmtree(path / REPORT, ignore_errors=True)


def git_hash() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device, precision: str, world_size: int) -> dict:
    import torch

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


def note_resume(path: Path, epoch: int, device, world_size: int) -> None:
    """Record a resume (time, epoch, device) in env.json, keeping the original start."""
    import torch

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


def write_embeddings(path: Path, emb) -> None:
    """float32 (n, D), rows L2-normalised."""
    import torch

    arr = torch.nn.functional.normalize(emb.detach().float().cpu(), dim=1).numpy().astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def write_weights(path: Path, state: dict, metadata: dict) -> None:
    """Model weights as safetensors (``best.safetensors``)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(tmp), metadata=metadata)


def write_train_links(path: Path, links: np.ndarray, source: np.ndarray, reviewed: np.ndarray | None = None) -> None:
    """``kg1 kg2 source`` with source ``seed``, ``reviewed`` (accepted in a review) or ``bootstrap@EPOCH`` (global ids)."""
    accepted = set() if reviewed is None else {tuple(p) for p in np.asarray(reviewed).reshape(-1, 2).tolist()}
    rows = ["kg1\tkg2\tsource\n"]
    for (a, b), s in zip(links.tolist(), source.tolist(), strict=True):
        label = f"bootstrap@{s}" if s else ("reviewed" if (a, b) in accepted else "seed")
        rows.append(f"{a}\t{b}\t{label}\n")
    atomic_write_text(path, "".join(rows))


# ---------------------------------------------------------------- reading a run


@dataclass
class Run:
    path: Path
    config: dict
    dataset_path: Path
    embeddings_path: Path

    @property
    def config_hash(self) -> str:
        """:func:`run_config_hash` of config.json: the same value results.json carries."""
        return run_config_hash(self.config)

    @property
    def model_name(self) -> str | None:
        """``config["model"]``: a name, or a section with a ``name`` (the trainer's resolved config)."""
        m = self.config.get("model")
        if isinstance(m, dict):
            m = m.get("name")
        return None if m is None else str(m)

    @property
    def seed(self) -> int | None:
        s = self.config.get("seed")
        if s is None and isinstance(self.config.get("train"), dict):
            s = self.config["train"].get("seed")
        return None if s is None else int(s)

    def load_embeddings(self, expected_rows: int | None = None) -> np.ndarray:
        """float32 (n, D), memory-mapped (read-only)."""
        try:
            emb = np.load(self.embeddings_path, allow_pickle=False, mmap_mode="r")
        except ValueError as exc:
            raise InputError(f"not a plain numpy array file: {exc}", str(self.embeddings_path)) from exc
        if emb.ndim != 2:
            raise InputError(f"embeddings must be 2-d (n, D), found shape {emb.shape}", str(self.embeddings_path))
        if expected_rows is not None and emb.shape[0] != expected_rows:
            raise InputError(
                f"{emb.shape[0]} embedding rows but the dataset {self.dataset_path} has {expected_rows} entities",
                str(self.embeddings_path),
            )
        return emb

    def load_dataset(self):
        from kgalign.data.store import load_dataset

        return load_dataset(self.dataset_path)


def open_run(run: str | os.PathLike, dataset: str | os.PathLike | None = None) -> Run:
    """Check a run directory and resolve its dataset (``dataset`` overrides config.json's)."""
    path = Path(run)
    cfg_path = path / CONFIG
    if not path.is_dir():
        raise MissingResourceError(f"{path}: no such run directory (create one with `kgalign train`)")
    if not cfg_path.is_file():
        raise MissingResourceError(f"{path}: not a run directory (no config.json)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", str(cfg_path), exc.lineno) from exc
    if not isinstance(config, dict):
        raise InputError("expected a JSON object", str(cfg_path), 1)
    if dataset is None:
        if not config.get("dataset"):
            raise InputError('no "dataset" path in the run config (pass --dataset)', str(cfg_path))
        if not isinstance(config["dataset"], str):
            raise InputError(f'"dataset" must be a path, found {config["dataset"]!r}', str(cfg_path))
        dataset = config["dataset"]
    ds_path = Path(dataset)
    if not ds_path.is_absolute():
        ds_path = (path / ds_path).resolve()
    emb = path / EMBEDDINGS
    if not emb.is_file():
        raise MissingResourceError(f"{path}: no embeddings.npy (the run has not finished training)")
    return Run(path=path, config=config, dataset_path=ds_path, embeddings_path=emb)
