"""Reading what `evaluate`, `align` and `export` need from a run directory.

Only ``RUN/config.json`` (its absolute ``"dataset"`` path, plus ``model``/``seed``
for provenance) and ``RUN/embeddings.npy`` (float32 (n, D), global entity ids)
are required; see docs/architecture.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgalign.errors import InputError, MissingResourceError


@dataclass
class Run:
    path: Path
    config: dict
    dataset_path: Path
    embeddings_path: Path

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of config.json (sorted keys)."""
        text = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

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
    cfg_path = path / "config.json"
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
        dataset = config["dataset"]
    ds_path = Path(dataset)
    if not ds_path.is_absolute():
        ds_path = (path / ds_path).resolve()
    emb = path / "embeddings.npy"
    if not emb.is_file():
        raise MissingResourceError(f"{path}: no embeddings.npy (the run has not finished training)")
    return Run(path=path, config=config, dataset_path=ds_path, embeddings_path=emb)
