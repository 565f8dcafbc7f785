"""Diagnose an MPSEA run: rank its test links with each part of the model (cosine Hits@1, test candidates).

    python benchmarks/mpsea_rank_parts.py RUN_DIR

Loads the run's last checkpoint and prints, for every modality, Hits@1 of the unfused embedding ``x_m``
and of the fused token ``h_m``, then of the joint embedding, with the mean norm of each part, then of the joint rebuilt at each fusion level
(0 = unfused parts, 1 = fused tokens) for every entity (docs/models/mpsea.md, "Solved" and CPRL's finding).
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

from kgalign.data.store import load_dataset
from kgalign.features.store import load_features
from kgalign.models.inputs import build_inputs
from kgalign.models.registry import build_model
from kgalign.training.checkpoint import load_checkpoint


def hits1(emb: torch.Tensor, test: torch.Tensor) -> float:
    """Cosine Hits@1 of KG1 -> KG2 over the test links' own entities; emb (n, d), test (T, 2)."""
    a = F.normalize(emb[test[:, 0]].float(), dim=-1)
    b = F.normalize(emb[test[:, 1]].float(), dim=-1)
    return float(((a @ b.t()).argmax(1) == torch.arange(len(test))).float().mean())


def main(run: str) -> None:
    cfg = json.load(open(f"{run}/config.json"))
    ds = load_dataset(cfg["dataset"])
    mods = cfg["modalities"]
    feats = load_features(cfg["dataset"], list(mods) + (["numeric_present"] if "numeric" in mods else []), dense=True)
    model = build_model(cfg["model"]["name"], build_inputs(ds, feats), **{k: v for k, v in cfg["model"].items() if k != "name"})
    tensors, _ = load_checkpoint(f"{run}/checkpoints")
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    model.eval()
    test = torch.as_tensor(ds.links_for("test"))
    with torch.no_grad():
        out = model()
    hidden = out.aux["hidden"]
    for i, m in enumerate(model.names):
        x, h = out[m], hidden[:, i]
        print(
            f"{m:10s} x: H@1 {hits1(x, test):.4f} norm {float(x.norm(dim=-1).mean()):.3f}   "
            f"h: H@1 {hits1(h, test):.4f} norm {float(h.norm(dim=-1).mean()):.3f}"
        )
    print(f"joint      H@1 {hits1(out['joint'], test):.4f}; mean weights {[round(w, 3) for w in out.aux['weights'].mean(0).tolist()]}")
    # The joint rebuilt at one fusion level for every entity, with the model's weights (what CPRL chooses between).
    xs = [F.normalize(out[m].float(), dim=-1) for m in model.names]
    hs = [F.normalize(t.float(), dim=-1) for t in hidden.unbind(1)]
    w = out.aux["weights"].float()
    for level in (0.0, 0.5, 1.0):
        parts = [w[:, i : i + 1] * F.normalize((1 - level) * a + level * b, dim=-1) for i, (a, b) in enumerate(zip(xs, hs, strict=True))]
        print(f"joint at level {level:g}: H@1 {hits1(torch.cat(parts, 1), test):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
