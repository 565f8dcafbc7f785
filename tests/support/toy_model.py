"""A small model that exercises the engine's contract beyond the shipped models:
structured numeric inputs (RBF of (entity, attribute, value) facts), a second
optimizer for an auxiliary network, after_step state and step metrics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.base import AlignmentModel, ModelOutput
from kgalign.models.layers import GraphEncoder, mlp, reset_children
from kgalign.models.losses import pair_log_probs

NAME = "toy-numeric"


def register() -> None:
    from kgalign.models import registry

    if NAME not in registry.list_models():
        registry.register_model(NAME, "support.toy_model:NumericToy", summary="test model: GAT + RBF numeric facts + critic")


def unregister() -> None:
    from kgalign.models import registry

    registry.unregister_model(NAME)


class NumericToy(AlignmentModel):
    def __init__(self, inputs, hidden: int = 16, rbf: int = 8, tau: float = 0.1, critic_hidden: int = 16):
        super().__init__(inputs)
        facts = inputs.numeric
        if facts is None:
            raise ValueError("needs numeric features")
        self.graph = GraphEncoder(self.num_entities, hidden, heads=1, layers=1, concat=False)
        self.register_buffer("fact_entity", facts.entity, persistent=False)
        self.register_buffer("fact_attribute", facts.attribute, persistent=False)
        self.register_buffer("fact_value", facts.value.float(), persistent=False)
        self.register_buffer("centres", torch.linspace(0, 1, rbf), persistent=False)
        self.attribute = nn.Embedding(facts.num_attributes, hidden)
        self.value = nn.Linear(rbf, hidden)
        self.critic = mlp([4 * hidden, critic_hidden, 1])  # a pair of joint embeddings
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.tau = tau
        self.reset_parameters()
        self.to(self.edge_index.device)

    def reset_parameters(self) -> None:
        reset_children(self)
        self.steps_seen.zero_()

    def forward(self) -> ModelOutput:
        g = self.graph(self.edge_index)
        basis = torch.exp(-((self.fact_value[:, None] - self.centres) ** 2) / 0.02)
        fact = self.value(basis) * self.attribute(self.fact_attribute)
        num = torch.zeros(self.num_entities, fact.shape[1], dtype=fact.dtype, device=fact.device).index_add_(0, self.fact_entity, fact)
        joint = torch.cat([F.normalize(g, dim=-1), F.normalize(num, dim=-1)], -1)
        return ModelOutput({"graph": g, "numeric": num, "joint": joint})

    def loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, dict[str, float]]:
        ab, ba, _ = pair_log_probs(out["joint"], links, self.tau)
        align = -(0.5 * ab + 0.5 * ba).mean()
        a, b = out["joint"][links[:, 0]].detach(), out["joint"][links[:, 1]].detach()
        pos = self.critic(torch.cat([a, b], -1)).squeeze(-1)
        neg = self.critic(torch.cat([a, b.roll(1, 0)], -1)).squeeze(-1)
        critic = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
            neg, torch.zeros_like(neg)
        )
        out.aux["critic_accuracy"] = ((pos > 0).float().mean() + (neg < 0).float().mean()).detach() / 2
        return align + critic, {"align": float(align.detach()), "critic": float(critic.detach())}

    def optimizer_groups(self) -> list[dict]:
        critic = list(self.critic.parameters())
        ids = {id(p) for p in critic}
        main = [p for p in self.parameters() if id(p) not in ids]
        return [{"name": "main", "params": main}, {"name": "critic", "params": critic, "lr_scale": 2.0, "weight_decay": 0.0}]

    def after_step(self, out: ModelOutput) -> None:
        self.steps_seen += 1

    @torch.no_grad()
    def step_metrics(self, out: ModelOutput) -> dict[str, float]:
        return {"critic.accuracy": float(out.aux.get("critic_accuracy", 0.0))}

    @torch.no_grad()
    def epoch_metrics(self) -> dict[str, float]:
        return {"steps_seen": float(self.steps_seen)}
