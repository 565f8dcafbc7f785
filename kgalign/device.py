"""Device choice, mixed precision and peak-memory figures."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

import torch

from kgalign.errors import InputError, MissingResourceError


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> first CUDA device if any else CPU; ``cpu``; ``cuda``; ``cuda:N``.

    Under torchrun (``local_rank`` given) a CUDA request means ``cuda:LOCAL_RANK``.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MissingResourceError(
                f"--device {spec}: CUDA is not available to this torch build ({torch.__version__}); use --device cpu"
            )
        if spec == "cuda":
            return torch.device("cuda", local_rank or 0)
        try:
            idx = int(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N") from None
        if idx >= torch.cuda.device_count():
            raise MissingResourceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return torch.device("cuda", idx)
    raise InputError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")


@dataclass
class Precision:
    """How the forward/backward pass runs: ``dtype`` None means plain fp32."""

    mode: str  # fp32 | fp16 | bf16
    dtype: torch.dtype | None
    scaler: bool  # GradScaler is needed for fp16 only

    def autocast(self, device: torch.device):
        return torch.autocast(device_type=device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """``auto``: bf16 on GPUs that support it, else fp16 with GradScaler; fp32 on CPU."""
    mode = (mode or "auto").lower()
    if mode == "auto":
        if device.type != "cuda":
            mode = "off"
        else:
            mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "off":
        return Precision("fp32", None, False)
    if mode == "bf16":
        return Precision("bf16", torch.bfloat16, False)
    if mode == "fp16":
        if device.type != "cuda":
            raise InputError("--amp fp16 needs a CUDA device; on CPU use --amp bf16 or --amp off")
        return Precision("fp16", torch.float16, True)
    raise InputError(f"amp {mode!r}: expected auto, off, fp16 or bf16")


def peak_memory(device: torch.device) -> dict:
    """Peak resident set size of this process (MiB) and, on CUDA, peak allocated GPU memory (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
    out = {"max_rss_mib": round(rss_mib, 1)}
    if device.type == "cuda":
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out
