"""The training pipeline: dataset + features -> model -> trained run directory.

Use from Python::

    from kgalign.training import train
    result = train("ds", model="noco", out_dir="run", epochs=50, lr=1e-3, model__hidden=128)
    result.results["valid"]["csls"]["l2r"]["hits@1"]

or build a resolved config (:func:`kgalign.training.settings.build_config`) and call
``Trainer(config, out_dir).run()``.

:class:`Trainer` only assembles: it loads the data, builds the model, prepares the
run directory, and runs a :class:`~kgalign.training.loop.TrainingLoop` with the
callbacks for model selection, bootstrapping, the metrics file, checkpoints and
progress; then it writes the outputs. See docs/training.md and docs/architecture.md.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kgalign import rundir
from kgalign.config import diff_configs
from kgalign.device import resolve_device, resolve_precision
from kgalign.errors import InputError, KgalignError, MissingResourceError
from kgalign.training.bootstrap import Bootstrapping, ILSchedule
from kgalign.training.callbacks import Checkpointer, MetricsLog, ProgressBar
from kgalign.training.checkpoint import has_checkpoint
from kgalign.training.distributed import any_rank, destroy_process_group, dist_from_env, init_process_group, query_shard, wrap_model
from kgalign.training.loop import TrainingInterrupted, TrainingLoop
from kgalign.training.results import TEST_SELECTION_WARNING, build_results
from kgalign.training.seeding import seed_everything
from kgalign.training.selection import ModelSelection, Selection
from kgalign.training.settings import build_config, with_new_defaults

log = logging.getLogger("kgalign.training")

__all__ = ["train", "Trainer", "TrainResult", "TrainingInterrupted", "TEST_SELECTION_WARNING"]


@dataclass
class TrainResult:
    run_dir: Path
    config: dict
    finished: bool  # False when stopped by ``stop_after`` (resume to continue)
    epoch: int  # epochs completed
    results: dict | None  # the content of results.json when finished


def train(
    dataset_path: str | os.PathLike,
    model: str | None = None,
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

    ``model``: a registered name; None takes ``model.name`` from ``config``, else ``"noco"``.

    ``config``: a nested dict or a YAML/JSON file (lowest precedence). ``overrides``:
    training options by name (``epochs=50``, ``lr=1e-3``, ``select_on="test"``,
    ``iterative=True``), model options by name (``hidden=128``) or any dotted path
    written with ``__`` (``iterative__start=100``, ``model__dropout=0.1``); they win
    over the file, as command-line flags do.
    ``stop_after``: run at most this many epochs in this call, then checkpoint and return.
    """
    cfg = build_config(dataset_path, model, config=config, kwargs=overrides, default_model="noco")
    return Trainer(cfg, out_dir, resume=resume, force=force, progress=progress, stop_after=stop_after).run()


class Trainer:
    """Runs one training job described by a resolved config (see settings.build_config)."""

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
        self.chash = ""  # after the data are loaded: the stored modalities complete the config
        self.legacy_hash: str | None = None  # a resumed run's hash from before config keys were added
        self.dist = dist_from_env()
        self.device: torch.device | None = None
        self.dataset = None
        self.inputs = None
        self.splits: dict[str, np.ndarray] = {}
        self.seeds: np.ndarray | None = None
        self.negatives: np.ndarray | None = None  # known non-matches (rejected in a review): never bootstrapped
        self.reviewed: np.ndarray | None = None  # accepted pairs that joined the seeds
        self.model = None
        self.precision = None
        self.minibatch = False  # decided in _build_model (train.minibatch)
        self.sparse_features: dict = {}  # {modality: (csr_array (n, d), mask)} stored as CSR
        self.row_step = False  # decided in _build_model (train.loss_rows_only)

    # ------------------------------------------------------------ entry point
    def run(self) -> TrainResult:
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
        stored = [m for m in read_manifest(cfg["dataset"]) if m != "numeric_present"]
        if not stored:
            raise MissingResourceError(f"{cfg['dataset']}: the dataset has no features yet; run `kgalign features {cfg['dataset']}` first")
        wanted = cfg["modalities"] or stored
        missing = [m for m in wanted if m not in stored]
        if missing:
            raise MissingResourceError(
                f"{cfg['dataset']}: no stored features for modality {', '.join(missing)} (stored: {', '.join(stored)}); "
                f"compute them with `kgalign features {cfg['dataset']} --modalities {','.join(missing)}`"
                + (" --name-from-iri (or ingest names with --kg1-names/--kg2-names)" if "name" in missing else "")
                + " or choose others with --modalities"
            )
        cfg["modalities"] = list(wanted)
        load = list(wanted) + (["numeric_present"] if "numeric" in wanted and "numeric_present" in read_manifest(cfg["dataset"]) else [])
        feats = load_features(cfg["dataset"], load, dense=False)
        # CSR-stored bags stay CSR here: mini-batch training gathers their rows, full-graph training densifies them
        self.sparse_features = {k: v for k, v in feats.items() if hasattr(v[0], "toarray") and k not in ("numeric", "numeric_present")}
        dense = {
            k: ((v[0].toarray() if hasattr(v[0], "toarray") else v[0]), v[1]) for k, v in feats.items() if k not in self.sparse_features
        }
        self.inputs = build_inputs(self.dataset, dense)
        for k, (mat, mask) in self.sparse_features.items():
            self.inputs.features[k] = torch.zeros(1, mat.shape[1]).expand(mat.shape[0], mat.shape[1])  # no rows yet
            self.inputs.masks[k] = torch.from_numpy(np.asarray(mask, dtype=bool))
        self.splits = {s: self.dataset.links_for(s) for s in ("valid", "test")}
        self.seeds = self.dataset.links_for("train")
        if cfg["train"]["decisions"]:
            self._apply_decisions(cfg["train"]["decisions"])
        self._check_splits()

    def _apply_decisions(self, path: str) -> None:
        """A review's verdicts: accepted pairs join the seeds, rejected ones leave them and are never bootstrapped.

        The file's sha256 goes into the config (``train.decisions_sha256``), so resuming with a changed file is refused.
        """
        import hashlib

        from kgalign.data.decisions import read_decisions, seeds_from_decisions

        if not Path(path).is_file():
            raise MissingResourceError(f"{path}: no such decisions file (written by `kgalign review`)")
        self.cfg["train"]["decisions_sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        up = seeds_from_decisions(self.seeds, read_decisions(path), self.dataset.entities, self.dataset.entity_kg)
        self.seeds, self.negatives, self.reviewed = up.seeds, up.negatives, up.extra
        held_out = {tuple(p) for split in self.splits.values() for p in np.asarray(split).tolist()}
        leaked = sum(tuple(p) in held_out for p in up.extra.tolist())
        log.info(
            "%s: %d accepted pair(s) added to the seeds, %d seed(s) removed as rejected, %d known negative(s), %d unknown term(s)",
            path,
            len(up.extra),
            len(up.removed),
            len(up.negatives),
            len(up.unknown),
        )
        if leaked:
            log.warning(
                "%d accepted pair(s) are valid/test links: they now train the model, so the valid/test figures are optimistic", leaked
            )

    def _check_splits(self) -> None:
        ds = self.cfg["dataset"]
        if len(self.seeds) == 0:
            raise InputError("the dataset has no train links; re-ingest it with a split that has some (see `kgalign ingest --help`)", ds)
        sel = self.cfg["train"]["select_on"]
        if sel == "valid" and len(self.splits["valid"]) == 0:
            raise InputError(
                "the dataset has no valid links (a legacy train/test split?), so nothing honest to select the model on. "
                "Re-ingest it with validation links (e.g. `kgalign ingest ... --split legacy --legacy-valid 0.1`), or pass "
                "--select-on test (paper-compatible, optimistic: chooses the epoch on the test links) or --select-on last "
                "(no selection, last epoch)",
                ds,
            )
        if sel == "test" and len(self.splits["test"]) == 0:
            raise InputError("--select-on test, but the dataset has no test links", ds)

    def _decide_minibatch(self, name: str, options: dict) -> bool:
        """train.minibatch: true/false, or auto = the rule of kgalign.training.minibatch.decide."""
        from kgalign.models.registry import get_model
        from kgalign.training.minibatch import GIB, decide, full_graph_bytes, memory_budget

        spec = get_model(name)
        if not getattr(spec.cls, "trainable", True):
            return False  # training-free models have no training step to batch
        opts = {**spec.defaults, **options}
        t = self.cfg["train"]
        dims = {m: int(f.shape[1]) for m, f in self.inputs.features.items()}
        estimate = full_graph_bytes(
            self.inputs.num_entities,
            int(self.inputs.edge_index.shape[1]),
            dims,
            int(opts.get("hidden", 300)),
            int(opts.get("gat_heads", 2)),
            int(opts.get("gat_layers", 2)),
        )
        budget = memory_budget(self.device, t["memory_budget_gib"])
        chosen = decide(t["minibatch"], estimate, budget, bool(getattr(spec.cls, "supports_minibatch", False)), name)
        log.info(
            "training %s: full-graph step estimated at %.2f GiB, budget %.2f GiB (train.minibatch=%s)",
            "mini-batch" if chosen else "full-graph",
            estimate / GIB,
            budget / GIB,
            t["minibatch"],
        )
        return chosen

    def _build_model(self) -> None:
        from kgalign.models.registry import build_model, get_model

        name = self.cfg["model"]["name"]
        options = {k: v for k, v in self.cfg["model"].items() if k != "name"}
        self.precision = resolve_precision(self.cfg["train"]["amp"], self.device)  # a bad --amp fails before anything is logged
        self.minibatch = self._decide_minibatch(name, options)
        # Full-graph and mini-batch steps run the per-row modules on the loss's rows alone where the model allows it
        # (a mini-batch model always supports_minibatch).
        self.row_step = bool(self.cfg["train"]["loss_rows_only"]) and any(
            bool(getattr(get_model(name).cls, flag, False)) for flag in ("supports_minibatch", "supports_row_step")
        )
        seed_everything(self.cfg["train"]["seed"])
        if self.minibatch:  # feature rows stay on the host; the model gets them per batch
            from kgalign.models.subgraph import placeholder_inputs

            dims = {m: int(f.shape[1]) for m, f in self.inputs.features.items()}
            inputs = placeholder_inputs(self.inputs.num_entities, dims, self.inputs.masks, self.device)
        else:
            for k, (mat, _) in self.sparse_features.items():
                self.inputs.features[k] = torch.from_numpy(mat.toarray())
            inputs = self.inputs.to(self.device)
        self.model = build_model(name, inputs, **options).to(self.device)

    def _minibatch_step(self):
        """(step module, its checkpoint callback, the embedding function) of a mini-batch run."""
        from kgalign.training.minibatch import MiniBatchStep, SamplerState, embed_layerwise, fanouts_for
        from kgalign.training.sampling import Adjacency, FeatureSource

        t = self.cfg["train"]
        adjacency = Adjacency(self.inputs.edge_index, self.inputs.num_entities)
        rows = {k: self.sparse_features[k][0] if k in self.sparse_features else f for k, f in self.inputs.features.items()}
        source = FeatureSource(rows, self.inputs.masks)
        layers = len(self.model.graph_encoder().convs)
        fanouts = fanouts_for(t["fanout"], layers)
        step = MiniBatchStep(self.model, adjacency, source, fanouts, t["seed"], self.dist.rank, self.device, rows_only=self.row_step)
        return step, SamplerState(step), lambda: embed_layerwise(self.model, adjacency, source)

    def _prepare_dir(self) -> bool:
        """Check/prepare the run directory; True when a checkpoint should be loaded."""
        out = self.out
        cfg_path = out / rundir.CONFIG
        if self.resume:
            if not cfg_path.is_file():
                raise MissingResourceError(f"{out}: no run to resume (no {rundir.CONFIG}); start it without --resume")
            old = rundir.read_json(cfg_path)
            old_hash = rundir.run_config_hash(old)
            if old_hash != self.chash and rundir.run_config_hash(with_new_defaults(old)) == self.chash:
                # only keys added since the run started differ, at their defaults: its checkpoint is still ours
                log.warning("resuming a run started before %s were added (at their defaults)", ", ".join(self._new_keys(old)))
                self.legacy_hash = old_hash
            elif old_hash != self.chash:
                diff = diff_configs(old, self.cfg, rundir.HASH_EXCLUDE)
                raise InputError(
                    "--resume with a different configuration than the run was started with; "
                    "use the same options (or a new -o directory). Differences:\n  " + "\n  ".join(diff),
                    str(cfg_path),
                )
            if has_checkpoint(out / rundir.CHECKPOINTS):
                return True
            done = [r.get("epoch", 0) for r in rundir.read_metrics(out / rundir.METRICS)]
            if done:
                raise MissingResourceError(
                    f"{out / rundir.CHECKPOINTS}: no checkpoint to resume from, although metrics.jsonl records "
                    f"{max(done)} epoch(s); the checkpoint files were removed. Start over with --force (or a new -o directory)"
                )
            log.warning("%s: the run never saved a checkpoint (it stopped before its first epoch); starting at epoch 0", out)
            return False
        if out.exists() and any(out.iterdir()):
            if not self.force:
                raise FileExistsError(f"{out} already exists and is not empty; use --resume to continue it or --force to start over")
            if self.dist.is_main:
                rundir.clear_run_dir(out)
        return False

    def _prepare_dir_all_ranks(self) -> bool:
        """Rank 0 checks and prepares the directory; the others wait for its verdict
        (they must not inspect it themselves: rank 0 may already have written config.json)."""
        if not self.dist.enabled:
            return self._prepare_dir()
        error: BaseException | None = None
        load = self.resume and has_checkpoint(self.out / rundir.CHECKPOINTS)
        if self.dist.is_main:
            try:
                load = self._prepare_dir()
            except (KgalignError, FileExistsError) as exc:
                error = exc
        failed = any_rank(error is not None, self.dist, self.device)
        if error is not None:
            raise error
        if failed:
            raise KgalignError("rank 0 could not prepare the run directory (see its message)")
        return load

    def _make_loop(self) -> tuple[TrainingLoop, ModelSelection, Checkpointer]:
        cfg, t, it = self.cfg, self.cfg["train"], self.cfg["iterative"]
        main = self.dist.is_main
        selection = ModelSelection(
            Selection(t["select_on"], t["select_metric"], t["patience"]),
            every=t["eval_every"],
            last_epoch=t["epochs"],
            splits=self.splits,
            csls_k=cfg["eval"]["csls_k"],
            candidates={"valid": cfg["eval"]["valid_candidates"], "test": "test"},
            kg=self.dataset.entity_kg,
            train_links=self.seeds,
            shard=query_shard(self.dist),
            sample=cfg["eval"]["sample"],
        )
        bar = ProgressBar(t["epochs"], 0, enabled=self.show_progress and main, selection=selection)
        selection.log = bar.log
        callbacks: list = [selection]
        if it["enabled"]:
            boot = Bootstrapping(
                ILSchedule(it["start"], it["step"], it["reset_every"], it["add_every"]),
                kg=self.dataset.entity_kg,
                num_entities=self.inputs.num_entities,
                lr=float(t["lr"]),
                lr_factor=float(it["lr_factor"]),
                warmup=float(t["warmup"]),
                phase_schedule=t["schedule"],
                reload_best=it["reload_best"],
                selection=selection,
                excluded=self.negatives,
                notify=bar.log,
                shard=selection.shard,
            )
            selection.armed = boot.armed
            callbacks.append(boot)
        step = embed = None
        if self.minibatch:
            step, sampler, embed = self._minibatch_step()
            callbacks.append(sampler)
        elif self.row_step:
            from kgalign.training.rowstep import RowStep

            step = RowStep(self.model)
        meta = {"config_hash": self.chash, "seed": t["seed"], "world_size": self.dist.world_size, "minibatch": self.minibatch}
        checkpointer = Checkpointer(self.out / rundir.CHECKPOINTS, t["checkpoint_every"], meta, enabled=main)
        callbacks += [MetricsLog(self.out / rundir.METRICS, enabled=main), checkpointer, bar]
        loop = TrainingLoop(
            self.model,
            wrap_model(self.model, self.dist, self.device, step),
            self.seeds,
            epochs=t["epochs"],
            batch_size=t["batch_size"],
            lr=float(t["lr"]),
            warmup=float(t["warmup"]),
            schedule=t["schedule"],
            weight_decay=float(t["weight_decay"]),
            betas=tuple(t["betas"]),
            eps=float(t["eps"]),
            grad_clip=float(t["grad_clip"]),
            precision=self.precision,
            device=self.device,
            dist=self.dist,
            seed=t["seed"],
            callbacks=callbacks,
            embed=embed,
        )
        return loop, selection, checkpointer

    # ------------------------------------------------------------ main
    def _run(self) -> TrainResult:
        cfg = self.cfg
        self._load_data()
        self.chash = rundir.run_config_hash(cfg)
        # model, optimizers and callbacks before the directory: a bad option must not cost a --force'd old run
        self._build_model()
        if not getattr(self.model, "trainable", True):  # training-free (lightea): no loop, no optimizer
            from kgalign.training.free import run_training_free

            return run_training_free(self)
        loop, selection, checkpointer = self._make_loop()
        load = self._prepare_dir_all_ranks()
        metrics_path = self.out / rundir.METRICS
        finished = False
        if load:
            meta = checkpointer.restore(loop, check=self._check_checkpoint)
            finished = bool(meta.get("finished"))
            log.info("resuming %s from epoch %d", self.out, loop.epoch)
            if self.dist.is_main:
                rundir.truncate_metrics(metrics_path, loop.epoch)
                rundir.note_resume(self.out / rundir.ENV, loop.epoch, self.device, self.dist.world_size)
        elif self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            rundir.write_json(self.out / rundir.CONFIG, cfg)
            rundir.write_json(self.out / rundir.ENV, rundir.environment(self.device, self.precision.mode, self.dist.world_size))
            rundir.atomic_write_text(metrics_path, "")
        if cfg["train"]["select_on"] == "test" and self.dist.is_main:
            log.warning(TEST_SELECTION_WARNING)
        try:
            status = "finished" if finished else loop.fit(self.stop_after)
        except TrainingInterrupted as exc:
            raise TrainingInterrupted(
                f"{exc}; checkpoint saved in {self.out / rundir.CHECKPOINTS}; continue with the same command plus --resume"
            ) from None
        if status == "paused":
            checkpointer.save(loop)
            log.info("stopped after %d epoch(s) at epoch %d; continue with --resume", self.stop_after, loop.epoch)
            return TrainResult(self.out, cfg, False, loop.epoch, None)
        if status == "stopped":
            sel = selection.selection
            log.info(
                "early stopping at epoch %d: no improvement of %s %s in %d evaluations", loop.epoch, sel.split, sel.metric, sel.patience
            )
        checkpointer.save(loop, finished=True)
        results = self._finish(loop, selection)
        return TrainResult(self.out, cfg, True, loop.epoch, results)

    def _new_keys(self, old: dict) -> list[str]:
        from kgalign.config import flatten

        have = flatten(old)
        return sorted(k for k in flatten(with_new_defaults(old)) if k not in have)

    def _check_checkpoint(self, meta: dict) -> None:
        path = str(self.out / rundir.CHECKPOINTS / "last.json")
        if meta.get("config_hash") not in (self.chash, self.legacy_hash):
            raise InputError("checkpoint was written with a different configuration (config hash differs)", path)
        if bool(meta.get("minibatch", False)) != self.minibatch:
            raise InputError(
                f"the checkpoint was trained {'mini-batch' if meta.get('minibatch') else 'full-graph'}, this run would train "
                f"{'mini-batch' if self.minibatch else 'full-graph'} (train.minibatch=auto decided differently on this machine); "
                "set train.minibatch explicitly to the checkpoint's mode",
                path,
            )
        if meta.get("world_size", 1) != self.dist.world_size:
            log.warning(
                "resuming with %d process(es), the checkpoint was written with %d: results will not be bit-identical",
                self.dist.world_size,
                meta.get("world_size", 1),
            )

    # ------------------------------------------------------------ outputs
    def _finish(self, loop: TrainingLoop, selection: ModelSelection) -> dict:
        selection.restore_best(self.model, self.device)
        emb = loop.embed().detach().float()
        evals = selection.evaluate(emb)
        results = build_results(
            self.cfg, self.chash, evals, loop, selection, self.precision.mode, self.dist.world_size, self.out / rundir.METRICS
        )
        results["minibatch"] = self.minibatch
        results["loss_rows_only"] = self.row_step
        if not self.dist.is_main:
            results["best_on_test"] = None
            return results
        rundir.write_embeddings(self.out / rundir.EMBEDDINGS, emb)
        rundir.write_weights(
            self.out / rundir.BEST,
            self.model.state_dict(),
            {"model": self.cfg["model"]["name"], "epoch": str(selection.selection.best_epoch)},
        )
        rundir.write_train_links(self.out / rundir.TRAIN_LINKS, loop.links, loop.source, reviewed=self.reviewed)
        if self.cfg["train"]["decisions"] and not (self.out / rundir.DECISIONS).exists():
            import shutil

            shutil.copyfile(self.cfg["train"]["decisions"], self.out / rundir.DECISIONS)  # reviewing this run resumes them
        rundir.write_json(self.out / rundir.RESULTS, results)
        if selection.selection.split == "test":
            log.warning(TEST_SELECTION_WARNING)
        return results
