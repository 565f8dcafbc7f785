"""CPRL's policy network, reward and policy-gradient loss (MPSEA Sec. 3.5).

The paper's policy "processes the concatenated joint embedding J and mutual
information score" and outputs "the action probability distribution"; the
reward "integrates the mutual information score and the cosine similarity"
with a threshold and a reward/penalty mechanism; the policy is updated so that
"actions that yield higher rewards" become more likely. The state, the actions
and the formulas are not given; our choices (docs/models/mpsea.md):

- action = a fusion level ``lambda`` from a small set: how much of the fused
  (pre-synergistic, transformer) token versus the unfused encoder output goes
  into the joint embedding, per entity (the paper's "adaptive multi-level
  feature fusion"; Zeng et al. 2021, which MPSEA cites, also lets the policy
  choose how features are combined);
- reward of an anchor pair = ``cos(J_a, J_b) + mi_weight * MI`` plus ``bonus``
  when it reaches ``threshold`` and minus ``penalty`` otherwise;
- REINFORCE with the batch-mean reward as baseline (stateless, so data-parallel
  replicas stay identical) and an entropy bonus against early collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.layers import mlp


class FusionPolicy(nn.Module):
    """``pi(a | s)`` over ``num_actions`` fusion levels from the state ``s = [J || MI]``.

    Args:
        state_dim: width of J plus 1; hidden: MLP width; num_actions: A.
    Shapes:
        forward(state (N, state_dim)) -> logits (N, A)
    """

    def __init__(self, state_dim: int, hidden: int = 64, num_actions: int = 3):
        super().__init__()
        self.net = mlp([state_dim, hidden, num_actions])

    def forward(self, state: Tensor) -> Tensor:
        return self.net(state).float()


def cprl_reward(cosine: Tensor, mi: Tensor, threshold: float, mi_weight: float, bonus: float = 0.5, penalty: float = 0.5) -> Tensor:
    """Reward per anchor pair: ``score = cosine + mi_weight * mi``, then ``+bonus`` if
    ``score >= threshold`` else ``-penalty``. All (B,) -> (B,)."""
    score = cosine + mi_weight * mi
    return score + torch.where(score >= threshold, torch.full_like(score, bonus), torch.full_like(score, -penalty))


def reinforce_loss(logits: Tensor, actions: Tensor, reward: Tensor, entropy_weight: float = 0.01) -> Tensor:
    """``-mean((r - mean r) log pi(a|s)) - entropy_weight * mean H(pi)``.

    Args:
        logits: (N, A) policy logits (the only tensor with gradient);
        actions: LongTensor (N,); reward: (N,) detached.
    """
    logp = F.log_softmax(logits, -1)
    chosen = logp.gather(1, actions.unsqueeze(1)).squeeze(1)
    advantage = (reward - reward.mean()).detach()
    entropy = -(logp.exp() * logp).sum(-1).mean()
    return -(advantage * chosen).mean() - entropy_weight * entropy
