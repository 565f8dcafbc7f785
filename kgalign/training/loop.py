"""The training loop: epochs of optimizer steps over shuffled link batches, with hooks.

One epoch shuffles the current training links with the loop's own generator and
cuts them into batches of ``batch_size``; one batch is one step::

    out = model(); total, parts = model.loss(out, links)      # inside AMP autocast
    backward; per-optimizer unscale + clip; optimizers step; zero_grad
    model.after_step(out)                                      # training-time state
    callbacks.after_step(loop, batch, out)

Everything else (evaluation and model selection, early stopping, bootstrapping,
checkpoints, the metrics file, progress) is a :class:`Callback`. Hooks, in order
of a run: ``on_fit_start``, then per epoch ``on_epoch_start``, ``after_step`` (per
step), ``on_epoch_end`` (with the epoch's record, in the order the callbacks were
given), and ``on_interrupt`` (before :class:`TrainingInterrupted` is raised) or
``on_fit_end``. A callback stops training by setting ``stop_requested``.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from kgalign.errors import KgalignError
from kgalign.training.distributed import DistInfo, TrainStep, any_rank, shard_links, sync_state
from kgalign.training.optim import Optimizers
from kgalign.training.schedule import Phase
from kgalign.training.signals import InterruptFlag


class TrainingInterrupted(KgalignError):
    """SIGINT/SIGTERM: the checkpoint was saved; exit status 130."""

    exit_code = 130


class Callback:
    """A training-loop hook; override what you need. ``key`` names its checkpoint state."""

    key: str = ""
    stop_requested: bool = False

    def on_fit_start(self, loop: TrainingLoop) -> None:
        pass

    def on_epoch_start(self, loop: TrainingLoop) -> None:
        pass

    def after_step(self, loop: TrainingLoop, batch: int, out) -> None:
        pass

    def on_epoch_end(self, loop: TrainingLoop, record: dict) -> None:
        pass

    def on_interrupt(self, loop: TrainingLoop) -> None:
        pass

    def on_fit_end(self, loop: TrainingLoop) -> None:
        pass

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, JSON) to checkpoint; empty when the callback keeps no state."""
        return {}, {}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        pass


@dataclass
class EpochProgress:
    """An epoch interrupted between steps: enough to finish it exactly on resume."""

    perm: torch.Tensor
    next_batch: int
    sums: dict = field(default_factory=dict)
    model_sums: dict = field(default_factory=dict)
    count: int = 0
    seconds: float = 0.0

    def meta(self) -> dict:
        return {
            "next_batch": self.next_batch,
            "sums": self.sums,
            "model_sums": self.model_sums,
            "count": self.count,
            "seconds": self.seconds,
        }


class TrainingLoop:
    """Runs epochs of steps for one model.

    Args:
        model: an :class:`~kgalign.models.base.AlignmentModel`.
        net: the module called per step, ``net(links) -> (total, parts, out)``
            (a :class:`~kgalign.training.distributed.TrainStep`, DDP-wrapped when distributed).
        links: (L, 2) int64 training links (seeds); bootstrapping may append to :attr:`links`.
        epochs: the last epoch of the run.
        batch_size: links per step; None = all links in one step.
        lr, warmup, schedule: the first schedule phase (it spans every epoch).
        weight_decay, betas, eps: AdamW settings for :class:`Optimizers`.
        grad_clip: max gradient norm per optimizer; 0 disables clipping.
        precision: a :class:`kgalign.device.Precision`; device: where the model lives.
        dist: the process group info; seed: seeds the shuffling generator.
        callbacks: hooks, called in this order.
        profile: time the parts of each step (forward, loss, backward, optimizer step)
            into the epoch record's ``"profile"`` (seconds; CUDA is synchronised
            between parts, so profiling slows GPU runs a little).
        embed: computes the joint embeddings (n, D) for evaluation and bootstrapping;
            default ``model.embed()`` (mini-batch runs: kgalign.training.minibatch.embed_layerwise).
    """

    def __init__(
        self,
        model,
        net: torch.nn.Module,
        links: np.ndarray,
        *,
        epochs: int,
        batch_size: int | None,
        lr: float,
        warmup: float,
        schedule: str,
        weight_decay: float,
        betas: tuple[float, float],
        eps: float,
        grad_clip: float,
        precision,
        device: torch.device,
        dist: DistInfo,
        seed: int,
        callbacks: list[Callback] | tuple[Callback, ...] = (),
        profile: bool = False,
        embed=None,
    ) -> None:
        self.model = model
        self.net = net
        self.links = np.ascontiguousarray(links, dtype=np.int64)
        self.source = np.zeros(len(self.links), dtype=np.int64)  # 0 seed, else the epoch that added the pair
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay, self.betas, self.eps = weight_decay, tuple(betas), eps
        self.grad_clip = grad_clip
        self.precision = precision
        self.device = device
        self.dist = dist
        self.callbacks = list(callbacks)
        self.epoch = 0  # epochs completed
        self.phase = Phase(0, epochs, float(lr), float(warmup), schedule)
        self.optimizers = self.make_optimizers(self.phase.lr)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)
        self.shuffle_gen = torch.Generator()
        self.shuffle_gen.manual_seed(seed)
        self.partial: EpochProgress | None = None
        self.timing = {"train_seconds": 0.0, "train_epochs": 0}
        self.profile = profile
        self._profile: dict[str, float] = {}
        self._embeddings: torch.Tensor | None = None  # of the current weights; dropped by every step
        self.embed = embed or model.embed

    # ------------------------------------------------------------ optimizers and schedule
    def make_optimizers(self, lr: float) -> Optimizers:
        groups = self.model.optimizer_groups()
        grouped = {id(p) for g in groups for p in g["params"]}
        missing = [n for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in grouped]
        if missing:
            raise ValueError(f"{type(self.model).__name__}.optimizer_groups() leaves out parameters: {missing[:5]}")
        return Optimizers(groups, lr, self.weight_decay, self.betas, self.eps)

    def start_phase(self, lr: float, warmup: float, schedule: str) -> None:
        """A new schedule phase from the current epoch to the end, with fresh optimizers."""
        self.phase = Phase(self.epoch, self.epochs, float(lr), float(warmup), schedule)
        self.optimizers = self.make_optimizers(self.phase.lr)

    def embeddings(self) -> torch.Tensor:
        """The model's joint embeddings (n, D), float, computed once per weight state: evaluation and
        bootstrapping at the same epoch share one full-graph pass."""
        if self._embeddings is None:
            self._embeddings = self.embed().detach().float()
        return self._embeddings

    def forget_embeddings(self) -> None:
        """Call after changing the weights outside a step (e.g. reloading the selected ones)."""
        self._embeddings = None

    @property
    def stop_requested(self) -> bool:
        return any(cb.stop_requested for cb in self.callbacks)

    # ------------------------------------------------------------ the run
    def fit(self, stop_after: int | None = None) -> str:
        """Train until the last epoch or a stop request: ``"finished"``, ``"stopped"``
        (a callback asked) or ``"paused"`` (``stop_after`` epochs ran in this call).

        Raises :class:`TrainingInterrupted` after SIGINT/SIGTERM (``on_interrupt`` ran first).
        """
        for cb in self.callbacks:
            cb.on_fit_start(self)
        ran = 0
        with InterruptFlag() as interrupt:
            while self.epoch < self.epochs and not self.stop_requested:
                if stop_after is not None and ran >= stop_after:
                    for cb in self.callbacks:
                        cb.on_fit_end(self)
                    return "paused"
                for cb in self.callbacks:
                    cb.on_epoch_start(self)
                record = self.run_epoch(interrupt)
                self.epoch += 1
                ran += 1
                for cb in self.callbacks:
                    cb.on_epoch_end(self, record)
                if any_rank(interrupt.set, self.dist, self.device):
                    self._interrupted(f"interrupted after epoch {self.epoch}")
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return "stopped" if self.stop_requested and self.epoch < self.epochs else "finished"

    def _interrupted(self, what: str) -> None:
        for cb in self.callbacks:
            cb.on_interrupt(self)
        raise TrainingInterrupted(what)

    def run_epoch(self, interrupt: InterruptFlag | None = None) -> dict:
        """One epoch of steps; returns its record (loss, parts, lr, model metrics, timing)."""
        self.net.train()
        n_links = len(self.links)
        bs = self.batch_size or n_links
        nb = math.ceil(n_links / bs)
        if self.partial is not None:
            prog, self.partial = self.partial, None
        else:
            prog = EpochProgress(torch.randperm(n_links, generator=self.shuffle_gen), 0)
        links_t = torch.from_numpy(self.links)
        t0 = time.perf_counter()
        for b in range(prog.next_batch, nb):
            batch = links_t[prog.perm[b * bs : (b + 1) * bs]]
            self._step(batch, b, nb, prog)
            if interrupt is not None and any_rank(interrupt.set, self.dist, self.device):
                prog.next_batch = b + 1
                prog.seconds += time.perf_counter() - t0
                self.partial = prog
                self._interrupted(f"interrupted during epoch {self.epoch + 1} (step {b + 1}/{nb})")
        extra = self.model.epoch_metrics()  # inside the epoch's time: it may cost a forward pass
        prog.seconds += time.perf_counter() - t0
        count = max(prog.count, 1)
        record = {
            "epoch": self.epoch + 1,
            "loss": prog.sums.get("loss", 0.0) / count,
            "lr": self.phase.lr_at(self.epoch, nb - 1, nb),  # the rate of the epoch's last step
            "train_links": n_links,
            "steps": nb,
            "seconds": round(prog.seconds, 4),
            "parts": {k: v / count for k, v in prog.sums.items() if k != "loss"},
        }
        if self.profile:
            record["profile"] = {k: round(v, 4) for k, v in self._profile.items()}
            self._profile = {}
        model_metrics = {k: v / count for k, v in prog.model_sums.items()}
        model_metrics.update(extra)
        if model_metrics:
            record["model"] = model_metrics
        self.timing["train_seconds"] += prog.seconds
        self.timing["train_epochs"] += 1
        return record

    def _tick(self, part: str | None, t0: float) -> float:
        """With profiling on: add the time since ``t0`` to ``part``; returns now."""
        if not self.profile:
            return t0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        if part is not None:
            self._profile[part] = self._profile.get(part, 0.0) + now - t0
        return now

    def _forward(self, local: torch.Tensor, t: float):
        with self.precision.autocast(self.device):
            # the plain step is timed in two parts; mini-batch and row steps as one "forward+loss"
            if self.profile and not self.dist.enabled and isinstance(self.net, TrainStep):
                out = self.model()
                t = self._tick("forward", t)
                loss, parts = self.model.loss(out, local)
                t = self._tick("loss", t)
            else:
                loss, parts, out = self.net(local)
                t = self._tick("forward+loss", t)
        return loss, parts, out, t

    def _step(self, batch: torch.Tensor, b: int, nb: int, prog: EpochProgress) -> None:
        local = shard_links(batch, self.dist).to(self.device)
        self.optimizers.set_lr(self.phase.lr_at(self.epoch, b, nb))
        loss, parts, out, t = self._forward(local, self._tick(None, 0.0))
        value = float(loss.detach())
        if not math.isfinite(value) and not self.scaler.is_enabled():
            raise KgalignError(
                f"the loss became {value} at epoch {self.epoch + 1}, step {b + 1}; lower the learning rate (--lr) or turn off --amp"
            )
        self.scaler.scale(loss).backward()
        t = self._tick("backward", t)
        self.optimizers.step(self.scaler, self.grad_clip)
        self.optimizers.zero_grad()
        self._embeddings = None
        self._tick("step", t)
        sub = getattr(out, "subgraph", None)  # a mini-batch step's output covers its subgraph's rows
        with self.model.on(sub) if sub is not None else nullcontext():
            self.model.after_step(out)
            metrics = self.model.step_metrics(out)
        if sub is not None:  # each rank updated its state from its own rows: agree on one
            sync_state(self.model, self.dist)
        w = len(batch)
        prog.count += w
        prog.sums["loss"] = prog.sums.get("loss", 0.0) + value * w
        for k, v in (parts or {}).items():
            prog.sums[k] = prog.sums.get(k, 0.0) + float(v) * w
        for k, v in metrics.items():
            prog.model_sums[k] = prog.model_sums.get(k, 0.0) + float(v) * w
        for cb in self.callbacks:
            cb.after_step(self, b, out)

    # ------------------------------------------------------------ checkpoint state
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        from kgalign.training.checkpoint import add_prefix
        from kgalign.training.seeding import capture_rng

        tensors = add_prefix(self.model.state_dict(), "model.")
        opt_t, opt_js = self.optimizers.state_dict()
        tensors.update(add_prefix(opt_t, "optim."))
        rng_t, rng_js = capture_rng(self.shuffle_gen)
        tensors.update(rng_t)
        tensors["links.train"] = torch.from_numpy(self.links)
        tensors["links.source"] = torch.from_numpy(self.source)
        meta = {
            "epoch": self.epoch,
            "optimizers": opt_js,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "phase": self.phase.state_dict(),
            "partial": None,
            "timing": self.timing,
            "rng": rng_js,
        }
        if self.partial is not None:
            tensors["partial.perm"] = self.partial.perm
            meta["partial"] = self.partial.meta()
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        from kgalign.training.checkpoint import strip_prefix
        from kgalign.training.seeding import restore_rng

        self.model.load_state_dict({k: v.to(self.device) for k, v in strip_prefix(tensors, "model.").items()})
        self._embeddings = None
        self.epoch = int(meta["epoch"])
        self.phase = Phase(**meta["phase"])
        self.optimizers = self.make_optimizers(self.phase.lr)
        self.optimizers.load_state_dict(strip_prefix(tensors, "optim."), meta["optimizers"])
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.links = tensors["links.train"].numpy().astype(np.int64)
        self.source = tensors["links.source"].numpy().astype(np.int64)
        self.timing = dict(meta["timing"])
        self.partial = None
        if meta.get("partial") is not None:
            self.partial = EpochProgress(perm=tensors["partial.perm"].long(), **meta["partial"])
        restore_rng(tensors, meta["rng"], self.shuffle_gen)
