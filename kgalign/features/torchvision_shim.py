"""Make a torchvision whose C++ ops cannot load importable (the open_clip route only).

torchvision 0.28.0 on PyPI is a CUDA build. With the CPU torch its ``_C``
extension fails to load (it links libtorch_cuda), and ``import torchvision``
then dies in ``_meta_registrations`` with "operator torchvision::nms does not
exist": ``register_fake("torchvision::nms")`` needs the operator's schema.
Defining the schemas of ``nms`` and ``qnms`` ourselves lets the import finish;
everything open_clip / timm / transformers use (models, transforms) is plain
Python. ``torchvision.ops.nms`` itself still raises "Couldn't load custom C++
ops" (no kernel), which nothing here calls.

Must run before anything imports torchvision, transformers, timm or open_clip
(see docs/features.md and the project's environment notes, §4).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

_lib = None  # the torch.library.Library must stay alive, or its definitions are dropped
_decided: bool | None = None

# (name, schema) as in torchvision's csrc/ops/nms.cpp
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _extension_path() -> str | None:
    """Path of torchvision's ``_C`` extension, found without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for d in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            p = os.path.join(d, "_C" + suffix)
            if os.path.isfile(p):
                return p
    return None


def needed() -> bool:
    """True when torchvision is installed, not yet imported, and its C++ ops cannot load."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return False
    import torch

    path = _extension_path()
    if path is None:
        return True  # no extension at all: the schemas are missing just the same
    try:
        # what torchvision.extension does itself; on success the real ops are registered
        torch.ops.load_library(path)
        return False
    except OSError:
        return True


def apply() -> bool:
    """Register the ``torchvision`` operator schemas if needed. Idempotent.

    Returns True when the shim is (now) in place, False when it is not needed
    (no torchvision, a working torchvision, or torchvision already imported).
    """
    global _lib, _decided
    if _decided is not None:
        return _decided
    if not needed():
        _decided = False
        return False
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        lib.define(schema)
    _lib = lib
    _decided = True
    return True
