"""VGG-16 in plain torch with torchvision's exact ``state_dict`` layout; fc7 features.

``features`` is a Sequential of conv/relu/maxpool at torchvision's indices
(convs at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; pools at 4, 9, 16,
23, 30), then ``avgpool`` = AdaptiveAvgPool2d(7) and ``classifier`` =
Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear. A torchvision ``vgg16``
checkpoint (``vgg16-397923af.pth``) therefore loads as it is, and torchvision
is never imported.

The feature is **fc7 after its ReLU** (``classifier[:5]`` in eval mode), 4096-d:
the MMKB / MCLEA / MEAformer image features come from Caffe/Keras VGG-16,
whose ``fc7`` output is taken after the (in-place) ReLU.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import describe_mode

TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
CHECKPOINT_NAME = "vgg16-397923af.pth"
CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
DOWNLOAD_ENV = "KGALIGN_ALLOW_DOWNLOAD"


class VGG16(nn.Module):
    """VGG-16 (configuration D, no batch norm). Input (B, 3, 224, 224) ImageNet-normalised."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so random-weight runs look like its models.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)

    def fc7(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 after ReLU, (B, 4096); call in eval mode (dropout off)."""
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:5](x)


def preprocess(img) -> torch.Tensor:
    """PIL image -> (3, 224, 224) float tensor: resize shorter side to 256
    (bilinear, antialiased), centre crop 224, ImageNet mean/std."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = 256, max(1, int(256 * h / w))
    else:
        nw, nh = max(1, int(256 * w / h)), 256
    img = img.resize((nw, nh), Image.BILINEAR)
    left = int(round((nw - 224) / 2.0))
    top = int(round((nh - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    a = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from ``.safetensors`` or a torch file (weights_only=True, never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise MissingResourceError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read weights ({type(exc).__name__}: {exc})", str(path)) from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError("weights file does not hold a state_dict", str(path))
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def hub_checkpoint_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / CHECKPOINT_NAME


def find_weights(weights: str | None, download: bool = False, timeout: float = 30.0) -> Path:
    """Where the VGG-16 weights are: ``weights``, else torch.hub's cache, else
    (only with ``download`` or KGALIGN_ALLOW_DOWNLOAD=1) the torchvision URL.

    Raises MissingResourceError at once when none is available.
    """
    if weights:
        p = Path(weights)
        if p.exists() and not p.is_file():  # a directory, FIFO or device: never opened (a FIFO would block)
            raise InputError(f"is {describe_mode(p.stat().st_mode)}, expected a VGG-16 weights file", str(p))
        if not p.is_file():
            raise MissingResourceError(f"{p}: VGG-16 weights file not found")
        return p
    cached = hub_checkpoint_path()
    if cached.is_file():
        return cached
    if download or os.environ.get(DOWNLOAD_ENV) == "1":
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            torch.hub.load_state_dict_from_url(TORCHVISION_URL, map_location="cpu", progress=True, check_hash=True, weights_only=True)
        except Exception as exc:
            raise MissingResourceError(f"downloading VGG-16 weights from {TORCHVISION_URL} failed: {exc}") from None
        finally:
            socket.setdefaulttimeout(old)
        return cached
    raise MissingResourceError(
        "VGG-16 weights not found: pass --weights PATH (a torchvision vgg16 state_dict, .pth or .safetensors), "
        f"place {CHECKPOINT_NAME} in {cached.parent}, or use --download on a connected machine"
    )


def load_vgg16(path: str | os.PathLike) -> VGG16:
    """VGG16 with the state_dict from ``path`` (strict key match), in eval mode."""
    sd = load_state_dict_file(path)
    with torch.device("meta"):  # no random init of 138 M parameters that are replaced anyway
        model = VGG16()
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise InputError("not a torchvision-compatible VGG-16 state_dict: " + " ".join(first), str(path)) from None
    return model.eval()


class VGGImageEncoder:
    """Image encoder interface: ``key``, ``dim``, ``preprocess(PIL)``, ``encode(batch tensor)``."""

    dim = 4096

    def __init__(self, weights: str | None, device: str, download: bool = False):
        from kgalign.features.util import path_identity

        path = find_weights(weights, download)
        self.model = load_vgg16(path).to(device)
        self.device = device
        self.key = f"vgg16-fc7-{path_identity(path)[:16]}"

    def preprocess(self, img) -> torch.Tensor:
        return preprocess(img)

    @torch.inference_mode()
    def encode(self, batch: torch.Tensor) -> np.ndarray:
        return self.model.fc7(batch.to(self.device)).float().cpu().numpy()
