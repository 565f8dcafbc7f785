"""Model selection and early stopping on one split's metric.

The metric is a dotted path into an evaluation result, e.g. ``csls.l2r.mrr``
(``{"cosine"|"csls": {"l2r"|"r2l": {"hits@1", ..., "mrr", "mr"}}}``). Lower is
better only for ``mr``. Patience counts evaluations without improvement;
0 disables early stopping.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kgalign.errors import InputError


def metric_value(metrics: dict, path: str) -> float:
    node = metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"selection metric {path!r} not found in evaluation results (e.g. csls.l2r.mrr, cosine.l2r.hits@1)")
        node = node[part]
    return float(node)


@dataclass
class Selection:
    split: str  # valid | test | last
    metric: str
    patience: int
    best_value: float | None = None
    best_epoch: int | None = None
    bad_evals: int = 0
    stopped: bool = False

    @property
    def lower_is_better(self) -> bool:
        return self.metric.rsplit(".", 1)[-1] == "mr"

    def update(self, value: float | None, epoch: int, count_patience: bool = True) -> bool:
        """Record one evaluation; True when ``epoch`` becomes the selected one."""
        if self.split == "last" or value is None:
            self.best_epoch, self.best_value = epoch, value
            return True
        better = self.best_value is None or (value < self.best_value if self.lower_is_better else value > self.best_value)
        if better:
            self.best_value, self.best_epoch, self.bad_evals = value, epoch, 0
            return True
        if count_patience:
            self.bad_evals += 1
            if self.patience > 0 and self.bad_evals >= self.patience:
                self.stopped = True
        return False

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, st: dict) -> None:
        for k, v in st.items():
            setattr(self, k, v)
