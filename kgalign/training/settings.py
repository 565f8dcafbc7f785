"""Training defaults and resolution of the full run configuration.

The resolved config (saved as ``RUN/config.json``)::

    {"dataset": "/abs/path", "modalities": [...] | null,
     "model": {"name": "noco", <every constructor argument>},
     "train": {epochs, batch_size, lr, weight_decay, betas, eps, warmup, schedule, grad_clip,
               amp, seed, device, eval_every, patience, select_on, select_metric,
               checkpoint_every, decisions, minibatch, fanout, memory_budget_gib,
               loss_rows_only},
     "iterative": {enabled, start, step, reset_every, add_every, lr_factor, reload_best},
     "eval": {csls_k, valid_candidates, sample}}
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any

from kgalign.config import deep_merge, get_path
from kgalign.errors import InputError
from kgalign.rundir import HASH_EXCLUDE  # noqa: F401  (re-exported: the keys --resume may change)

TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 500,
    "batch_size": 3500,
    "lr": 5e-4,
    "weight_decay": 1e-4,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "warmup": 0.15,
    "schedule": "cosine",
    "grad_clip": 1.0,
    "amp": "auto",
    "seed": 42,
    "device": "auto",
    "eval_every": 5,
    "patience": 20,
    "select_on": "valid",
    "select_metric": "csls.l2r.mrr",
    "checkpoint_every": 10,
    "decisions": None,  # a review decisions file: accepted pairs become seeds, rejected ones known negatives
    "decisions_sha256": None,  # set by the trainer from that file, so --resume refuses a changed file
    "minibatch": "auto",  # true | false | auto: mini-batch when the full-graph estimate exceeds the budget
    "fanout": 10,  # neighbours sampled per hop in mini-batch training (int or one per GAT layer; -1 = all)
    "memory_budget_gib": None,  # the auto rule's budget; null = 80 % of the GPU or half of the RAM
    # full-graph steps: per-row modules on the loss's rows only (models that support it; training/rowstep.py)
    "loss_rows_only": True,
}
ITERATIVE_DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "start": None,  # resolved to epochs // 2
    "step": 5,
    "reset_every": 25,
    "add_every": 50,
    "lr_factor": 0.2,
    "reload_best": True,
}
# valid_candidates "pool": valid links are ranked against every entity not in a training link, a pool
# at least as hard as the test links' own (benchmark) pool, so selection keeps discriminating.
# sample: rank a seeded sample of that many links per split during training (cosine only), for graphs
# whose full evaluation would cost more than the training (evaluation/sampled.py); null = every link.
EVAL_DEFAULTS: dict[str, Any] = {"csls_k": 3, "valid_candidates": "pool", "sample": None}
# Registry ``train_defaults`` key -> our ``train`` key (the reference runs' settings per model).
_REGISTRY_TRAIN_KEYS = {
    "lr": "lr",
    "weight_decay": "weight_decay",
    "eps": "eps",
    "batch_size": "batch_size",
    "epochs": "epochs",
    "warmup_ratio": "warmup",
    "schedule": "schedule",
    "grad_clip": "grad_clip",
}
SCHEDULES = ("cosine", "constant")

TOP_LEVEL = {"dataset", "modalities", "model", "train", "iterative", "eval"}
DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
SELECT_ON = ("valid", "test", "last")
AMP = ("auto", "off", "fp16", "bf16")


def defaults() -> dict:
    return {
        "dataset": None,
        "modalities": None,
        "model": {},
        "train": copy.deepcopy(TRAIN_DEFAULTS),
        "iterative": copy.deepcopy(ITERATIVE_DEFAULTS),
        "eval": copy.deepcopy(EVAL_DEFAULTS),
    }


def with_new_defaults(old: dict) -> dict:
    """``old`` (a run's saved config) with the ``train``, ``iterative`` and ``eval`` keys it lacks filled with today's
    defaults: keys added to kgalign after the run started, so ``--resume`` accepts the run when that is all that
    differs. Model options are not filled (a new model option may change what is computed)."""
    out = copy.deepcopy(old)
    for section, defs in (("train", TRAIN_DEFAULTS), ("iterative", ITERATIVE_DEFAULTS), ("eval", EVAL_DEFAULTS)):
        if isinstance(out.get(section), dict):
            for key, value in defs.items():
                out[section].setdefault(key, copy.deepcopy(value))
    return out


def build_config(
    dataset: str | os.PathLike | None,
    model: str | None,
    *,
    config: dict | str | os.PathLike | None = None,
    sets: list[str] | tuple[str, ...] = (),
    flags: dict | None = None,
    kwargs: dict | None = None,
    default_model: str | None = None,
) -> dict:
    """The one way a run's configuration is assembled, for the CLI and the Python API.

    Layers, lowest first: built-in defaults < the model's reference training settings
    < ``config`` (a YAML/JSON file or a dict) < ``sets`` (``--set a.b=value``) <
    ``flags`` (explicit command-line flags, nested) and ``kwargs`` (Python keyword
    overrides, see :func:`split_kwargs`). ``dataset``/``model`` given here win; ``default_model`` is
    used only when no layer names a model.
    Returns the validated, resolved config (see the module docstring).
    """
    from kgalign.config import load_config_file, parse_overrides

    base = load_config_file(config) if isinstance(config, (str, os.PathLike)) else copy.deepcopy(config or {})
    if not isinstance(base, dict):
        raise InputError(f"config must be a mapping of sections, got {type(base).__name__}")
    user: dict = {}
    for layer in (base, parse_overrides(sets), flags or {}, split_kwargs(kwargs or {}, model or "")):
        user = deep_merge(user, _model_shorthand(layer))
    if model is None and not get_path(user, "model.name") and default_model:
        model = default_model
    return resolve_config(user, dataset=dataset, model=model)


def _model_shorthand(layer: dict) -> dict:
    """``model: NAME`` is short for ``model: {name: NAME}`` (in every layer, before merging)."""
    if isinstance(layer.get("model"), str):
        return {**layer, "model": {"name": layer["model"]}}
    return layer


def _check_shape(user: dict) -> None:
    """Sections are mappings; unknown sections are refused (nothing is silently ignored)."""
    unknown = set(user) - TOP_LEVEL
    if unknown:
        raise InputError(f"unknown config section(s) {sorted(unknown)}; known: {sorted(TOP_LEVEL)}")
    for section in ("model", "train", "iterative", "eval"):
        if section in user and not isinstance(user[section], dict):
            raise InputError(
                f"config section {section!r} must be a mapping of options (e.g. {section}.<option>=value), "
                f"got {type(user[section]).__name__} {user[section]!r}"
            )
    if "dataset" in user and user["dataset"] is not None and not isinstance(user["dataset"], (str, os.PathLike)):
        raise InputError(f"dataset must be a path, got {user['dataset']!r}")


def resolve_config(user: dict, dataset: str | os.PathLike | None = None, model: str | None = None) -> dict:
    """Merge defaults, model defaults and ``user`` (already merged file < --set < flags).

    ``dataset`` / ``model`` given here win over the same keys in ``user``.
    """
    from kgalign.models.registry import get_model, list_models, validate_options

    user = _model_shorthand(copy.deepcopy(user))
    _check_shape(user)
    if dataset is not None:
        user["dataset"] = str(dataset)
    if model is not None:
        user.setdefault("model", {})["name"] = model
    name = get_path(user, "model.name")
    if not name:
        raise InputError(f"no model given: use --model NAME ({', '.join(list_models())}) or model.name in the config file")
    if not isinstance(name, str):
        raise InputError(f"model.name must be a model name, got {name!r}")
    if not user.get("dataset"):
        raise InputError("no dataset given")
    name = name.strip().lower()
    spec = get_model(name)
    base = defaults()
    base["model"] = {"name": name, **copy.deepcopy(spec.defaults)}
    for src, dst in _REGISTRY_TRAIN_KEYS.items():
        if src in spec.train_defaults:
            value = spec.train_defaults[src]
            base["train"][dst] = 0.0 if (dst == "grad_clip" and value is None) else value
    user["model"]["name"] = name
    for section in ("train", "iterative", "eval"):
        extra = set(user.get(section) or {}) - set(base[section])
        if extra:
            raise InputError(f"unknown option(s) {sorted(f'{section}.{k}' for k in extra)}; known: {sorted(base[section])}")
    validate_options(name, user["model"])
    cfg = deep_merge(base, user)
    cfg["dataset"] = str(Path(cfg["dataset"]).expanduser().resolve())
    _validate(cfg)
    it = cfg["iterative"]
    if it["start"] is None:
        it["start"] = cfg["train"]["epochs"] // 2
    return cfg


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise InputError(f"{key}: {msg}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _normalise(cfg: dict) -> None:
    """Python values to the config's JSON forms: tuples as lists, paths as strings, YAML's ``off`` (False) as "off"."""
    t = cfg["train"]
    if isinstance(t["betas"], tuple):
        t["betas"] = list(t["betas"])
    if isinstance(cfg["modalities"], tuple):
        cfg["modalities"] = list(cfg["modalities"])
    if isinstance(t["decisions"], os.PathLike):
        t["decisions"] = os.fspath(t["decisions"])
    if t["amp"] is False:  # YAML 1.1 reads `amp: off` as a boolean
        t["amp"] = "off"
    if isinstance(t["device"], str):
        t["device"] = t["device"].strip().lower()


def _validate_train(t: dict) -> None:
    for key in ("epochs", "eval_every", "checkpoint_every"):
        _check(_is_int(t[key]) and t[key] >= 1, f"train.{key}", f"expected an integer >= 1, got {t[key]!r}")
    _check(_is_int(t["seed"]) and t["seed"] >= 0, "train.seed", f"expected an integer >= 0, got {t['seed']!r}")
    _check(_is_int(t["patience"]) and t["patience"] >= 0, "train.patience", "expected an integer >= 0 (0 disables early stopping)")
    bs = t["batch_size"]
    _check(bs is None or (_is_int(bs) and bs >= 1), "train.batch_size", f"expected an integer >= 1 or null (one batch), got {bs!r}")
    for key in ("lr", "weight_decay", "eps", "warmup", "grad_clip"):
        _check(_is_number(t[key]) and t[key] >= 0, f"train.{key}", f"expected a finite number >= 0, got {t[key]!r}")
    _check(t["warmup"] <= 1, "train.warmup", "is a fraction of the training steps, expected 0..1")
    betas = t["betas"]
    _check(
        isinstance(betas, list) and len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas),
        "train.betas",
        f"expected two numbers in [0, 1), got {betas!r}",
    )
    _check(t["schedule"] in SCHEDULES, "train.schedule", f"expected one of {SCHEDULES}, got {t['schedule']!r}")
    _check(t["select_on"] in SELECT_ON, "train.select_on", f"expected one of {SELECT_ON}, got {t['select_on']!r}")
    # checked here, not at the first evaluation, so that a typo fails before the run directory is written
    parts = str(t["select_metric"]).split(".")
    _check(
        len(parts) == 3
        and parts[0] in ("cosine", "csls")
        and parts[1] in ("l2r", "r2l")
        and parts[2] in ("hits@1", "hits@5", "hits@10", "mrr", "mr"),
        "train.select_metric",
        "expected SIMILARITY.DIRECTION.METRIC (cosine|csls . l2r|r2l . hits@1|hits@5|hits@10|mrr|mr), "
        f"e.g. csls.l2r.mrr; got {t['select_metric']!r}",
    )
    _check(isinstance(t["amp"], str) and t["amp"].lower() in AMP, "train.amp", f"expected one of {AMP}, got {t['amp']!r}")
    _check(
        isinstance(t["device"], str) and DEVICE.match(t["device"]) is not None,
        "train.device",
        f"expected auto, cpu, cuda or cuda:N, got {t['device']!r}",
    )
    _validate_minibatch(t)
    _check(isinstance(t["loss_rows_only"], bool), "train.loss_rows_only", f"expected true or false, got {t['loss_rows_only']!r}")
    dec = t["decisions"]
    _check(dec is None or (isinstance(dec, str) and dec), "train.decisions", f"expected a file path, got {dec!r}")
    if dec is not None:
        t["decisions"] = str(Path(dec).expanduser().resolve())


def _validate_minibatch(t: dict) -> None:
    if isinstance(t["minibatch"], str):
        t["minibatch"] = {"true": True, "false": False}.get(t["minibatch"].strip().lower(), t["minibatch"].strip().lower())
    _check(t["minibatch"] in (True, False, "auto"), "train.minibatch", f"expected true, false or auto, got {t['minibatch']!r}")
    fan = t["fanout"]
    ok = (_is_int(fan) and (fan >= 1 or fan == -1)) or (
        isinstance(fan, (list, tuple)) and len(fan) >= 1 and all(_is_int(v) and (v >= 1 or v == -1) for v in fan)
    )
    _check(ok, "train.fanout", f"expected an integer >= 1 or -1 (all neighbours), or a list of them (one per GAT layer), got {fan!r}")
    if isinstance(fan, tuple):
        t["fanout"] = list(fan)
    budget = t["memory_budget_gib"]
    _check(
        budget is None or (_is_number(budget) and budget > 0), "train.memory_budget_gib", f"expected a number > 0 or null, got {budget!r}"
    )


def _validate(cfg: dict) -> None:
    _normalise(cfg)
    t, it = cfg["train"], cfg["iterative"]
    _validate_train(t)
    _check(_is_int(cfg["eval"]["csls_k"]) and cfg["eval"]["csls_k"] >= 1, "eval.csls_k", "expected an integer >= 1")
    vc = cfg["eval"]["valid_candidates"]
    _check(vc in ("pool", "test", "all"), "eval.valid_candidates", f"expected pool, test or all, got {vc!r}")
    sample = cfg["eval"]["sample"]
    _check(sample is None or (_is_int(sample) and sample >= 1), "eval.sample", f"expected an integer >= 1 or null, got {sample!r}")
    _check(
        sample is None or not str(t["select_metric"]).startswith("csls."),
        "train.select_metric",
        "eval.sample ranks by cosine only (CSLS needs every query's neighbours): "
        f"use a cosine metric, e.g. --select-metric cosine.l2r.mrr (got {t['select_metric']!r})",
    )
    for key in ("enabled", "reload_best"):
        _check(isinstance(it[key], bool), f"iterative.{key}", f"expected true or false, got {it[key]!r}")
    for key in ("step", "reset_every", "add_every"):
        _check(_is_int(it[key]) and it[key] >= 1, f"iterative.{key}", "expected an integer >= 1")
    _check(_is_number(it["lr_factor"]) and it["lr_factor"] > 0, "iterative.lr_factor", f"expected a number > 0, got {it['lr_factor']!r}")
    if it["start"] is not None:
        _check(
            _is_int(it["start"]) and 0 <= it["start"] < t["epochs"],
            "iterative.start",
            f"expected an epoch in 0..{t['epochs'] - 1}, got {it['start']!r}",
        )
    mods = cfg["modalities"]
    _check(
        mods is None or (isinstance(mods, list) and all(isinstance(m, str) for m in mods) and mods),
        "modalities",
        "expected a list of modality names",
    )


def split_kwargs(overrides: dict, model_name: str) -> dict:
    """Python-API keyword overrides to a nested config: ``lr=1e-3`` -> train,
    ``csls_k`` -> eval, ``model__hidden=64`` / ``iterative__start=5`` -> dotted path,
    other names -> model options."""
    out: dict = {}
    for key, value in overrides.items():
        if "__" in key:
            node = out
            parts = key.split("__")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = value
        elif key in TRAIN_DEFAULTS:
            out.setdefault("train", {})[key] = value
        elif key in EVAL_DEFAULTS:
            out.setdefault("eval", {})[key] = value
        elif key in ("iterative", "modalities"):
            if key == "iterative" and isinstance(value, bool):
                out.setdefault("iterative", {})["enabled"] = value
            else:
                out[key] = value
        else:
            out.setdefault("model", {})[key] = value
    return out
