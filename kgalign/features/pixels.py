"""A weight-free image encoder: a small colour thumbnail plus a colour histogram.

For machines where no pretrained CNN/CLIP weights are available (offline, CI,
the bundled example). It captures colour layout and palette, not semantics;
with VGG-16 or CLIP weights use ``--image-model vgg16|clip`` instead.

Vector layout (dim 832): 16x16 RGB thumbnail (768 values, each image
standardised to zero mean, unit variance) followed by a 4x4x4 RGB histogram
(64 bins, L1-normalised, then scaled by 8 so both parts weigh alike).
"""

from __future__ import annotations

import numpy as np
import torch

THUMB = 16
BINS = 4


class PixelImageEncoder:
    """Image encoder interface: ``key``, ``dim``, ``preprocess(PIL)``, ``encode(batch tensor)``."""

    dim = THUMB * THUMB * 3 + BINS**3
    key = "pixels-v1"

    def preprocess(self, img) -> torch.Tensor:
        """PIL image -> uint8 tensor (THUMB, THUMB, 3) after an antialiased resize."""
        from PIL import Image

        rgb = img.convert("RGB").resize((THUMB, THUMB), Image.BILINEAR, reducing_gap=None)
        return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy())

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """(B, THUMB, THUMB, 3) uint8 -> (B, dim) float32."""
        x = batch.numpy().astype(np.float32)
        flat = x.reshape(len(x), -1)
        thumb = (flat - flat.mean(1, keepdims=True)) / (flat.std(1, keepdims=True) + 1e-6)
        q = (x // (256 // BINS)).astype(np.int64).reshape(len(x), -1, 3)
        codes = q[..., 0] * BINS * BINS + q[..., 1] * BINS + q[..., 2]
        hist = np.stack([np.bincount(c, minlength=BINS**3) for c in codes]).astype(np.float32)
        hist = hist / hist.sum(1, keepdims=True) * 8.0
        return np.concatenate([thumb, hist], axis=1).astype(np.float32)
