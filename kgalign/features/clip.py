"""CLIP image and text features through ``transformers.CLIPModel`` (no torchvision).

Weights: ``--weights DIR`` (a directory written by ``CLIPModel.save_pretrained``
plus the tokenizer and image processor, as on the hub), or a hub name such as
``openai/clip-vit-base-patch32`` that is already in the local Hugging Face
cache (loaded with ``local_files_only``: nothing is downloaded here).
Features are the projected embeddings (``projection_dim``), not normalised.

``load_clip_backend`` picks the route: open_clip (kgalign/features/openclip.py)
when it is installed, unless ``backend="transformers"``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from kgalign.errors import MissingResourceError

DEFAULT_CLIP = "openai/clip-vit-base-patch32"


def _tensor(out):
    # transformers >= 5 returns a ModelOutput whose pooler_output is projected.
    return out if hasattr(out, "shape") else out.pooler_output


class ClipBundle:
    """A loaded CLIP model with its tokenizer and image processor."""

    def __init__(self, source: str, device: str, batch_size: int):
        import torch  # noqa: F401  (transformers needs it)
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        try:
            # silences "CLIPImageProcessor requires torchvision; falling back to the PIL processor":
            # the PIL processor is what kgalign wants (torchvision must not be installed)
            hf_logging.set_verbosity_error()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = CLIPModel.from_pretrained(source, local_files_only=True).to(device).eval()
                self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
                self.processor = AutoImageProcessor.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise MissingResourceError(
                f"cannot load CLIP model {source!r} offline ({str(exc).splitlines()[0]}); "
                "pass --weights DIR with a saved Hugging Face CLIP model"
            ) from None
        finally:
            hf_logging.set_verbosity(level)
        self.device = device
        self.batch_size = batch_size
        self.dim = int(self.model.config.projection_dim)
        if os.path.isdir(source):
            from kgalign.features.util import path_identity

            ident = path_identity(source)[:16]
        else:
            ident = source
        self.key = f"clip-{ident}"

    # image encoder interface (see vgg.VGGImageEncoder)
    def preprocess(self, img):
        return self.processor(images=[img.convert("RGB")], return_tensors="pt")["pixel_values"][0]

    def encode(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return _tensor(self.model.get_image_features(pixel_values=batch.to(self.device))).float().cpu().numpy()

    def encode_texts(self, texts: list[str], progress: bool = False) -> np.ndarray:
        import torch

        from kgalign.progress import Progress

        out = []
        max_len = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
        with Progress(len(texts), "names", enabled=progress) as bar, torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                chunk = texts[i : i + self.batch_size]
                tok = self.tokenizer(chunk, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
                tok = {k: v.to(self.device) for k, v in tok.items()}
                out.append(_tensor(self.model.get_text_features(**tok)).float().cpu().numpy())
                bar.update(len(chunk))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def text_encoder(self) -> "ClipTextEncoder":
        return ClipTextEncoder(self)


class ClipTextEncoder:
    """Text encoder interface (``key``, ``dim``, ``encode``) over a CLIP bundle (transformers or open_clip)."""

    def __init__(self, bundle: ClipBundle):
        self.bundle = bundle
        self.dim = bundle.dim
        self.key = bundle.key + "-text"

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.bundle.encode_texts(texts, progress)


def load_clip(weights: str | None, device: str, batch_size: int = 64) -> ClipBundle:
    """The transformers route (see module docstring)."""
    source = weights or DEFAULT_CLIP
    if weights and not Path(weights).exists() and "/" not in weights:
        raise MissingResourceError(f"{weights}: CLIP weights directory not found")
    return ClipBundle(source, device, batch_size)


# ---- backend selection (issue #3): open_clip when installed, else transformers ----

CLIP_BACKENDS = ("auto", "open_clip", "transformers")


def resolve_backend(backend: str | None) -> str:
    """``auto`` -> ``open_clip`` if the package is installed, else ``transformers``."""
    import importlib.util

    backend = backend or "auto"
    if backend not in CLIP_BACKENDS:
        from kgalign.errors import InputError

        raise InputError(f"unknown --clip-backend {backend!r}; choose one of {', '.join(CLIP_BACKENDS)}")
    if backend == "auto":
        return "open_clip" if importlib.util.find_spec("open_clip") is not None else "transformers"
    return backend


def clip_model_key(weights: str | None, backend: str | None = "auto", arch: str | None = None) -> str:
    """Identity of the CLIP image model (backend, architecture, weights) without loading it.
    For a transformers hub name the model is loaded once to check it is cached."""
    if resolve_backend(backend) == "open_clip":
        from kgalign.features.openclip import openclip_key, resolve_source

        resolve_source(weights, arch)  # fails now (exit 2/3) rather than after other features
        return openclip_key(weights, arch)
    from kgalign.features.util import path_identity

    src = weights or DEFAULT_CLIP
    if os.path.exists(src):
        return "clip-" + path_identity(src)[:16]
    load_clip(src, "cpu")  # a hub name: must be in the local cache
    return "clip-" + src


def load_clip_backend(weights: str | None, device: str, batch_size: int = 64, backend: str | None = "auto", arch: str | None = None):
    """The CLIP encoder the CLI uses: an OpenClipBundle or a ClipBundle (same interface)."""
    if resolve_backend(backend) == "open_clip":
        from kgalign.features.openclip import load_openclip

        return load_openclip(weights, arch, device, batch_size)
    return load_clip(weights, device, batch_size)
