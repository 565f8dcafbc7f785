"""`kgalign features`: compute every requested modality and store it beside the dataset.

Each stored feature's manifest entry records the featurizer, its parameters and
a fingerprint (sha256 of the parameters, the model identity and the dataset
inputs it reads). A feature whose fingerprint is unchanged is reused; changed
inputs or parameters recompute it; ``force`` recomputes everything (caches of
downloaded images and per-image vectors stay valid and are still used).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kgalign.data.store import Dataset, load_dataset
from kgalign.errors import InputError, MissingResourceError
from kgalign.features import store
from kgalign.features.util import Fingerprint, path_identity
from kgalign.fsutil import atomic_write_text, check_output_dir, remove_stale
from kgalign.progress import Progress

log = logging.getLogger("kgalign.features")

MODALITIES = ("relation", "attribute", "numeric", "name", "image")
IMAGE_MODELS = ("vgg16", "clip", "pixels", "none")
# compact storage (csr bags and hashed names, float16 for the rest) when a dense float32 matrix would exceed this
DENSE_LIMIT_BYTES = 512 * 2**20
# above this many named entities the default name featurizer is character n-gram hashing, not a text encoder
NAME_MODEL_LIMIT = 50_000


def default_cache_dir() -> Path:
    """$KGALIGN_CACHE_DIR, else $XDG_CACHE_HOME/kgalign, else ~/.cache/kgalign (shared by datasets)."""
    env = os.environ.get("KGALIGN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kgalign"


@dataclass
class FeatureOptions:
    relation_topk: int = 1000
    attribute_topk: int = 1000
    numeric_topk: int = 1000
    numeric_transform: str = "quantile"
    name_model: str | None = None  # minilm | use-multilingual | clip | path/name
    image_model: str = "vgg16"
    weights: str | None = None
    clip_backend: str = "auto"  # auto | open_clip | transformers (--image-model / --name-model clip)
    clip_arch: str = "ViT-B-32"  # open_clip architecture of --weights (open_clip route only)
    download: bool = False
    cache_dir: str | None = None
    allow_private_addresses: bool = False
    workers: int = 16
    timeout: float = 10.0
    total_timeout: float = 60.0  # one image source, all attempts included
    retries: int = 3
    max_bytes: int = 20 * 1024 * 1024
    device: str = "auto"
    batch_size: int = 32
    force: bool = False
    sparse: bool | None = None  # compact storage; None: when a dense matrix would exceed DENSE_LIMIT_BYTES
    name_hash_dim: int = 256  # columns of --name-model hash

    def validate(self) -> None:
        """The checks of these options, for the library and the CLI alike (InputError naming the option)."""
        import math
        import re

        from kgalign.features.numeric import TRANSFORMS

        if self.numeric_transform not in TRANSFORMS:
            raise InputError(f"--numeric-transform must be one of {', '.join(TRANSFORMS)}; got {self.numeric_transform!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda|cuda:\d+", self.device.strip().lower()):
            raise InputError(f"--device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        if self.clip_backend not in ("auto", "open_clip", "transformers"):
            raise InputError(f"--clip-backend must be auto, open_clip or transformers; got {self.clip_backend!r}")
        for name in ("relation_topk", "attribute_topk", "numeric_topk", "workers", "batch_size", "max_bytes", "name_hash_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be an integer >= 1; got {value!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InputError(f"--retries must be an integer >= 0; got {self.retries!r}")
        for name in ("timeout", "total_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be a positive number of seconds; got {value!r}")


def _coverage(ds: Dataset, mask: np.ndarray) -> dict:
    out = {}
    for kg in (1, 2):
        sel = ds.entity_kg == kg
        out[f"kg{kg}"] = [int(mask[sel].sum()), int(sel.sum())]
    return out


def supported(ds: Dataset, opts: FeatureOptions) -> dict[str, str | None]:
    """For each modality: None if the dataset supports it, else why not."""
    return {
        "relation": None if len(ds.relation_triples) else "the dataset has no relation triples",
        "attribute": None if (len(ds.attr_entity) or len(ds.num_entity)) else "the dataset has no attribute triples",
        "numeric": None if len(ds.num_entity) else "the dataset has no numeric values",
        "name": None
        if len(ds.name_entity)
        else "the dataset has no names: ingest it again with --kg1-names-from-iri/--kg2-names-from-iri "
        "(IRI local names) or names files (--kg1-names/--kg2-names)",
        "image": None if len(ds.image_entity) else "the dataset has no image sources",
    }


def _image_model_key(opts: FeatureOptions) -> str:
    """Identity of the image model (raises MissingResourceError if unavailable)."""
    if opts.image_model == "vgg16":
        from kgalign.features.vgg import find_weights

        return "vgg16-fc7-" + path_identity(find_weights(opts.weights, opts.download))[:16]
    if opts.image_model == "pixels":
        from kgalign.features.pixels import PixelImageEncoder

        return PixelImageEncoder.key
    if opts.image_model == "clip":
        from kgalign.features.clip import clip_model_key

        return clip_model_key(opts.weights, opts.clip_backend, opts.clip_arch)
    raise MissingResourceError("image features disabled (--image-model none)")


def _guard_torchvision() -> None:
    """Apply the torchvision shim before any featurizer imports transformers.

    transformers imports torchvision whenever it is installed (the `kgalign[clip]` extra); the
    registry's CUDA build then fails to import with the CPU torch and would break every text and
    CLIP route, not only open_clip's. Without torchvision this is one ``find_spec``.
    """
    from kgalign.features import torchvision_shim

    torchvision_shim.apply()


def _quiet_hf(progress: bool) -> None:
    """No Hugging Face progress bars ("Loading weights") unless ours are on; warnings stay."""
    if progress:
        return
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


class _Run:
    def __init__(self, ds: Dataset, opts: FeatureOptions, progress: bool):
        self.ds, self.opts, self.progress = ds, opts, progress
        self.path = ds.path
        self.manifest = store.read_manifest(self.path)
        self.rows: list[dict] = []
        self.image_key: str | None = None

    def _fresh(self, names: list[str], fp: str, extra_ok: bool = True) -> bool:
        if self.opts.force or not extra_ok:
            return False
        d = store.features_dir(self.path)
        for n in names:
            entry = self.manifest.get(n)
            if not entry or entry.get("fingerprint") != fp:
                return False
            if not all((d / f).is_file() for f in store.stored_files(n, entry.get("storage", "dense"))):
                return False
        return True

    def _compact(self, dim: int) -> bool:
        """Compact storage for an (n, dim) matrix: as asked, else when dense float32 would exceed DENSE_LIMIT_BYTES."""
        if self.opts.sparse is not None:
            return self.opts.sparse
        return self.ds.num_entities * dim * 4 > DENSE_LIMIT_BYTES

    def _save(self, name, mat, mask, meta, seconds, fp, params, featurizer, units=None, storage=None):
        cov = _coverage(self.ds, mask)
        meta = {
            "featurizer": featurizer,
            "params": params,
            "fingerprint": fp,
            "coverage": cov,
            "seconds": round(seconds, 3),
            **meta,
        }
        if units:
            meta["throughput"] = {k: round(v / seconds, 2) if seconds > 0 else None for k, v in units.items()}
        store.save_feature(self.path, name, mat, mask, meta, storage)
        self.manifest = store.read_manifest(self.path)
        self._row(name, "computed")

    def _row(self, name, status, reason=None):
        e = self.manifest.get(name, {}) if status != "skipped" else {}
        self.rows.append(
            {
                "feature": name,
                "status": status,
                "dim": e.get("dim"),
                "coverage": e.get("coverage"),
                "seconds": e.get("seconds"),
                "throughput": e.get("throughput"),
                "reason": reason,
            }
        )

    # ---- featurizers ----------------------------------------------------------

    def relation(self):
        from kgalign.features.bags import relation_features

        ds, k = self.ds, self.opts.relation_topk
        sparse = self._compact(min(k, len(ds.relations)))
        params = {"topk": k, **({"storage": "csr"} if sparse else {})}  # dense: the fingerprints of before
        fp = Fingerprint("relation/1").params(params).array(np.int64(ds.num_entities)).array(ds.relation_triples).hexdigest()
        if self._fresh(["relation"], fp):
            return self._row("relation", "reused")
        t = time.perf_counter()
        mat, mask, meta = relation_features(ds, k, sparse=sparse)
        self._save(
            "relation",
            mat,
            mask,
            meta,
            time.perf_counter() - t,
            fp,
            params,
            "bag of relations (MCLEA)",
            {"entities_per_s": ds.num_entities},
        )

    def attribute(self):
        from kgalign.features.bags import attribute_features

        ds, k = self.ds, self.opts.attribute_topk
        sparse = self._compact(min(k, len(ds.attributes)))
        params = {"topk": k, **({"storage": "csr"} if sparse else {})}  # dense: the fingerprints of before
        fp = (
            Fingerprint("attribute/1")
            .params(params)
            .array(np.int64(ds.num_entities))
            .array(ds.attr_entity)
            .array(ds.attr_key)
            .array(ds.num_entity)
            .array(ds.num_key)
            .hexdigest()
        )
        if self._fresh(["attribute"], fp):
            return self._row("attribute", "reused")
        t = time.perf_counter()
        mat, mask, meta = attribute_features(ds, k, sparse=sparse)
        self._save(
            "attribute",
            mat,
            mask,
            meta,
            time.perf_counter() - t,
            fp,
            params,
            "bag of attribute keys (MCLEA)",
            {"entities_per_s": ds.num_entities},
        )

    def numeric(self):
        from kgalign.features.numeric import numeric_features

        ds = self.ds
        storage = "float16" if self._compact(min(self.opts.numeric_topk, len(ds.attributes))) else "dense"
        params = {"topk": self.opts.numeric_topk, "transform": self.opts.numeric_transform}
        if storage != "dense":
            params["storage"] = storage
        fp = (
            Fingerprint("numeric/1")
            .params(params)
            .array(np.int64(ds.num_entities))
            .array(ds.num_entity)
            .array(ds.num_key)
            .array(ds.num_value)
            .hexdigest()
        )
        if self._fresh(["numeric", "numeric_present"], fp):
            self._row("numeric", "reused")
            return self._row("numeric_present", "reused")
        t = time.perf_counter()
        values, present, mask, meta = numeric_features(ds, self.opts.numeric_topk, self.opts.numeric_transform)
        sec = time.perf_counter() - t
        units = {"entities_per_s": ds.num_entities}
        # numeric_present first: a manifest naming `numeric` implies its presence matrix exists
        self._save(
            "numeric_present",
            present,
            mask,
            {"columns": meta["columns"], "of": "numeric"},
            sec,
            fp,
            params,
            "presence of numeric values (0/1)",
            units,
            storage,
        )
        featurizer = f"numeric values, {params['transform']} per attribute"
        self._save("numeric", values, mask, meta, sec, fp, params, featurizer, units, storage)

    def name(self):
        from kgalign.features.text import entity_names, load_text_encoder, name_features, text_model_key

        ds, o = self.ds, self.opts
        names, meta = entity_names(ds)
        model = o.name_model or ("hash" if meta["named"] > NAME_MODEL_LIMIT else "minilm")
        if model == "hash":
            if o.name_model is None:
                log.info("%d named entities: names by character n-gram hashing (--name-model minilm: the text encoder)", meta["named"])
            return self._hashed_names(names, meta)
        params = {"model": model}
        key = text_model_key(model, o.weights, o.clip_backend, o.clip_arch)
        fp = Fingerprint("name/1").params(params).params(key).strings(names).hexdigest()
        if self._fresh(["name"], fp):
            return self._row("name", "reused")
        from kgalign.device import resolve_device

        _quiet_hf(self.progress)
        enc = load_text_encoder(
            model,
            str(resolve_device(o.device)),
            o.batch_size,
            o.weights,
            threads=max(1, os.cpu_count() or 1),
            clip_backend=o.clip_backend,
            clip_arch=o.clip_arch,
        )
        t = time.perf_counter()
        mat, mask = name_features(names, enc, self.progress)
        meta["model_key"] = key
        self._save(
            "name", mat, mask, meta, time.perf_counter() - t, fp, params, f"text encoder {model}", {"entities_per_s": int(mask.sum())}
        )

    def _hashed_names(self, names: list, meta: dict):
        from kgalign.features.ngrams import KEY, hashed_ngrams

        sparse = self._compact(self.opts.name_hash_dim)
        params = {"model": "hash", "dim": self.opts.name_hash_dim, "n": 3, "storage": "csr" if sparse else "dense"}
        fp = Fingerprint("name/1").params(params).params(KEY).strings(names).hexdigest()
        if self._fresh(["name"], fp):
            return self._row("name", "reused")
        t = time.perf_counter()
        mat, mask = hashed_ngrams(names, self.opts.name_hash_dim, 3, sparse=sparse)
        meta["model_key"] = KEY
        featurizer = "character 3-gram hashing"
        self._save("name", mat, mask, meta, time.perf_counter() - t, fp, params, featurizer, {"entities_per_s": int(mask.sum())})

    def image(self, explicit: bool):
        from kgalign.features import images_fetch as fetch

        ds, o = self.ds, self.opts
        if o.image_model not in IMAGE_MODELS:
            raise InputError(f"unknown --image-model {o.image_model!r}; choose one of {', '.join(IMAGE_MODELS)}")
        if o.image_model == "none":
            if explicit:
                raise InputError("image features requested but --image-model is none")
            return self._row("image", "skipped", "--image-model none")
        try:
            key = self.image_key or _image_model_key(o)
        except MissingResourceError as exc:
            if explicit:
                raise
            return self._row("image", "skipped", str(exc))
        params = {"model": o.image_model, "max_bytes": o.max_bytes, "allow_private_addresses": o.allow_private_addresses}
        fp = (
            Fingerprint("image/1")
            .params(params)
            .params(key)
            .array(np.int64(ds.num_entities))
            .array(ds.image_entity)
            .strings(ds.image_source)
            .hexdigest()
        )
        prev = self.manifest.get("image", {})
        retry = prev.get("failed_sources", 0) > 0
        if self._fresh(["image"], fp, extra_ok=not retry):
            return self._row("image", "reused")
        if retry and prev.get("fingerprint") == fp and not o.force:
            log.info("retrying %d image sources that failed last time", prev["failed_sources"])
        from kgalign.device import resolve_device
        from kgalign.features.image import FeatureCache, image_features

        cache_root = Path(o.cache_dir) if o.cache_dir else default_cache_dir()
        cfg = fetch.FetchConfig(
            timeout=o.timeout,
            total_timeout=o.total_timeout,
            retries=o.retries,
            max_bytes=o.max_bytes,
            allow_private=o.allow_private_addresses,
            workers=o.workers,
        )
        t0 = time.perf_counter()
        with Progress(len(set(ds.image_source)), "fetch images", enabled=self.progress) as bar:
            fetched = fetch.fetch_all(ds.image_source, cfg, fetch.ImageCache(cache_root), progress=lambda d, n: bar.set(d))
        t_fetch = time.perf_counter() - t0
        device = str(resolve_device(o.device))
        _quiet_hf(self.progress)
        if o.image_model == "vgg16":
            from kgalign.features.vgg import VGGImageEncoder

            enc = VGGImageEncoder(o.weights, device, o.download)
        elif o.image_model == "pixels":
            from kgalign.features.pixels import PixelImageEncoder

            enc = PixelImageEncoder()
        else:
            from kgalign.features.clip import load_clip_backend

            enc = load_clip_backend(o.weights, device, o.batch_size, o.clip_backend, o.clip_arch)
        enc.key = key
        t1 = time.perf_counter()
        mat, mask, failures = image_features(
            ds, fetched, enc, FeatureCache(cache_root, key), o.batch_size, max(1, os.cpu_count() or 1), self.progress
        )
        t_enc = time.perf_counter() - t1
        report = self._image_report(fetched, mask, failures, t_fetch, key)
        meta = {
            "model_key": key,
            "cache_dir": str(cache_root),
            "failed_sources": len(failures),
            "fetch_seconds": round(t_fetch, 3),
            "encode_seconds": round(t_enc, 3),
            "downloaded": report["downloaded"],
            "from_cache": report["from_cache"],
        }
        units = {"entities_per_s": int(mask.sum())}
        self._save("image", mat, mask, meta, t_fetch + t_enc, fp, params, f"image encoder {o.image_model}", units)

    def _image_report(self, fetched, mask, failures, t_fetch, key) -> dict:
        ds = self.ds
        with_src = np.zeros(ds.num_entities, bool)
        with_src[np.asarray(ds.image_entity, np.int64)] = True
        per_kg = {}
        for kg in (1, 2):
            sel = ds.entity_kg == kg
            per_kg[f"kg{kg}"] = {
                "entities": int(sel.sum()),
                "with_image_source": int((with_src & sel).sum()),
                "with_image_feature": int((mask & sel).sum()),
            }
        rows = [
            {
                "entity": f["entity"],
                "kg": int(ds.entity_kg[f["entity"]]),
                "term": ds.entities[f["entity"]],
                "source": f["source"],
                "reason": f["reason"],
            }
            for f in failures
        ]
        report = {
            "model_key": key,
            "coverage": per_kg,
            "sources": len(fetched),
            "downloaded": sum(1 for r in fetched.values() if r.ok and not r.from_cache and r.attempts > 0),
            "from_cache": sum(1 for r in fetched.values() if r.from_cache),
            "local_files": sum(1 for r in fetched.values() if r.ok and r.attempts == 0 and not r.from_cache),
            "failed_sources": len(rows),
            "fetch_seconds": round(t_fetch, 3),
            "failures": rows,
        }
        d = store.features_dir(self.path)
        atomic_write_text(d / "image_report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
        from kgalign.data.store import escape

        lines = ["entity\tkg\tterm\tsource\treason"] + [
            f"{r['entity']}\t{r['kg']}\t{escape(r['term'])}\t{escape(r['source'])}\t{escape(r['reason'])}" for r in rows
        ]
        atomic_write_text(d / "image_report.tsv", "\n".join(lines) + "\n")
        log.info(
            "images: %s; %d sources failed (see %s)",
            ", ".join(f"{k} {v['with_image_feature']}/{v['entities']} entities" for k, v in per_kg.items()),
            len(rows),
            d / "image_report.tsv",
        )
        return report


def _prepare_images(run: _Run, opts: FeatureOptions, explicit: bool) -> None:
    """Checks before any feature is computed: the image model (when asked for) and the cache directory."""
    if explicit and opts.image_model not in IMAGE_MODELS:
        raise InputError(f"unknown --image-model {opts.image_model!r}; choose one of {', '.join(IMAGE_MODELS)}")
    if opts.image_model not in IMAGE_MODELS or opts.image_model == "none":
        return
    try:
        run.image_key = _image_model_key(opts)
    except MissingResourceError:
        if explicit:
            raise
        return  # images will be skipped with this reason: no cache needed
    # the cache is written after minutes of work: check it first
    check_output_dir(Path(opts.cache_dir) if opts.cache_dir else default_cache_dir(), "the cache directory (--cache-dir)")


def compute_features(
    dataset_path: str | os.PathLike, modalities: list[str] | None = None, opts: FeatureOptions | None = None, progress: bool = False
) -> dict:
    """Compute (or reuse) the features of ``dataset_path``. Returns a summary:
    ``{"dataset", "features": [{feature, status, dim, coverage, seconds, throughput, reason}]}``."""
    opts = opts or FeatureOptions()
    from kgalign.features.hub import allowing_downloads

    with allowing_downloads(opts.download):
        return _compute_features(dataset_path, modalities, opts, progress)


def _compute_features(dataset_path, modalities: list[str] | None, opts: FeatureOptions, progress: bool) -> dict:
    opts.validate()
    _guard_torchvision()
    ds = load_dataset(dataset_path)
    remove_stale(store.features_dir(ds.path))  # temporaries of a killed run
    try:
        store.read_manifest(ds.path)
    except InputError as exc:
        if not opts.force:
            raise
        # --force recomputes everything: a damaged manifest of our own derived files is simply started afresh
        log.warning("%s; starting a new features manifest", exc)
        (store.features_dir(ds.path) / store.MANIFEST).unlink()
    why_not = supported(ds, opts)
    explicit = modalities is not None
    if explicit:
        bad = [m for m in modalities if m not in MODALITIES]
        if bad:
            raise InputError(f"unknown modality {bad[0]!r}; choose from {', '.join(MODALITIES)}")
        for m in modalities:
            if why_not[m]:
                raise InputError(f"cannot compute {m} features: {why_not[m]}", str(ds.path))
        todo = list(dict.fromkeys(modalities))
    else:
        todo = [m for m in MODALITIES if why_not[m] is None]
    run = _Run(ds, opts, progress)
    if "image" in todo:
        _prepare_images(run, opts, explicit)
    if not explicit:
        for m in MODALITIES:
            if why_not[m] is not None:
                run._row(m, "skipped", why_not[m])
    for m in todo:
        if m == "image":
            run.image(explicit)
        else:
            getattr(run, m)()
    order = {m: i for i, m in enumerate(("relation", "attribute", "numeric", "numeric_present", "name", "image"))}
    run.rows.sort(key=lambda r: order.get(r["feature"], 99))
    return {"dataset": str(ds.path), "options": asdict(opts), "features": run.rows}


def summary_table(summary: dict) -> str:
    """The table `kgalign features` prints: feature, status, dim, coverage per KG, seconds."""
    from tabulate import tabulate

    def cov(row, kg):
        c = (row.get("coverage") or {}).get(kg)
        if not c:
            return "-"
        return f"{c[0]}/{c[1]} ({100.0 * c[0] / c[1]:.1f}%)" if c[1] else "0/0"

    rows = [
        [
            r["feature"],
            r["status"],
            r["dim"] if r["dim"] is not None else "-",
            cov(r, "kg1"),
            cov(r, "kg2"),
            r["seconds"] if r["seconds"] is not None else "-",
        ]
        for r in summary["features"]
    ]
    table = tabulate(rows, headers=["feature", "status", "dim", "KG1 coverage", "KG2 coverage", "seconds"], tablefmt="simple")
    notes = [f"{r['feature']} skipped: {r['reason']}" for r in summary["features"] if r["status"] == "skipped" and r.get("reason")]
    return table + ("\n\n" + "\n".join(notes) if notes else "")
