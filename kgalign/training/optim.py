"""The optimizers of a run: one per name in the model's ``optimizer_groups()``.

Every optimizer is AdamW with the run's betas and eps, in torch's fused implementation where the parameters
allow it (CPU or CUDA floating-point tensors): one pass over each parameter instead of the multi-tensor
version's temporaries, the same update up to rounding. At a million entities per side the entity table's
update took 1.35 CPU-s per step multi-tensor and 0.38 fused (docs/benchmarks.md). A group's learning rate is
``lr_scale`` times the scheduled rate, its weight decay its own or the run's.
Clipping applies per optimizer, so an auxiliary network (a policy, an MI
estimator) cannot eat the main encoders' gradient budget.
"""

from __future__ import annotations

import torch

from kgalign.training.checkpoint import add_prefix, optimizer_from_flat, optimizer_to_flat, strip_prefix


def _fusable(groups: list[dict]) -> bool:
    """True when torch's fused AdamW accepts every parameter of ``groups`` (floating point, on CPU or CUDA)."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in params)


class Optimizers:
    """Named AdamW optimizers built from ``model.optimizer_groups()``.

    Args:
        groups: the model's groups (dicts with ``params`` and optional ``name``,
            ``lr_scale``, ``weight_decay``).
        lr: peak learning rate of the current schedule phase.
        weight_decay, betas, eps: the run's AdamW settings.
    """

    def __init__(self, groups: list[dict], lr: float, weight_decay: float, betas: tuple[float, float], eps: float) -> None:
        by_name: dict[str, list[dict]] = {}
        seen: set[int] = set()
        for g in groups:
            params = [p for p in g["params"] if p.requires_grad]
            dup = [id(p) for p in params if id(p) in seen]
            if dup:
                raise ValueError("a parameter appears in more than one optimizer group")
            seen.update(id(p) for p in params)
            group = {
                "params": params,
                "lr": lr * float(g.get("lr_scale", 1.0)),
                "lr_scale": float(g.get("lr_scale", 1.0)),
                "weight_decay": weight_decay if g.get("weight_decay") is None else float(g["weight_decay"]),
            }
            by_name.setdefault(str(g.get("name", "main")), []).append(group)
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            name: torch.optim.AdamW(gs, lr=lr, betas=betas, eps=eps, fused=_fusable(gs) or None) for name, gs in sorted(by_name.items())
        }

    @property
    def names(self) -> list[str]:
        return list(self.optimizers)

    def set_lr(self, lr: float) -> None:
        """Scheduled rate ``lr`` times each group's ``lr_scale``."""
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_scale"]

    def zero_grad(self) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)

    def step(self, scaler: torch.amp.GradScaler, grad_clip: float) -> None:
        """Unscale and clip (per optimizer) when asked, then step every optimizer through ``scaler``."""
        for opt in self.optimizers.values():
            if grad_clip > 0:
                scaler.unscale_(opt)
                params = [p for g in opt.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            scaler.step(opt)
        scaler.update()

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors (``optim.<name>.…``) and JSON for a checkpoint."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, dict] = {}
        for name, opt in self.optimizers.items():
            t, js = optimizer_to_flat(opt)
            tensors.update(add_prefix(t, f"{name}."))
            meta[name] = js
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if sorted(meta) != sorted(self.optimizers):
            raise ValueError(f"checkpoint has optimizers {sorted(meta)}, the model declares {sorted(self.optimizers)}")
        for name, opt in self.optimizers.items():
            state = optimizer_from_flat(strip_prefix(tensors, f"{name}."), meta[name])
            for group in state["param_groups"]:
                # the implementation is this process's choice, not the checkpoint's (one written before AdamW ran
                # fused would otherwise resume unfused); the update is the same
                group["fused"], group["foreach"] = opt.defaults["fused"], opt.defaults["foreach"]
            opt.load_state_dict(state)
