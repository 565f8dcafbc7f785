"""The training pipeline: dataset + features -> model -> trained run directory.

Use from Python::

    from kgalign.training import train
    result = train("ds", model="noco", out_dir="run", epochs=50, lr=1e-3, model__hidden=128)
    result.results["valid"]["csls"]["l2r"]["hits@1"]

or build a resolved config and call ``Trainer(config, out_dir).run()``.

One epoch: the current training links (seed links plus bootstrapped pairs) are
shuffled with the trainer's own generator and cut into batches of
``train.batch_size``; every batch is one optimizer step on a full-graph forward
pass (``model()``) and ``model.loss(out, batch)``. Every ``eval_every`` epochs
the joint embeddings are evaluated on the valid and the test links; the
selection split (valid by default) alone decides the selected epoch and early
stopping. See docs/training.md for the schedule, bootstrapping and resume.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kgalign.config import config_hash, diff_configs
from kgalign.device import peak_memory, resolve_device, resolve_precision
from kgalign.errors import InputError, KgalignError, MissingResourceError
from kgalign.progress import Progress
from kgalign.training import rundir
from kgalign.training.bootstrap import ILSchedule, candidate_pools, intersect_pairs, mutual_nearest_neighbours
from kgalign.training.checkpoint import (
    add_prefix,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
    strip_prefix,
)
from kgalign.training.distributed import (
    any_rank,
    destroy_process_group,
    dist_from_env,
    init_process_group,
    shard_links,
    wrap_model,
)
from kgalign.training.schedule import Phase, set_lr
from kgalign.training.seeding import capture_rng, restore_rng, seed_everything
from kgalign.training.selection import Selection, metric_value
from kgalign.training.settings import HASH_EXCLUDE, resolve_config, split_kwargs
from kgalign.training.signals import InterruptFlag

log = logging.getLogger("kgalign.training")

TEST_SELECTION_WARNING = (
    "MODEL SELECTED ON THE TEST LINKS (--select-on test): paper-compatible protocol "
    "(MEAformer/NoCo style); the test metrics are optimistically biased and are not a held-out estimate."
)


class TrainingInterrupted(KgalignError):
    """SIGINT/SIGTERM: the checkpoint was saved; exit status 130."""

    exit_code = 130


@dataclass
class TrainResult:
    run_dir: Path
    config: dict
    finished: bool  # False when stopped by ``stop_after`` (resume to continue)
    epoch: int  # epochs completed
    results: dict | None  # the content of results.json when finished


def train(
    dataset_path: str | os.PathLike,
    model: str = "noco",
    out_dir: str | os.PathLike = "run",
    *,
    config: dict | str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
    stop_after: int | None = None,
    **overrides,
) -> TrainResult:
    """Train ``model`` on the dataset at ``dataset_path`` and write the run to ``out_dir``.

    ``config``: a nested dict or a YAML/JSON file (lowest precedence). ``overrides``:
    training options by name (``epochs=50``, ``lr=1e-3``, ``select_on="test"``,
    ``iterative=True``), model options by name (``hidden=128``) or any dotted path
    written with ``__`` (``iterative__start=100``, ``model__dropout=0.1``).
    ``stop_after``: run at most this many epochs in this call, then checkpoint and return.
    """
    from kgalign.config import deep_merge, load_config_file

    base = load_config_file(config) if isinstance(config, (str, os.PathLike)) else dict(config or {})
    user = deep_merge(base, split_kwargs(overrides, model))
    cfg = resolve_config(user, dataset=dataset_path, model=model)
    return Trainer(cfg, out_dir, resume=resume, force=force, progress=progress, stop_after=stop_after).run()


class Trainer:
    """Runs one training job described by a resolved config (see settings.resolve_config)."""

    def __init__(
        self,
        config: dict,
        out_dir: str | os.PathLike,
        *,
        resume: bool = False,
        force: bool = False,
        progress: bool = False,
        stop_after: int | None = None,
    ) -> None:
        self.cfg = config
        self.out = Path(out_dir)
        self.resume = resume
        self.force = force
        self.show_progress = progress
        self.stop_after = stop_after
        self.bar = Progress(0, enabled=False)

    # ------------------------------------------------------------ entry point
    def run(self) -> TrainResult:
        self.dist = dist_from_env()
        t = self.cfg["train"]
        self.device = resolve_device(t["device"], self.dist.local_rank if self.dist.enabled else None)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        init_process_group(self.dist, self.device)
        if not self.dist.is_main:
            logging.getLogger("kgalign").setLevel(logging.WARNING)  # one copy of the log, from rank 0
        try:
            return self._run()
        finally:
            destroy_process_group(self.dist)

    # ------------------------------------------------------------ setup
    def _load_data(self) -> None:
        from kgalign.data.store import load_dataset
        from kgalign.features.store import load_features, read_manifest
        from kgalign.models.inputs import build_inputs

        cfg = self.cfg
        self.dataset = load_dataset(cfg["dataset"])
        stored = list(read_manifest(cfg["dataset"]))
        if not stored:
            raise MissingResourceError(f"{cfg['dataset']}: the dataset has no features yet; run `kgalign features {cfg['dataset']}` first")
        wanted = cfg["modalities"] or stored
        missing = [m for m in wanted if m not in stored]
        if missing:
            raise MissingResourceError(
                f"{cfg['dataset']}: no stored features for modality {', '.join(missing)} (stored: {', '.join(stored)}); "
                f"run `kgalign features {cfg['dataset']}` for them or choose others with --modalities"
            )
        cfg["modalities"] = list(wanted)
        feats = load_features(cfg["dataset"], list(wanted))
        self.inputs = build_inputs(self.dataset, feats)
        self.seed_links = self.dataset.links_for("train")
        self.valid_links = self.dataset.links_for("valid")
        self.test_links = self.dataset.links_for("test")
        if len(self.seed_links) == 0:
            raise InputError(
                "the dataset has no train links; re-ingest it with a split that has some (see `kgalign ingest --help`)", cfg["dataset"]
            )
        sel = cfg["train"]["select_on"]
        if sel == "valid" and len(self.valid_links) == 0:
            raise InputError(
                "the dataset has no valid links (a legacy train/test split?), so nothing honest to select the model on. "
                "Re-ingest it with validation links (e.g. `kgalign ingest ... --split legacy --legacy-valid 0.1`), or pass "
                "--select-on test (paper-compatible, optimistic: chooses the epoch on the test links) or --select-on last "
                "(no selection, last epoch)",
                cfg["dataset"],
            )
        if sel == "test" and len(self.test_links) == 0:
            raise InputError("--select-on test, but the dataset has no test links", cfg["dataset"])

    def _prepare_dir(self, chash: str) -> bool:
        """Check/prepare the run directory; True when a checkpoint should be loaded."""
        out = self.out
        cfg_path = out / rundir.CONFIG
        if self.resume:
            if not cfg_path.is_file():
                raise MissingResourceError(f"{out}: no run to resume (no {rundir.CONFIG}); start it without --resume")
            old = rundir.read_json(cfg_path)
            if config_hash(old, HASH_EXCLUDE) != chash:
                diff = diff_configs(old, self.cfg, HASH_EXCLUDE)
                raise InputError(
                    "--resume with a different configuration than the run was started with; "
                    "use the same options (or a new -o directory). Differences:\n  " + "\n  ".join(diff),
                    str(cfg_path),
                )
            has_ckpt = (out / rundir.CHECKPOINTS / "last.json").is_file()
            if not has_ckpt:
                log.warning("%s: no checkpoint yet; starting the run from epoch 0", out)
            return has_ckpt
        if out.exists() and any(out.iterdir()):
            if not self.force:
                raise FileExistsError(f"{out} already exists and is not empty; use --resume to continue it or --force to start over")
            if self.dist.is_main:
                rundir.clear_run_dir(out)
        return False

    def _prepare_dir_all_ranks(self) -> bool:
        """Rank 0 checks and prepares the directory; the others wait for its verdict.

        (Other ranks must not inspect the directory themselves: rank 0 may already
        have written config.json into it.)
        """
        if not self.dist.enabled:
            return self._prepare_dir(self.chash)
        error: BaseException | None = None
        load = self.resume and (self.out / rundir.CHECKPOINTS / "last.json").is_file()
        if self.dist.is_main:
            try:
                load = self._prepare_dir(self.chash)
            except (KgalignError, FileExistsError) as exc:
                error = exc
        failed = any_rank(error is not None, self.dist, self.device)
        if error is not None:
            raise error
        if failed:
            raise KgalignError("rank 0 could not prepare the run directory (see its message)")
        return load

    def _build_model(self) -> None:
        from kgalign.models.registry import check_option_types, get_model

        mcfg = {k: v for k, v in self.cfg["model"].items() if k != "name"}
        spec = get_model(self.cfg["model"]["name"])
        check_option_types(spec.name, mcfg)
        seed_everything(self.cfg["train"]["seed"])
        try:
            self.model = spec.cls(self.inputs.to(self.device), **mcfg).to(self.device)
        except TypeError as exc:
            raise InputError(f"model {self.cfg['model']['name']!r}: bad options: {exc}") from None
        self.net = wrap_model(self.model, self.dist, self.device)
        self.precision = resolve_precision(self.cfg["train"]["amp"], self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.scaler)
        self.shuffle_gen = torch.Generator()
        self.shuffle_gen.manual_seed(self.cfg["train"]["seed"])

    def _make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        t = self.cfg["train"]
        return torch.optim.AdamW(self.model.parameters(), lr=lr, betas=tuple(t["betas"]), eps=t["eps"], weight_decay=t["weight_decay"])

    def _init_state(self) -> None:
        t, it = self.cfg["train"], self.cfg["iterative"]
        self.epoch = 0
        self.links = np.ascontiguousarray(self.seed_links, dtype=np.int64)
        self.source = np.zeros(len(self.links), dtype=np.int64)
        self.candidates = torch.zeros((0, 2), dtype=torch.long)
        # Like MEAformer, the first schedule spans all epochs; iterative training replaces it at its start.
        self.phase = Phase(0, t["epochs"], float(t["lr"]), float(t["warmup"]), t["schedule"])
        self.il_started = False
        self.optimizer = self._make_optimizer(self.phase.lr)
        self.selection = Selection(t["select_on"], t["select_metric"], t["patience"])
        self.best_state: dict[str, torch.Tensor] | None = None
        self.partial: dict | None = None  # an epoch interrupted between steps
        self.timing = {"train_seconds": 0.0, "train_epochs": 0, "eval_seconds": 0.0, "evaluations": 0}
        self.il = ILSchedule(it["start"], it["step"], it["reset_every"], it["add_every"]) if it["enabled"] else None

    # ------------------------------------------------------------ checkpoints
    def _save(self, finished: bool = False) -> None:
        if not self.dist.is_main:
            return
        tensors = add_prefix(self.model.state_dict(), "model.")
        if self.best_state is not None:
            tensors.update(add_prefix(self.best_state, "best."))
        opt_t, opt_js = optimizer_to_flat(self.optimizer)
        tensors.update(opt_t)
        rng_t, rng_js = capture_rng(self.shuffle_gen)
        tensors.update(rng_t)
        tensors["links.train"] = torch.from_numpy(self.links)
        tensors["links.source"] = torch.from_numpy(self.source)
        tensors["il.candidates"] = self.candidates
        partial_js = None
        if self.partial is not None:
            tensors["partial.perm"] = self.partial["perm"]
            partial_js = {k: v for k, v in self.partial.items() if k != "perm"}
        meta = {
            "epoch": self.epoch,
            "finished": finished,
            "config_hash": self.chash,
            "seed": self.cfg["train"]["seed"],
            "optimizer": opt_js,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "phase": self.phase.state_dict(),
            "il_started": self.il_started,
            "selection": self.selection.state_dict(),
            "partial": partial_js,
            "timing": self.timing,
            "rng": rng_js,
            "world_size": self.dist.world_size,
        }
        save_checkpoint(self.out / rundir.CHECKPOINTS, tensors, meta)

    def _load(self) -> bool:
        """Restore everything from the last checkpoint; True if that run had finished."""
        tensors, meta = load_checkpoint(self.out / rundir.CHECKPOINTS)
        if meta.get("config_hash") != self.chash:
            raise InputError(
                "checkpoint was written with a different configuration (config hash differs)",
                str(self.out / rundir.CHECKPOINTS / "last.json"),
            )
        if meta.get("world_size", 1) != self.dist.world_size:
            log.warning(
                "resuming with %d process(es), the checkpoint was written with %d: results will not be bit-identical",
                self.dist.world_size,
                meta.get("world_size", 1),
            )
        self.model.load_state_dict({k: v.to(self.device) for k, v in strip_prefix(tensors, "model.").items()})
        best = strip_prefix(tensors, "best.")
        self.best_state = best or None
        self.epoch = int(meta["epoch"])
        self.phase = Phase(**meta["phase"])
        self.il_started = bool(meta["il_started"])
        self.optimizer = self._make_optimizer(self.phase.lr)
        self.optimizer.load_state_dict(optimizer_from_flat(tensors, meta["optimizer"]))
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.selection.load_state_dict(meta["selection"])
        self.links = tensors["links.train"].numpy().astype(np.int64)
        self.source = tensors["links.source"].numpy().astype(np.int64)
        self.candidates = tensors["il.candidates"].long()
        self.timing = meta["timing"]
        if meta.get("partial") is not None:
            self.partial = dict(meta["partial"], perm=tensors["partial.perm"].long())
        restore_rng(tensors, meta["rng"], self.shuffle_gen)
        return bool(meta.get("finished"))

    # ------------------------------------------------------------ one epoch
    def _train_epoch(self, interrupt: InterruptFlag) -> dict:
        t = self.cfg["train"]
        self.net.train()
        n_links = len(self.links)
        bs = t["batch_size"] or n_links  # None: all links in one step (MCLEA's reference setting)
        nb = math.ceil(n_links / bs)
        if self.partial is not None:
            perm, start = self.partial["perm"], int(self.partial["next_batch"])
            sums, count, seconds = dict(self.partial["sums"]), int(self.partial["count"]), float(self.partial["seconds"])
            self.partial = None
        else:
            perm, start, sums, count, seconds = torch.randperm(n_links, generator=self.shuffle_gen), 0, {}, 0, 0.0
        links_t = torch.from_numpy(self.links)
        t0 = time.perf_counter()
        lr = self.phase.lr
        for b in range(start, nb):
            batch = links_t[perm[b * bs : (b + 1) * bs]]
            local = shard_links(batch, self.dist).to(self.device)
            lr = self.phase.lr_at(self.epoch, b, nb)
            set_lr(self.optimizer, lr)
            with self.precision.autocast(self.device):
                loss, parts = self.net(local)
            value = float(loss.detach())
            if not math.isfinite(value) and not self.scaler.is_enabled():
                raise KgalignError(
                    f"the loss became {value} at epoch {self.epoch + 1}, step {b + 1}; lower the learning rate (--lr) or turn off --amp"
                )
            self.scaler.scale(loss).backward()
            if t["grad_clip"] > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t["grad_clip"])
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            w = len(batch)
            count += w
            sums["loss"] = sums.get("loss", 0.0) + value * w
            for k, v in (parts or {}).items():
                sums[k] = sums.get(k, 0.0) + float(v) * w
            if any_rank(interrupt.set, self.dist, self.device):
                seconds += time.perf_counter() - t0
                self.partial = {"perm": perm, "next_batch": b + 1, "sums": sums, "count": count, "seconds": seconds}
                self._save()
                raise TrainingInterrupted(
                    f"interrupted during epoch {self.epoch + 1} (step {b + 1}/{nb}); checkpoint saved in "
                    f"{self.out / rundir.CHECKPOINTS}; continue with the same command plus --resume"
                )
        seconds += time.perf_counter() - t0
        record = {
            "epoch": self.epoch + 1,
            "loss": sums.get("loss", 0.0) / max(count, 1),
            "lr": lr,
            "train_links": n_links,
            "steps": nb,
            "seconds": round(seconds, 4),
        }
        record["parts"] = {k: v / max(count, 1) for k, v in sums.items() if k != "loss"}
        self.timing["train_seconds"] += seconds
        self.timing["train_epochs"] += 1
        return record

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _embed(self) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        emb = self.model.embed()
        self.model.train(was_training)
        return emb.detach().float()

    def _evaluate(self, emb: torch.Tensor) -> dict:
        from kgalign.evaluation.ranking import evaluate_embeddings

        k = self.cfg["eval"]["csls_k"]
        out = {}
        for split, links in (("valid", self.valid_links), ("test", self.test_links)):
            if len(links):
                out[split] = evaluate_embeddings(emb, links, candidates="test", csls_k=k)
        return out

    # ------------------------------------------------------------ bootstrapping
    def _start_il(self) -> None:
        it = self.cfg["iterative"]
        if it["reload_best"] and self.best_state is not None:
            self.model.load_state_dict({k: v.to(self.device) for k, v in self.best_state.items()})
            log.info(
                "iterative training from epoch %d: reloaded the weights of epoch %s (selected on %s)",
                self.epoch,
                self.selection.best_epoch,
                self.selection.split,
            )
        lr = float(self.cfg["train"]["lr"]) * float(it["lr_factor"])
        t = self.cfg["train"]
        self.phase = Phase(self.epoch, t["epochs"], lr, float(t["warmup"]), t["schedule"])
        self.optimizer = self._make_optimizer(lr)
        self.selection.bad_evals = 0
        self.il_started = True

    def _bootstrap(self, record: dict) -> None:
        check, reset, add = self.il.actions(self.epoch)
        info = {}
        if check:
            emb = self._embed()
            left, right = candidate_pools(self.dataset.entity_kg, self.links)
            mnn = mutual_nearest_neighbours(emb, left.to(emb.device), right.to(emb.device))
            reset = reset or len(self.candidates) == 0
            if reset:
                self.candidates = mnn
            else:
                self.candidates = intersect_pairs(self.candidates, mnn, self.inputs.num_entities)
            info.update(mutual_nn=len(mnn), candidates=len(self.candidates), reset=bool(reset))
        if add and len(self.candidates):
            new = self.candidates.numpy().astype(np.int64)
            self.links = np.concatenate([self.links, new])
            self.source = np.concatenate([self.source, np.full(len(new), self.epoch, dtype=np.int64)])
            self.candidates = torch.zeros((0, 2), dtype=torch.long)
            info["added"] = len(new)
            self.bar.clear()
            log.info("epoch %d: added %d bootstrapped pairs (%d training links now)", self.epoch, len(new), len(self.links))
        if info:
            record["bootstrap"] = info

    # ------------------------------------------------------------ main loop
    def _run(self) -> TrainResult:
        cfg, t = self.cfg, self.cfg["train"]
        self._load_data()
        self.chash = config_hash(cfg, HASH_EXCLUDE)
        self._build_model()  # before the directory: bad model options must not cost a --force'd old run
        load = self._prepare_dir_all_ranks()
        self._init_state()
        metrics_path = self.out / rundir.METRICS
        finished = False
        if load:
            finished = self._load()
            log.info("resuming %s from epoch %d", self.out, self.epoch)
            if self.dist.is_main:
                rundir.truncate_metrics(metrics_path, self.epoch)
                rundir.note_resume(self.out / rundir.ENV, self.epoch, self.device, self.dist.world_size)
        elif self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            rundir.write_json(self.out / rundir.CONFIG, cfg)
            rundir.write_json(self.out / rundir.ENV, rundir.environment(self.device, self.precision.mode, self.dist.world_size))
            rundir.atomic_write_text(metrics_path, "")
        if t["select_on"] == "test" and self.dist.is_main:
            log.warning(TEST_SELECTION_WARNING)
        epochs = t["epochs"]
        it = cfg["iterative"]
        bar = self.bar = Progress(epochs, "epoch", start=self.epoch, unit="epoch", enabled=self.show_progress and self.dist.is_main)
        ran = 0
        try:
            with InterruptFlag() as interrupt:
                while not finished and self.epoch < epochs and not self.selection.stopped:
                    if self.stop_after is not None and ran >= self.stop_after:
                        self._save()
                        log.info("stopped after %d epoch(s) at epoch %d; continue with --resume", ran, self.epoch)
                        return TrainResult(self.out, cfg, False, self.epoch, None)
                    if self.il is not None and not self.il_started and self.epoch >= it["start"] and self.partial is None:
                        self._start_il()
                    record = self._train_epoch(interrupt)
                    self.epoch += 1
                    ran += 1
                    info = f"loss {record['loss']:.4f}"
                    if self.epoch % t["eval_every"] == 0 or self.epoch == epochs:
                        info += self._eval_step(record)
                    if self.il is not None and self.il_started:
                        self._bootstrap(record)
                    if self.dist.is_main:
                        rundir.append_metrics(metrics_path, record)
                    if self.epoch % t["checkpoint_every"] == 0:
                        self._save()
                    bar.set(self.epoch, info)
                    if any_rank(interrupt.set, self.dist, self.device):
                        self._save()
                        raise TrainingInterrupted(
                            f"interrupted after epoch {self.epoch}; checkpoint saved in {self.out / rundir.CHECKPOINTS}; "
                            "continue with the same command plus --resume"
                        )
        finally:
            bar.close()
        if self.selection.stopped and not finished:
            log.info(
                "early stopping at epoch %d: no improvement of %s %s in %d evaluations",
                self.epoch,
                self.selection.split,
                self.selection.metric,
                self.selection.patience,
            )
        self._save(finished=True)
        results = self._finish()
        return TrainResult(self.out, cfg, True, self.epoch, results)

    def _eval_step(self, record: dict) -> str:
        t0 = time.perf_counter()
        evals = self._evaluate(self._embed())
        self.timing["eval_seconds"] += time.perf_counter() - t0
        self.timing["evaluations"] += 1
        record.update(evals)
        sel = self.selection
        value = metric_value(evals[sel.split], sel.metric) if sel.split in evals else None
        armed = self.il is None or self.il_started
        if sel.update(value, self.epoch, count_patience=armed):
            record["selected"] = True
            if sel.split != "last":
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        parts = []
        for split in ("valid", "test"):
            if split in evals:
                parts.append(f"{split} {sel.metric} {metric_value(evals[split], sel.metric):.4f}")
        msg = "; ".join(parts)
        self.bar.clear()
        log.info("epoch %d: loss %.4f; %s%s", self.epoch, record["loss"], msg, " (selected)" if record.get("selected") else "")
        return " " + msg

    # ------------------------------------------------------------ outputs
    def _finish(self) -> dict:
        sel = self.selection
        if sel.split != "last" and self.best_state is not None:
            self.model.load_state_dict({k: v.to(self.device) for k, v in self.best_state.items()})
        emb = self._embed()
        evals = self._evaluate(emb)
        results = self._results(evals)
        if self.dist.is_main:
            rundir.write_embeddings(self.out / rundir.EMBEDDINGS, emb)
            from safetensors.torch import save_file

            from kgalign.fsutil import atomic_path

            with atomic_path(self.out / rundir.BEST) as tmp:
                save_file(
                    {k: v.detach().cpu().contiguous().clone() for k, v in self.model.state_dict().items()},
                    str(tmp),
                    metadata={"model": self.cfg["model"]["name"], "epoch": str(sel.best_epoch)},
                )
            rundir.write_train_links(self.out / rundir.TRAIN_LINKS, self.links, self.source)
            rundir.write_json(self.out / rundir.RESULTS, results)
        if sel.split == "test":
            log.warning(TEST_SELECTION_WARNING)
        return results

    def _protocol_text(self) -> str:
        t = self.cfg["train"]
        sel = self.selection
        if sel.split == "valid":
            return (
                f"Model selected on the validation links by {sel.metric} (evaluated every {t['eval_every']} epoch(s), "
                f"early-stopping patience {t['patience']} evaluation(s)); test links were used for neither training, "
                "selection nor bootstrapping. Ranking candidates: the entities of the evaluated split's links."
            )
        if sel.split == "test":
            return TEST_SELECTION_WARNING
        return "No model selection: the weights after the last epoch; test links were used for neither training nor bootstrapping."

    def _results(self, evals: dict) -> dict:
        t = self.cfg["train"]
        sel = self.selection
        tm = self.timing
        n_boot = int((self.source > 0).sum())
        res = {
            "model": self.cfg["model"]["name"],
            "dataset": self.cfg["dataset"],
            "config_hash": self.chash,
            "protocol": self._protocol_text(),
            "selection": {
                "split": sel.split,
                "metric": sel.metric,
                "epoch": sel.best_epoch if sel.split != "last" else self.epoch,
                "value": sel.best_value,
                "selected_on_test": sel.split == "test",
            },
            "valid": evals.get("valid"),
            "test": evals.get("test"),
            "epochs_run": self.epoch,
            "epochs_planned": t["epochs"],
            "stopped_early": bool(sel.stopped),
            "seconds_per_epoch": tm["train_seconds"] / max(tm["train_epochs"], 1),
            "seconds_per_evaluation": tm["eval_seconds"] / max(tm["evaluations"], 1),
            "peak_memory": peak_memory(self.device),
            "train_links": {"seed": len(self.links) - n_boot, "bootstrapped": n_boot},
            "device": str(self.device),
            "precision": self.precision.mode,
            "world_size": self.dist.world_size,
            "csls_k": self.cfg["eval"]["csls_k"],
        }
        if sel.split == "test":
            res["warning"] = TEST_SELECTION_WARNING
        res["best_on_test"] = self._best_on_test()
        return res

    def _best_on_test(self) -> dict | None:
        """The papers' protocol read off metrics.jsonl: the evaluation with the best test metric."""
        if not self.dist.is_main:
            return None
        records = [r for r in rundir.read_metrics(self.out / rundir.METRICS) if "test" in r]
        if not records:
            return None
        metric = self.selection.metric
        lower = metric.rsplit(".", 1)[-1] == "mr"
        best = None
        for r in records:
            v = metric_value(r["test"], metric)
            if best is None or (v < best[0] if lower else v > best[0]):
                best = (v, r)
        return {
            "description": "paper-compatible protocol (MEAformer/NoCo): the evaluation with the best test "
            f"{metric}; optimistic, shown for comparison only",
            "epoch": best[1]["epoch"],
            "test": best[1]["test"],
        }
