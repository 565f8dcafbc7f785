"""CLIP image and text features through open_clip (the ``kgalign[clip]`` extra).

Weights (``--weights``), with the architecture from ``--clip-arch`` (default ViT-B-32):

- a local checkpoint file (``.pt``/``.pth``/``.bin`` loaded by open_clip with
  ``torch.load(weights_only=True)``, or ``.safetensors``);
- a pretrained tag of that architecture (e.g. ``openai``), resolved from the
  local cache only unless downloads are allowed (``--download``, see
  features/hub.py): a tag that is not cached fails at once with
  MissingResourceError, never waits.

The torchvision shim is applied before open_clip is imported. Features are the
projected embeddings (``embed_dim``), not normalised, as on the transformers route.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kgalign.errors import InputError, MissingResourceError

DEFAULT_ARCH = "ViT-B-32"
DEFAULT_TAG = "openai"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def _offline() -> bool:
    from kgalign.features.hub import downloads_allowed

    return not downloads_allowed() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def import_open_clip():
    """``import open_clip`` with the torchvision shim in place first."""
    from kgalign.features import torchvision_shim

    torchvision_shim.apply()
    try:
        import open_clip
    except ImportError as exc:
        raise MissingResourceError(
            f"open_clip is not usable ({exc}); install the extra: pip install 'kgalign[clip]' torch==2.13.0, "
            "or use --clip-backend transformers"
        ) from None
    return open_clip


def is_checkpoint_path(weights: str) -> bool:
    """A local file (or something meant as one: a path separator or a checkpoint suffix)."""
    return os.path.exists(weights) or os.sep in weights or weights.lower().endswith(CHECKPOINT_SUFFIXES)


def openclip_key(weights: str | None, arch: str | None) -> str:
    """Identity of (backend, architecture, weights) for feature caches, without loading anything."""
    from kgalign.features.util import path_identity

    arch = arch or DEFAULT_ARCH
    weights = weights or DEFAULT_TAG
    ident = path_identity(weights)[:16] if os.path.isfile(weights) else weights
    return f"openclip-{arch}-{ident}"


def resolve_source(weights: str | None, arch: str | None) -> tuple[str, str]:
    """Check that ``(arch, weights)`` can be loaded without a network. Returns (arch, pretrained)
    where pretrained is an absolute checkpoint path or a tag. Raises InputError / MissingResourceError."""
    open_clip = import_open_clip()
    arch = arch or DEFAULT_ARCH
    weights = weights or DEFAULT_TAG
    if arch not in open_clip.list_models():
        raise InputError(f"unknown --clip-arch {arch!r} for open_clip (e.g. ViT-B-32, ViT-B-16, RN50; see open_clip.list_models())")
    if is_checkpoint_path(weights):
        p = Path(weights)
        if p.is_dir():
            raise MissingResourceError(
                f"{weights}: is a directory; open_clip wants a checkpoint file (.pt/.bin/.safetensors). "
                "For a saved Hugging Face CLIP directory use --clip-backend transformers"
            )
        if not p.is_file():
            raise MissingResourceError(f"{weights}: open_clip checkpoint file not found")
        return arch, str(p.resolve())
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch, weights)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise MissingResourceError(f"{weights!r} is neither a checkpoint file nor a pretrained tag of {arch} (tags: {tags})")
    if _offline():
        _check_cached(open_clip, cfg, arch, weights)
    return arch, weights


def _check_cached(open_clip, cfg: dict, arch: str, tag: str) -> None:
    """Offline: the tag's weights must already be in open_clip's cache (no download, no wait)."""
    from open_clip.pretrained import download_pretrained, has_hf_hub

    hint = f"pass --weights FILE with a local {arch} checkpoint, or pass --download on a connected machine to download it"
    if cfg.get("hf_hub") and has_hf_hub():
        try:
            download_pretrained(cfg)  # huggingface_hub answers from its cache or fails at once when offline
        except Exception as exc:
            raise MissingResourceError(
                f"open_clip weights {arch}/{tag} are not in the local Hugging Face cache ({str(exc).splitlines()[0]}); {hint}"
            ) from None
        return
    url = cfg.get("url", "")
    target = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
    if not url or not os.path.isfile(target):
        # open_clip would call urllib here, which ignores HF_HUB_OFFLINE and can hang
        raise MissingResourceError(f"open_clip weights {arch}/{tag} are not cached (expected {target}); {hint}")


class OpenClipBundle:
    """A loaded open_clip model with its tokenizer and eval preprocessing."""

    def __init__(self, weights: str | None, arch: str | None, device: str, batch_size: int):
        import torch

        open_clip = import_open_clip()
        arch, pretrained = resolve_source(weights, arch)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained, device=device)
            self.tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:  # corrupt/foreign checkpoints raise many kinds (UnpicklingError, SafetensorError, ...)
            raise MissingResourceError(f"cannot load open_clip {arch} from {pretrained!r} ({str(exc).splitlines()[0]})") from None
        self.model = model.eval()
        self.transform = preprocess
        self.device = device
        self.batch_size = batch_size
        self.arch = arch
        # embed_dim: output size of encode_image / encode_text
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer([""]).to(device)).shape[-1])
        self.key = openclip_key(weights, arch)

    # image encoder interface (see vgg.VGGImageEncoder)
    def preprocess(self, img):
        """PIL image -> float tensor (3, H, W) as the model's eval transform makes it."""
        return self.transform(img.convert("RGB"))

    def encode(self, batch) -> np.ndarray:
        """(b, 3, H, W) -> float32 (b, dim)."""
        import torch

        with torch.inference_mode():
            return self.model.encode_image(batch.to(self.device)).float().cpu().numpy()

    def encode_texts(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """list of n strings -> float32 (n, dim); longer texts are cut at the context length."""
        import torch

        from kgalign.progress import Progress

        out = []
        with Progress(len(texts), "names", enabled=progress) as bar, torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                chunk = texts[i : i + self.batch_size]
                tok = self.tokenizer(chunk).to(self.device)
                out.append(self.model.encode_text(tok).float().cpu().numpy())
                bar.update(len(chunk))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def text_encoder(self):
        """The shared CLIP text-encoder interface over this bundle."""
        from kgalign.features.clip import ClipTextEncoder

        return ClipTextEncoder(self)


def load_openclip(weights: str | None, arch: str | None, device: str, batch_size: int = 64) -> OpenClipBundle:
    return OpenClipBundle(weights, arch, device, batch_size)
