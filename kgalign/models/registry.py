"""Model registry: ``--model NAME`` -> class, documented default config, doc page.

Importing this module is cheap (no torch): classes are imported on
``get_model``. model options and their defaults are the keyword arguments of
``cls(inputs, **options)`` (read from the signature: written once);
``train_defaults`` are the schedule settings of the model's reference runs, for
the trainer to use when the user gives none. Adding a model = one module + one
entry in ``_MODELS``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field

from kgalign.errors import InputError

_REFERENCE_TRAIN = {
    "lr": 5e-4,
    "weight_decay": 1e-4,
    "eps": 1e-8,
    "batch_size": 3500,
    "epochs": 500,
    "warmup_ratio": 0.15,
    "schedule": "cosine",
    "grad_clip": 1.0,
}

# name -> where the class lives, its documentation, a one-line summary, and the training settings of its
# reference runs. Model options and their defaults are the class's keyword arguments (read from the signature).
_MODELS: dict[str, dict] = {
    "noco": {
        "target": "kgalign.models.noco:NoCo",
        "doc": "docs/models/noco.md",
        "summary": "NoCo: modality-aware noise augmentation + confidence-based dynamic fusion (Sci China Inf Sci 2026)",
        "train": dict(_REFERENCE_TRAIN),
    },
    "meaformer": {
        "target": "kgalign.models.meaformer:MEAformer",
        "doc": "docs/models/meaformer.md",
        "summary": "MEAformer: cross-modal attention gives entity-level modality weights (ACM MM 2023)",
        "train": dict(_REFERENCE_TRAIN),
    },
    "mclea": {
        "target": "kgalign.models.mclea:MCLEA",
        "doc": "docs/models/mclea.md",
        "summary": "MCLEA: per-modality encoders, global weights, ICL + IAL (COLING 2022)",
        "train": {
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
        "train": dict(_REFERENCE_TRAIN),
    },
    "lightea": {
        "target": "kgalign.models.lightea:LightEA",
        "doc": "docs/models/lightea.md",
        "summary": "LightEA: training-free label propagation over structure + feature views, sparse Sinkhorn bootstrapping (EMNLP 2022)",
        "train": dict(_REFERENCE_TRAIN),
        "trainable": False,
    },
}

# Ranges shared by every model's options of these names: (low, high, low included, high included).
_INF = float("inf")
OPTION_BOUNDS: dict[str, tuple[float, float, bool, bool]] = {
    **{
        k: (1, _INF, True, False)
        for k in (
            "hidden",
            "feature_dim",
            "gat_heads",
            "gat_layers",
            "fusion_heads",
            "fusion_layers",
            "noise_size",
            "noise_steps",
            "noise_mlp_layers",
            "gat_bands",
            "dnef_kernels",
            "outlook_grid",
            "outlook_kernel",
            "policy_hidden",
            "mi_hidden",
            "mi_negatives",
            "uni_conf_hidden",
            "global_conf_hidden",
            "ent_dim",
            "rel_dim",
            "mini_dim",
            "rounds",
            "top_k",
            "search_dim",
            "block_size",
        )
    },
    **{k: (0, _INF, True, False) for k in ("iterations", "sinkhorn_steps", "feature_weight", "entity_dim", "dnef_chunk")},
    "sinkhorn_tau": (0, _INF, False, False),
    "threshold": (0, 1, False, True),
    **{k: (0, _INF, False, False) for k in ("tau", "tau2", "calib_eps")},
    **{k: (0, _INF, True, False) for k in ("fusion_ffn", "conf_loss_weight", "ial_weight", "noise_rate")},
    **{k: (0, 1, True, False) for k in ("gat_attn_dropout", "fusion_dropout", "dropout")},
    "alpha": (0, 1, True, True),
    "noise_target_cos": (0, 1, False, False),
}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        cls: the ``AlignmentModel`` subclass, built as ``cls(inputs, **options)``.
        defaults: its options with their defaults, read from ``cls.__init__`` (a fresh copy per call).
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


def register_model(name: str, target: str, *, summary: str, doc: str = "", train: dict | None = None, trainable: bool = True) -> None:
    """Add a model from outside the package (a plugin, a test): ``target`` is ``"module:Class"``.

    ``trainable=False`` for a training-free model (its class sets ``trainable = False``)."""
    key = name.strip().lower()
    if key in _MODELS:
        raise ValueError(f"model {key!r} is already registered")
    _MODELS[key] = {
        "target": target,
        "doc": doc,
        "summary": summary,
        "train": dict(_REFERENCE_TRAIN, **(train or {})),
        "trainable": trainable,
    }


def unregister_model(name: str) -> None:
    """Remove a model added with :func:`register_model`."""
    _MODELS.pop(name.strip().lower(), None)


def list_models(trainable: bool | None = None) -> list[str]:
    """Registered model names, sorted; ``trainable`` True/False keeps only trained / training-free models."""
    return sorted(n for n in _MODELS if trainable is None or _MODELS[n].get("trainable", True) == trainable)


def models_help() -> str:
    """``name: summary`` lines for help texts (no torch import)."""
    return "; ".join(f"{n} ({_MODELS[n]['summary'].split(':')[0]})" for n in list_models())


def model_summary(name: str) -> str:
    """One-line description without importing torch."""
    return _entry(name)["summary"]


def _entry(name: str) -> dict:
    key = str(name).strip().lower()
    if key not in _MODELS:
        raise InputError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[key]


def signature_defaults(cls: type) -> dict:
    """``{option: default}`` of ``cls.__init__`` besides ``self`` and ``inputs`` (tuples as lists, JSON-like)."""
    out = {}
    for key, p in inspect.signature(cls.__init__).parameters.items():
        if key in ("self", "inputs") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.default is p.empty:
            raise TypeError(f"{cls.__name__}.__init__: option {key!r} has no default")
        out[key] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def get_model(name: str) -> ModelSpec:
    """``ModelSpec`` for ``name`` (case-insensitive); InputError for an unknown name."""
    entry = _entry(name)
    module, attr = entry["target"].split(":")
    cls = getattr(importlib.import_module(module), attr)
    return ModelSpec(
        cls=cls,
        defaults=signature_defaults(cls),
        doc=entry["doc"],
        name=str(name).strip().lower(),
        summary=entry["summary"],
        train_defaults=dict(entry["train"]),
    )


def _type_ok(default, value) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _in_bounds(value, bounds) -> bool:
    lo, hi, lo_in, hi_in = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN
        return False
    return (value > lo or (lo_in and value == lo)) and (value < hi or (hi_in and value == hi))


def _interval(bounds) -> str:
    lo, hi, lo_in, hi_in = bounds
    return f"{'[' if lo_in else '('}{lo:g}, {'inf' if hi == _INF else f'{hi:g}'}{']' if hi_in else ')'}"


def validate_options(name: str, options: dict) -> None:
    """The one check of model options: known names, the defaults' types, the shared ranges.

    Raises InputError naming the option; combinations a model cannot build (e.g.
    ``hidden`` not divisible by ``gat_heads``) are reported by :func:`build_model`.
    """
    spec = get_model(name)
    unknown = sorted(set(options) - set(spec.defaults) - {"name"})
    if unknown:
        raise InputError(f"model {spec.name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(spec.defaults))}")
    for key, value in options.items():
        if key == "name":
            continue
        default = spec.defaults[key]
        if not _type_ok(default, value):
            raise InputError(f"model {spec.name!r}: option {key} must be a {type(default).__name__} like {default!r}, got {value!r}")
        bounds = OPTION_BOUNDS.get(key)
        if bounds is not None and value is not None and not _in_bounds(value, bounds):
            raise InputError(f"model {spec.name!r}: option {key} must be in {_interval(bounds)}, got {value!r}")


def build_model(name: str, inputs, **options):
    """Validate ``options`` and build ``cls(inputs, **{**defaults, **options})``.

    A ValueError from the model's constructor (an impossible combination of options)
    becomes an InputError; any other exception is a bug and propagates unchanged.
    """
    validate_options(name, options)
    spec = get_model(name)
    try:
        return spec.cls(inputs, **{**spec.defaults, **options})
    except ValueError as exc:
        raise InputError(f"model {spec.name!r}: {exc}") from None
