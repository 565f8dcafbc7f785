"""Model registry: ``--model NAME`` -> class, documented default config, doc page.

Importing this module is cheap (no torch): classes are imported on
``get_model``. ``defaults`` are the keyword arguments of ``cls(inputs, **config)``;
``train_defaults`` are the optimiser/schedule settings of the model's reference
runs, for the trainer to use when the user gives none.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from kgalign.errors import InputError

_GAT = {"hidden": 300, "gat_heads": 2, "gat_layers": 2, "gat_concat": True, "gat_attn_dropout": 0.0}

_MODELS: dict[str, dict] = {
    "noco": {
        "target": "kgalign.models.noco:NoCo",
        "doc": "docs/models/noco.md",
        "summary": "NoCo: modality-aware noise augmentation + confidence-based dynamic fusion (Sci China Inf Sci 2026)",
        "defaults": {
            **_GAT,
            "tau": 0.1,
            "alpha": 0.5,
            "noise": True,
            "noise_modalities": None,
            "noise_size": 256,
            "noise_steps": 1,
            "noise_mlp_layers": 2,
            "noise_target_cos": 0.9,
            "noise_rate": 1.0,
            "uni_conf_hidden": 150,
            "global_conf_hidden": 32,
            "calib_eps": 1e-3,
            "conf_loss_weight": 0.1,
            "icl_weighting": "sum",
            "l2_inputs": ["image"],
        },
        "train": {
            "optimizer": "adamw",
            "lr": 5e-4,
            "weight_decay": 1e-4,
            "eps": 1e-8,
            "batch_size": 3500,
            "epochs": 500,
            "warmup_ratio": 0.15,
            "schedule": "cosine",
            "grad_clip": 1.0,
        },
    },
    "meaformer": {
        "target": "kgalign.models.meaformer:MEAformer",
        "doc": "docs/models/meaformer.md",
        "summary": "MEAformer: cross-modal attention gives entity-level modality weights (ACM MM 2023)",
        "defaults": {
            **_GAT,
            "fusion_heads": 1,
            "fusion_layers": 1,
            "fusion_dropout": 0.1,
            "fusion_ffn": 0,
            "tau": 0.1,
            "alpha": 0.5,
            "l2_inputs": ["image"],
        },
        "train": {
            "optimizer": "adamw",
            "lr": 5e-4,
            "weight_decay": 1e-4,
            "eps": 1e-8,
            "batch_size": 3500,
            "epochs": 500,
            "warmup_ratio": 0.15,
            "schedule": "cosine",
            "grad_clip": 1.0,
        },
    },
    "mclea": {
        "target": "kgalign.models.mclea:MCLEA",
        "doc": "docs/models/mclea.md",
        "summary": "MCLEA: per-modality encoders, global weights, ICL + IAL (COLING 2022)",
        "defaults": {
            **_GAT,
            "feature_dim": 100,
            "tau": 0.1,
            "tau2": 4.0,
            "alpha": 0.5,
            "ial_weight": 0.01,
            "l2_inputs": ["image"],
        },
        "train": {
            "optimizer": "adamw",
            "lr": 5e-4,
            "weight_decay": 1e-2,
            "eps": 1e-8,
            "batch_size": None,
            "epochs": 1000,
            "warmup_ratio": 0.0,
            "schedule": "constant",
            "grad_clip": None,
        },
    },
    "mpsea": {
        "target": "kgalign.models.mpsea:MPSEA",
        "doc": "docs/models/mpsea.md",
        "summary": "MPSEA: multi-weight GAT, DNEF numbers, pre-synergistic fusion, MI-rewarded fusion policy (CMC 2025)",
        "defaults": {
            **_GAT,
            "multi_weight_gat": True,
            "gat_bands": 1,
            "structure": True,
            "dnef": True,
            "dnef_kernels": 32,
            "fusion_heads": 5,
            "fusion_ffn": 300,
            "fusion_dropout": 0.1,
            "fusion_checkpoint": False,
            "mmpf": True,
            "mmpf_gph": True,
            "mmpf_img": True,
            "outlook": True,
            "outlook_conv": True,
            "outlook_grid": 20,
            "outlook_kernel": 3,
            "cprl": True,
            "fusion_levels": [0.0, 0.5, 1.0],
            "base_level": 0.5,
            "reward_threshold": 0.5,
            "mi_weight": 0.1,
            "reward_bonus": 0.5,
            "reward_penalty": 0.5,
            "entropy_weight": 0.01,
            "policy_hidden": 64,
            "mi_hidden": 64,
            "mi_negatives": 256,
            "tau": 0.1,
            "alpha": 0.5,
            "l2_inputs": ["image"],
        },
        "train": {
            "optimizer": "adamw",
            "lr": 5e-4,
            "weight_decay": 1e-4,
            "eps": 1e-8,
            "batch_size": 3500,
            "epochs": 500,
            "warmup_ratio": 0.15,
            "schedule": "cosine",
            "grad_clip": 1.0,
        },
    },
}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        cls: the ``nn.Module`` subclass, built as ``cls(inputs, **config)``.
        defaults: the documented default config (a fresh copy per call).
        doc: path of the model's documentation page, relative to the repository root.
        name: registry name.
        summary: one line for ``--help`` / listings.
        train_defaults: the reference runs' training settings (``batch_size``
            None = all training links in one batch).
    """

    cls: type
    defaults: dict
    doc: str
    name: str = ""
    summary: str = ""
    train_defaults: dict = field(default_factory=dict)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def model_summary(name: str) -> str:
    """One-line description without importing torch."""
    return _entry(name)["summary"]


def _entry(name: str) -> dict:
    key = name.strip().lower()
    if key not in _MODELS:
        raise InputError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[key]


def get_model(name: str) -> ModelSpec:
    """``ModelSpec`` for ``name`` (case-insensitive); InputError for an unknown name."""
    entry = _entry(name)
    module, attr = entry["target"].split(":")
    cls = getattr(importlib.import_module(module), attr)
    return ModelSpec(
        cls=cls,
        defaults={k: (list(v) if isinstance(v, list) else v) for k, v in entry["defaults"].items()},
        doc=entry["doc"],
        name=name.strip().lower(),
        summary=entry["summary"],
        train_defaults=dict(entry["train"]),
    )


def check_option_types(name: str, options: dict) -> None:
    """Raise InputError when an option's value does not have its default's type (int, float, bool, str, list)."""
    spec = get_model(name)
    for key, value in options.items():
        default = spec.defaults.get(key)
        if default is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default)) or (isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)))
        if not ok:
            raise InputError(f"model {spec.name!r}: option {key} must be a {type(default).__name__} like {default!r}, got {value!r}")


def build_model(name: str, inputs, **overrides):
    """``get_model(name).cls(inputs, **{**defaults, **overrides})``; unknown keys -> InputError."""
    spec = get_model(name)
    unknown = sorted(set(overrides) - set(spec.defaults))
    if unknown:
        raise InputError(f"model {spec.name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(spec.defaults))}")
    return spec.cls(inputs, **{**spec.defaults, **overrides})
