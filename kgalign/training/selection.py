"""Model selection and early stopping on one split's metric.

The metric is a dotted path into an evaluation result, e.g. ``csls.l2r.mrr``
(``{"cosine"|"csls": {"l2r"|"r2l": {"hits@1", ..., "mrr", "mr"}}}``). Lower is
better only for ``mr``. Patience counts evaluations without improvement;
0 disables early stopping.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from kgalign.errors import InputError
from kgalign.training.loop import Callback


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


def pool_text(metrics: dict) -> str:
    """``"1234 x 1100"``: the KG1 x KG2 candidate counts of an evaluation (its ``candidates`` record), with the
    number of links ranked when they were a sample (``"1234 x 1100, 500 sampled links"``)."""
    c = metrics.get("candidates")
    if not c:
        return "?"
    return f"{c['kg1']} x {c['kg2']}" + (f", {c['sampled']} sampled links" if "sampled" in c else "")


class ModelSelection(Callback):
    """Evaluates every ``every`` epochs (and at the last), keeps the selected weights,
    and requests a stop after ``patience`` evaluations without improvement.

    Valid and test links are both ranked (test is only reported); the selection split
    alone decides. Patience does not count before ``armed()`` is true (iterative
    training counts it from the start of bootstrapping).
    """

    key = "selection"

    def __init__(
        self,
        selection: Selection,
        *,
        every: int,
        last_epoch: int,
        splits: dict,
        csls_k: int,
        candidates: dict | None = None,
        kg=None,
        train_links=None,
        armed=None,
        log=None,
        shard=None,
        sample: int | None = None,
    ):
        self.selection = selection
        self.every, self.last_epoch = every, last_epoch
        self.splits = {name: links for name, links in splits.items() if len(links)}
        self.csls_k = csls_k
        # {split: "test" | "pool" | "all"}; "pool" ranks among every entity not in ``train_links``
        # (the dataset's seed links, fixed so figures compare across epochs and bootstrapping).
        self.candidates = dict(candidates or {})
        self.kg, self.train_links = kg, train_links
        self.armed = armed or (lambda: True)
        self.log = log
        self.best_state: dict | None = None
        self.timing = {"eval_seconds": 0.0, "evaluations": 0}
        self.message = ""
        self.shard = shard  # a QueryShard under torchrun: each rank ranks its share of the query rows
        self.sample = sample  # rank a fixed seeded sample of each split's links (cosine only; evaluation/sampled.py)

    @property
    def stop_requested(self) -> bool:
        return self.selection.stopped

    def evaluate(self, emb) -> dict:
        """``{split: metrics}`` of joint embeddings (n, D); with a shard, the same result on every rank."""
        from kgalign.evaluation.ranking import evaluate_embeddings

        if self.sample is not None:
            return self._evaluate_sampled(emb)
        run = evaluate_embeddings
        if self.shard is not None:
            from functools import partial

            from kgalign.evaluation.sharded import evaluate_embeddings_sharded

            run = partial(evaluate_embeddings_sharded, shard=self.shard)
        return {
            name: run(
                emb,
                links,
                candidates=self.candidates.get(name, "test"),
                kg=self.kg,
                exclude=self.train_links,
                csls_k=self.csls_k,
            )
            for name, links in self.splits.items()
        }

    def _evaluate_sampled(self, emb) -> dict:
        from kgalign.evaluation.sampled import SPLIT_SEEDS, evaluate_sampled

        # the same sample at every evaluation (seed per split), so the figures compare across epochs
        return {
            name: evaluate_sampled(
                emb,
                links,
                sample=self.sample,
                seed=SPLIT_SEEDS.get(name, 0),
                candidates=self.candidates.get(name, "test"),
                kg=self.kg,
                exclude=self.train_links,
            )
            for name, links in self.splits.items()
        }

    def on_epoch_end(self, loop, record: dict) -> None:
        self.message = ""
        if loop.epoch % self.every and loop.epoch != self.last_epoch:
            return
        t0 = time.perf_counter()
        evals = self.evaluate(loop.embeddings())
        self.timing["eval_seconds"] += time.perf_counter() - t0
        self.timing["evaluations"] += 1
        record.update(evals)
        sel = self.selection
        value = metric_value(evals[sel.split], sel.metric) if sel.split in evals else None
        if sel.update(value, loop.epoch, count_patience=self.armed()):
            record["selected"] = True
            if sel.split != "last":
                self.best_state = {k: v.detach().cpu().clone() for k, v in loop.model.state_dict().items()}
        shown = [s for s in ("valid", "test") if s in evals]
        self.message = "; ".join(
            f"{s} {sel.metric} {metric_value(evals[s], sel.metric):.4f} ({pool_text(evals[s])} candidates)" for s in shown
        )
        if self.log is not None:
            self.log(f"epoch {loop.epoch}: loss {record['loss']:.4f}; {self.message}" + (" (selected)" if record.get("selected") else ""))

    def restore_best(self, model, device) -> bool:
        """Load the selected weights into ``model``; False when there are none."""
        if self.selection.split == "last" or self.best_state is None:
            return False
        model.load_state_dict({k: v.to(device) for k, v in self.best_state.items()})
        return True

    def state_dict(self):
        from kgalign.training.checkpoint import add_prefix

        tensors = add_prefix(self.best_state, "best.") if self.best_state is not None else {}
        return tensors, {"selection": self.selection.state_dict(), "timing": self.timing}

    def load_state_dict(self, tensors, meta) -> None:
        from kgalign.training.checkpoint import strip_prefix

        self.best_state = strip_prefix(tensors, "best.") or None
        self.selection.load_state_dict(meta["selection"])
        self.timing = dict(meta["timing"])
