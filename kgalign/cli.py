"""Command-line interface: a thin Typer layer over the library.

Data goes to stdout; logs and progress go to stderr. Heavy modules (torch,
torch_geometric, sentence_transformers) are imported inside the commands that
need them so that ``kgalign --help`` stays instant.

Exit codes: 0 success, 1 internal error, 2 bad input, 3 missing resource,
130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from kgalign.errors import KgalignError
from kgalign.models.registry import models_help

app = typer.Typer(
    name="kgalign",
    help=(
        "Multi-modal entity alignment between two knowledge graphs.\n\n"
        "Pipeline: ingest -> features -> train -> evaluate -> align -> export.\n\n"
        "Example:\n\n"
        "  kgalign ingest --kg1 a.ttl --kg2 b.ttl --links links.tsv -o ds\n\n"
        "  kgalign features ds && kgalign train ds --model noco -o run\n\n"
        "  kgalign evaluate run && kgalign export run --format ttl > links.ttl"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

log = logging.getLogger("kgalign")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (it may be replaced, e.g. by test runners)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = _StderrHandler()
    handler.setFormatter(
        logging.Formatter("%(levelname)s: %(message)s" if not verbose else "%(asctime)s %(name)s %(levelname)s: %(message)s")
    )
    root = logging.getLogger("kgalign")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def show_progress(quiet: bool) -> bool:
    """Progress bars only when stderr is a terminal and not quiet."""
    return (not quiet) and sys.stderr.isatty()


def _stop_now(code: int) -> None:
    """Exit with ``code``; at once when worker threads (e.g. a download blocked in a read) are still alive,
    since the interpreter would otherwise wait for them at exit."""
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stderr.flush()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)
    raise typer.Exit(code)


def run_guarded(fn, *args, **kwargs):
    """Call library code; turn every error into one message and an exit code (never a traceback).

    kgalign errors carry their code; a file that already exists, a full disk or an unusable path
    is 2; Ctrl-C is 130 (writers have removed their temporaries by then); anything else is an
    internal error, 1, whose traceback ``-v`` shows.
    """
    try:
        return fn(*args, **kwargs)
    except KgalignError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except FileExistsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: nothing half-written was left; run the command again to continue (train: add --resume)", err=True)
        _stop_now(130)
    except BrokenPipeError:
        raise  # stdout's reader went away: the command decides (export exits 141 quietly)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except (typer.Exit, SystemExit):
        raise
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (run with -v for details; please report it)", err=True)
        raise typer.Exit(1) from None


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


QuietOpt = typer.Option(False, "-q", "--quiet", help="Only warnings and errors on stderr.")
VerboseOpt = typer.Option(False, "-v", "--verbose", help="Debug logging on stderr.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def _print_version(value: bool) -> None:
    if value:
        from kgalign import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
):
    """Multi-modal entity alignment between two knowledge graphs."""


# ---------------------------------------------------------------- ingest / info
# (owned by kgalign.data)

_INGEST_HELP = """Read two knowledge graphs and their reference links into a dataset directory.

Each graph may be given by several files: RDF (.nt .nq .ttl .trig .rdf .owl .xml .jsonld .n3, plain or
.gz/.bz2/.xz), TSV relation triples (head, relation, tail; .tsv/.txt), FORMAT:PATH to force a format
(e.g. nt:dump.dat, tsv:edges, openke:DIR), or - for stdin. Benchmark layouts (--layout KIND:PATH) and
extra files combine. Links: TSV (kg1 entity, kg2 entity) or RDF owl:sameAs. See docs/ingest.md.

Examples:

\b
  kgalign ingest -o ds --kg1 en.nt.gz --kg2 fr.ttl --links links.tsv
  kgalign ingest -o ds --layout mclea:data/DB15K-FB15K --layout mmkg:data/mmkg \\
      --mmkg-pair DB15K-FB15K --kg2-names fb_names.tsv --split legacy --legacy-valid 0.1

Exit status: 0 ok, 2 bad input (message names file and line; nothing written), 3 missing file.
"""


@app.command("ingest", help=_INGEST_HELP)
def ingest_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="Dataset directory to create."),
    kg1: List[str] = typer.Option([], "--kg1", metavar="FILE", help="KG1 graph file (RDF, relation TSV, FORMAT:PATH, or -). Repeatable."),
    kg2: List[str] = typer.Option([], "--kg2", metavar="FILE", help="KG2 graph file. Repeatable."),
    kg1_attributes: List[str] = typer.Option(
        [], "--kg1-attributes", metavar="FILE", help="KG1 attribute triples TSV (entity, attribute, value)."
    ),
    kg2_attributes: List[str] = typer.Option([], "--kg2-attributes", metavar="FILE", help="KG2 attribute triples TSV."),
    kg1_names: List[str] = typer.Option([], "--kg1-names", metavar="FILE", help="KG1 names TSV (entity, name[, lang])."),
    kg2_names: List[str] = typer.Option([], "--kg2-names", metavar="FILE", help="KG2 names TSV."),
    kg1_images: List[str] = typer.Option([], "--kg1-images", metavar="FILE", help="KG1 images TSV (entity, URL or path)."),
    kg2_images: List[str] = typer.Option([], "--kg2-images", metavar="FILE", help="KG2 images TSV."),
    kg1_names_from_iri: bool = typer.Option(
        False, "--kg1-names-from-iri", help="KG1 entities without a name get their IRI's local name (Rebecca_Hall -> Rebecca Hall)."
    ),
    kg2_names_from_iri: bool = typer.Option(False, "--kg2-names-from-iri", help="Same for KG2."),
    underscores: bool = typer.Option(False, "--underscores-to-spaces", help="Names in name TSVs: '_' becomes ' ' (Wikipedia-style)."),
    links: List[str] = typer.Option([], "--links", metavar="FILE", help="Reference links: TSV (kg1, kg2) or RDF owl:sameAs. Repeatable."),
    layout: List[str] = typer.Option(
        [],
        "--layout",
        metavar="KIND:PATH",
        help="Benchmark layout: mclea:DIR (also jape:, gcn-align:, dbp15k:), openea:DIR or mmkg:DIR. Repeatable; read first, in order.",
    ),
    mmkg_pair: Optional[str] = typer.Option(None, "--mmkg-pair", help="Graphs of an mmkg layout, KG1-KG2, e.g. DB15K-FB15K."),
    mmkg_images: Optional[Path] = typer.Option(
        None, "--mmkg-image-dir", help="Folder of MMKB image files named by image id; without it ImageIndex is only counted."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", help="Format for inputs whose name does not tell it (and stdin): nt nq ttl trig xml json-ld n3 tsv."
    ),
    name_predicate: List[str] = typer.Option(
        [],
        "--name-predicate",
        metavar="IRI",
        help="Name predicate (IRI or rdfs:/skos:/schema:/foaf: CURIE); replaces the defaults. Repeatable.",
    ),
    image_predicate: List[str] = typer.Option(
        [], "--image-predicate", metavar="IRI", help="Image predicate; replaces the defaults. Repeatable."
    ),
    split: Optional[str] = typer.Option(
        None, "--split", help="random (default), legacy (MEAformer family: RandomState(42) shuffle, no valid), or given (split files)."
    ),
    train_ratio: float = typer.Option(0.2, "--train-ratio", help="Fraction of links for training (also the legacy rate)."),
    valid_ratio: float = typer.Option(0.1, "--valid-ratio", help="Fraction for validation (random split)."),
    test_ratio: Optional[float] = typer.Option(None, "--test-ratio", help="Fraction for test (random split); default all the rest."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random split and of --legacy-valid."),
    legacy_valid: float = typer.Option(
        0.0, "--legacy-valid", help="With --split legacy: move this fraction of all links from test to valid; train unchanged."
    ),
    train_links: List[str] = typer.Option(
        [], "--train-links", metavar="FILE", help="Split file of training links (implies --split given)."
    ),
    valid_links: List[str] = typer.Option([], "--valid-links", metavar="FILE", help="Split file of validation links."),
    test_links: List[str] = typer.Option([], "--test-links", metavar="FILE", help="Split file of test links."),
    fold: int = typer.Option(1, "--fold", help="OpenEA 721_5fold fold used by --split given."),
    lenient: bool = typer.Option(False, "--lenient", help="Skip bad lines (and links to unknown entities) and report how many."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = JsonOpt,
):
    setup_logging(quiet, verbose)
    from kgalign.data.info import counts_table
    from kgalign.data.ingest import GraphSpec, IngestOptions, ingest_to
    from kgalign.data.terms import DEFAULT_IMAGE_PREDICATES, DEFAULT_NAME_PREDICATES
    from kgalign.errors import InputError

    def parse_layout(item: str):
        from kgalign.data.ingest import LAYOUT_HELP, layout_kind

        kind, sep, path = item.partition(":")
        if not sep or layout_kind(kind) is None or not path:
            raise InputError(f"--layout wants KIND:PATH with KIND {LAYOUT_HELP}; got {item!r}")
        return layout_kind(kind), path

    def build():
        if sum(x == "-" for x in [*kg1, *kg2, *links]) > 1:
            raise InputError("only one input can be - (stdin)")
        opts = IngestOptions(
            kg1=GraphSpec(kg1, kg1_attributes, kg1_names, kg1_images, kg1_names_from_iri),
            kg2=GraphSpec(kg2, kg2_attributes, kg2_names, kg2_images, kg2_names_from_iri),
            links=list(links),
            layouts=[parse_layout(x) for x in layout],
            default_format=fmt,
            name_predicates=tuple(name_predicate) or DEFAULT_NAME_PREDICATES,
            image_predicates=tuple(image_predicate) or DEFAULT_IMAGE_PREDICATES,
            underscores_to_spaces=underscores,
            split=split,
            train_ratio=train_ratio,
            valid_ratio=valid_ratio,
            test_ratio=test_ratio,
            seed=seed,
            legacy_valid=legacy_valid,
            train_links=list(train_links),
            valid_links=list(valid_links),
            test_links=list(test_links),
            fold=fold,
            mmkg_pair=mmkg_pair,
            mmkg_image_dir=str(mmkg_images) if mmkg_images else None,
            lenient=lenient,
        )
        return ingest_to(opts, output, overwrite=force)

    ds, report = run_guarded(build)
    for w in report["warnings"]:
        log.warning(w)
    if report["skipped_lines"]:
        log.warning("skipped %d bad lines (--lenient); first: %s", report["skipped_lines"], "; ".join(report["first_skipped"]))
    log.info("wrote %s", output)
    if as_json:
        emit_json({"path": str(output.resolve()), "counts": ds.manifest["counts"], "split": ds.manifest["split"], **report})
    else:
        typer.echo(counts_table(ds.manifest["counts"]))


@app.command("info")
def info_cmd(
    dataset: Path = typer.Argument(..., help="Dataset directory written by `kgalign ingest`."),
    check: bool = typer.Option(
        False, "--check", help="Full check: sha256 of every file, every row parsed, every id in range, and the stored features."
    ),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = JsonOpt,
):
    """Print a dataset's statistics (entities, relations, triples, names, images, links per split).

    Every data file is checked to be there with the size ingest recorded; --check also verifies
    checksums and contents. A damaged file is named, with exit status 2.

    Example:

      kgalign info ds --json

      kgalign info ds --check
    """
    setup_logging(quiet, verbose)
    from kgalign.data.info import info_dict, info_text

    def gather():
        info = info_dict(dataset, check=check)
        if check:
            from kgalign.data.store import load_dataset
            from kgalign.features.store import check_features

            n = load_dataset(dataset).num_entities
            info["check"] = {"dataset": "ok", "features": check_features(dataset, n)}
        return info

    info = run_guarded(gather)
    if as_json:
        emit_json(info)
    else:
        typer.echo(info_text(info))
        if check:
            feats = ", ".join(info["check"]["features"]) or "none stored"
            typer.echo(f"check: dataset ok (checksums, rows, ids); features ok: {feats}")


# ---------------------------------------------------------------- synth
# (owned by kgalign.data.synthgen)


@app.command("synth")
def synth_cmd(
    output: Path = typer.Argument(..., help="Folder to create for the generated TSV files."),
    entities: int = typer.Option(..., "--entities", "-n", help="Entities per side (at least 10)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same settings and seed give the same files."),
    degree: float = typer.Option(5.0, "--degree", help="Relation triples per entity per side, on average."),
    dangling: float = typer.Option(0.1, "--dangling", help="Fraction of each side's entities without a counterpart."),
    relations: int = typer.Option(200, "--relations", help="Relation types (Zipf-skewed frequencies)."),
    attributes: int = typer.Option(60, "--attributes", help="Numeric attribute keys."),
    edge_loss: float = typer.Option(0.2, "--edge-loss", help="Probability that a side drops a latent edge."),
    noise_edges: float = typer.Option(0.05, "--noise-edges", help="Random edges added per side, as a fraction of its edges."),
    numeric_noise: float = typer.Option(0.02, "--numeric-noise", help="Relative standard deviation of each side's numbers."),
    name_noise: float = typer.Option(0.3, "--name-noise", help="Probability that a side misspells a name (one edit)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = JsonOpt,
):
    """Generate a synthetic graph pair (TSV files for `kgalign ingest`) with known links.

    A latent graph with power-law degrees and typed relations gives two graphs by independent
    edge loss and noise edges, renamed relations and attributes, dangling entities, misspelled
    names and noisy numbers. OUTPUT/synth.json holds the settings, counts, how hard the pair is,
    and the ingest command. See docs/synthetic.md.

    Examples:

    \b
      kgalign synth pair --entities 10000
      kgalign synth pair --entities 1000000 --seed 1 --dangling 0.2 --force
      kgalign ingest -o ds --kg1 pair/kg1.tsv --kg1-attributes pair/kg1_attributes.tsv \\
          --kg2 pair/kg2.tsv --kg2-attributes pair/kg2_attributes.tsv --links pair/links.tsv

    Exit status: 0 ok, 2 bad setting (named) or existing output without --force.
    """
    setup_logging(quiet, verbose)
    from kgalign.data.synthgen import SynthSettings, generate

    settings = SynthSettings(
        entities=entities,
        seed=seed,
        degree=degree,
        dangling=dangling,
        relations=relations,
        attributes=attributes,
        edge_loss=edge_loss,
        noise_edges=noise_edges,
        numeric_noise=numeric_noise,
        name_noise=name_noise,
    )
    summary = run_guarded(generate, settings, output, overwrite=force)
    log.info("wrote %s", output)
    if as_json:
        emit_json(summary)
    else:
        c, h = summary["counts"], summary["hardness"]
        for k in ("kg1", "kg2"):
            typer.echo(f"{k}: {c[k]['entities']} entities, {c[k]['relation_triples']} relation triples, {c[k]['numeric_triples']} numeric")
        typer.echo(f"links: {c['links']}; name exact-match Hits@1 {h['name_exact_match_hits@1']}")
        typer.echo(summary["ingest"])


# ---------------------------------------------------------------- features
# (owned by kgalign.features)

_FEATURES_HELP = """Compute per-entity feature matrices (with availability masks) into DATASET/features/.

Modalities: relation (bag of relations), attribute (bag of attribute keys), numeric (normalised numeric
values + numeric_present), name (text encoder), image (fetched images -> VGG-16 fc7 or CLIP). By default
every modality the dataset supports; image only when the dataset has image sources and the model weights
are available (otherwise it is skipped with the reason, exit 0). Unchanged inputs and parameters reuse the
stored features; --force recomputes. Downloads and image vectors are cached (--cache-dir), so an
interrupted run continues. See docs/features.md.

Examples:

\b
  kgalign features ds
  kgalign features ds --modalities relation,attribute,numeric,name --name-model use-multilingual
  kgalign features ds --image-model vgg16 --weights vgg16-397923af.pth --workers 32 --json
  kgalign features ds --image-model clip --clip-backend open_clip --clip-arch ViT-B-32 --weights clip.pt
  kgalign features big-ds --sparse --name-model hash

Exit status: 0 ok, 2 bad input, 3 missing resource (e.g. image features asked for without weights).
"""


@app.command("features", help=_FEATURES_HELP)
def features_cmd(
    dataset: Path = typer.Argument(..., help="Dataset directory written by `kgalign ingest`."),
    modalities: Optional[str] = typer.Option(
        None, "--modalities", help="Comma-separated: relation,attribute,numeric,name,image. Default: all the dataset supports."
    ),
    relation_topk: int = typer.Option(1000, "--relation-topk", min=1, help="Columns of the relation bag (most frequent relations)."),
    attribute_topk: int = typer.Option(1000, "--attribute-topk", min=1, help="Columns of the attribute bag (most used keys)."),
    numeric_topk: int = typer.Option(1000, "--numeric-topk", min=1, help="Numeric attributes kept (most used)."),
    numeric_transform: str = typer.Option(
        "quantile", "--numeric-transform", help="Per-attribute normalisation: quantile (default) or robust (median/IQR, clipped)."
    ),
    name_model: Optional[str] = typer.Option(
        None,
        "--name-model",
        help="minilm (default up to 50000 named entities, offline), hash (character 3-gram hashing, no model; "
        "the default above that), use-multilingual (kgalign[multilingual]), clip (text tower of --weights), "
        "or a sentence-transformers model path/name.",
    ),
    name_hash_dim: int = typer.Option(256, "--name-hash-dim", min=1, help="Columns of --name-model hash."),
    sparse: Optional[bool] = typer.Option(
        None,
        "--sparse/--dense",
        help="Compact storage: bags (and hashed names) as CSR, other features float16. "
        "Default: only when a dense float32 matrix would exceed 512 MiB.",
    ),
    image_model: str = typer.Option(
        "vgg16",
        "--image-model",
        help="vgg16 (fc7, 4096-d; needs weights), clip (needs weights), pixels (weight-free thumbnail + colour histogram, 832-d), or none.",
    ),
    weights: Optional[str] = typer.Option(
        None,
        "--weights",
        help="Image model weights: torchvision vgg16 state_dict (.pth/.safetensors); a saved Hugging Face CLIP directory "
        "(transformers route); an open_clip checkpoint file (.pt/.bin/.safetensors) or pretrained tag such as openai (open_clip route).",
    ),
    clip_backend: str = typer.Option(
        "auto",
        "--clip-backend",
        help="CLIP implementation for --image-model/--name-model clip: auto (open_clip if installed via kgalign[clip], "
        "else transformers), open_clip, or transformers.",
    ),
    clip_arch: str = typer.Option(
        "ViT-B-32", "--clip-arch", help="open_clip architecture of --weights (open_clip route only), e.g. ViT-B-32, ViT-B-16, RN50."
    ),
    download: bool = typer.Option(
        False,
        "--download",
        help="Allow downloading model weights (VGG-16 through torch.hub, text/CLIP models from their hubs); "
        "off by default: nothing is fetched unless asked.",
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Image and image-vector cache (default $KGALIGN_CACHE_DIR or ~/.cache/kgalign)."
    ),
    allow_private: bool = typer.Option(False, "--allow-private-addresses", help="Allow image URLs on loopback/private/link-local hosts."),
    workers: int = typer.Option(16, "--workers", min=1, help="Concurrent image downloads."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.01, help="Connect/read inactivity timeout, seconds."),
    total_timeout: float = typer.Option(
        60.0, "--total-timeout", min=0.1, help="Whole download of one image (all attempts, redirects and waits), seconds."
    ),
    retries: int = typer.Option(3, "--retries", min=0, help="Retries on connection errors, timeouts, 5xx and 429."),
    max_bytes: int = typer.Option(20 * 1024 * 1024, "--max-bytes", min=1, help="Largest image accepted, bytes."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Batch size of the text and image encoders."),
    force: bool = typer.Option(False, "--force", help="Recompute even if stored features are up to date."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = JsonOpt,
):
    setup_logging(quiet, verbose)
    from kgalign.features.pipeline import FeatureOptions, compute_features, summary_table

    def build():
        mods = None
        if modalities:
            mods = [m.strip() for m in modalities.split(",") if m.strip()]
        opts = FeatureOptions(
            relation_topk=relation_topk,
            attribute_topk=attribute_topk,
            numeric_topk=numeric_topk,
            numeric_transform=numeric_transform,
            name_model=name_model,
            image_model=image_model,
            weights=weights,
            clip_backend=clip_backend,
            clip_arch=clip_arch,
            download=download,
            cache_dir=str(cache_dir) if cache_dir else None,
            allow_private_addresses=allow_private,
            workers=workers,
            timeout=timeout,
            total_timeout=total_timeout,
            retries=retries,
            max_bytes=max_bytes,
            device=device,
            batch_size=batch_size,
            force=force,
            sparse=sparse,
            name_hash_dim=name_hash_dim,
        )
        return compute_features(dataset, mods, opts, progress=show_progress(quiet))

    summary = run_guarded(build)
    for row in summary["features"]:
        if as_json and row["feature"] == "image" and row["status"] == "skipped":
            log.warning("image features skipped: %s", row["reason"])  # the table shows it otherwise
    if as_json:
        emit_json(summary)
    else:
        typer.echo(summary_table(summary))


# ---------------------------------------------------------------- train
# (owned by kgalign.training)


def _train_flags(**flags) -> dict:
    """Explicit `kgalign train` flags (those given) as a nested config override."""
    out: dict = {}
    for key, value in flags.items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


@app.command("train")
def train_cmd(
    dataset: Path = typer.Argument(..., help="Dataset directory (from `kgalign ingest`, with `kgalign features` run on it)."),
    output: Path = typer.Option(..., "-o", "--output", help="Run directory to write (see docs/training.md)."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help=f"Model: {models_help()} (or model.name in --config)."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML or JSON config file (sections model, train, iterative, eval)."
    ),
    set_: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override one config value, e.g. --set model.hidden=256 (repeatable; beats --config)."
    ),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Number of epochs [500; per-model reference value]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training links per optimizer step [3500]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate of AdamW [5e-4]."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay [1e-4; MCLEA 1e-2]."),
    warmup: Optional[float] = typer.Option(None, "--warmup", help="Linear warm-up as a fraction of the schedule [0.15]."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Gradient-norm clipping, 0 = off [1.0]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for python, numpy, torch, CUDA and batch shuffling [42]."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N [auto]."),
    amp: Optional[str] = typer.Option(None, "--amp", help="Mixed precision: auto (bf16/fp16 on GPU, off on CPU), off, fp16, bf16."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Evaluate valid and test links every N epochs [5]."),
    patience: Optional[int] = typer.Option(
        None, "--patience", help="Early stopping after N evaluations without improvement; 0 = off [20]."
    ),
    select_on: Optional[str] = typer.Option(
        None, "--select-on", help="Model selection split: valid (default), test (paper protocol, optimistic) or last."
    ),
    select_metric: Optional[str] = typer.Option(None, "--select-metric", help="Selection metric path [csls.l2r.mrr]."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Save a checkpoint every N epochs [10]."),
    minibatch: Optional[str] = typer.Option(
        None,
        "--minibatch",
        metavar="auto|true|false",
        help="Mini-batch training on sampled subgraphs; auto = when a full-graph step would exceed the memory budget [auto].",
    ),
    modalities: Optional[str] = typer.Option(
        None, "--modalities", metavar="A,B", help="Comma-separated feature modalities to use [all stored]."
    ),
    iterative: Optional[bool] = typer.Option(None, "--iterative/--no-iterative", help="Bootstrapping with mutual nearest neighbours."),
    decisions: Optional[Path] = typer.Option(
        None, "--decisions", help="A review's decisions.tsv: accepted pairs become seeds, rejected pairs known negatives."
    ),
    il_start: Optional[int] = typer.Option(None, "--il-start", help="Epoch at which iterative training starts [epochs/2]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint (same config required)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run in --output."),
    stop_after: Optional[int] = typer.Option(
        None, "--stop-after", help="Run at most N epochs now, checkpoint, and exit 0 (continue later with --resume)."
    ),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = JsonOpt,
):
    """Train an alignment model and write a run directory.

    Model selection uses the validation links; test links are only reported.
    Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and exits 130.

    Example:

      kgalign train ds --model noco -o run --epochs 200 --device cuda

      kgalign train ds --model meaformer -o run --config meaformer.yaml --set model.hidden=256

      kgalign train ds --model noco -o run --resume
    """
    setup_logging(quiet, verbose)

    def _go():
        from kgalign.fsutil import check_output_dir

        check_output_dir(output, "the run directory (-o)")  # before loading anything (torch included)
        from kgalign.training.pipeline import Trainer
        from kgalign.training.settings import build_config

        flags = _train_flags(
            **{
                "train.epochs": epochs,
                "train.batch_size": batch_size,
                "train.lr": lr,
                "train.weight_decay": weight_decay,
                "train.warmup": warmup,
                "train.grad_clip": grad_clip,
                "train.seed": seed,
                "train.device": device,
                "train.amp": amp,
                "train.eval_every": eval_every,
                "train.patience": patience,
                "train.select_on": select_on,
                "train.select_metric": select_metric,
                "train.checkpoint_every": checkpoint_every,
                "train.minibatch": minibatch,
                "iterative.enabled": iterative,
                "train.decisions": None if decisions is None else str(decisions),
                "iterative.start": il_start,
            }
        )
        if modalities is not None:
            flags["modalities"] = [m.strip() for m in modalities.split(",") if m.strip()]
        cfg = build_config(dataset, model, config=config, sets=set_, flags=flags)
        return Trainer(cfg, output, resume=resume, force=force, progress=show_progress(quiet), stop_after=stop_after).run()

    result = run_guarded(_go)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if not result.finished:
        typer.echo(f"stopped at epoch {result.epoch} of {result.config['train']['epochs']}; continue with --resume", err=True)
        if as_json:
            emit_json({"finished": False, "epoch": result.epoch, "run_dir": str(result.run_dir)})
        return
    if as_json:
        emit_json(result.results)
        return
    from kgalign.training.report import format_results

    text = format_results(result.results)
    if result.results["selection"]["selected_on_test"]:
        typer.echo("WARNING: " + result.results["warning"], err=True)
    typer.echo(text)


# ---------------------------------------------------------------- evaluate
# (owned by kgalign.evaluation)


def _thresholds(text: Optional[str]):
    from kgalign.errors import InputError

    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--thresholds must be comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise InputError(f"--thresholds must be comma-separated finite numbers, got {text!r}")
    return values


@app.command("evaluate")
def evaluate_cmd(
    run: Optional[Path] = typer.Argument(None, help="Run directory (config.json + embeddings.npy)."),
    split: str = typer.Option("test", "--split", help="Links to evaluate on: test or valid."),
    candidates: str = typer.Option(
        "test",
        "--candidates",
        help="test: the other graph's entities of that split's links (benchmark protocol); "
        "pool: every entity of the other graph not in a training link (what train ranks valid links against); "
        "all: every entity of the other graph.",
    ),
    csls_k: int = typer.Option(3, "--csls-k", help="Neighbours in the CSLS correction."),
    block_size: int = typer.Option(4096, "--block-size", help="Rows per similarity block (memory bound)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N [cpu]."),
    sample: Optional[int] = typer.Option(
        None, "--sample", help="Rank a seeded sample of N links against every candidate (cosine only): for very large graphs."
    ),
    links: Optional[Path] = typer.Option(
        None, "--links", help="Score an exported link file (nt, ttl, tsv, alignment, sssom, jsonl) with precision/recall/F1 instead."
    ),
    links_format: Optional[str] = typer.Option(None, "--links-format", help="Format of --links when its name does not tell."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Dataset directory (instead of the run's)."),
    count: str = typer.Option(
        "gold-entities", "--count", help="With --links: gold-entities (pairs with a gold KG1 or KG2 entity count) or all."
    ),
    base_kg1: Optional[str] = typer.Option(None, "--base-kg1", help="With --links: IRI prefix that export added to KG1 terms."),
    base_kg2: Optional[str] = typer.Option(None, "--base-kg2", help="With --links: IRI prefix that export added to KG2 terms."),
    thresholds: Optional[str] = typer.Option(
        None, "--thresholds", help="With --links: comma-separated score thresholds to sweep, e.g. 0.2,0.4,0.6."
    ),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = JsonOpt,
):
    """Hits@1/5/10, MRR and MR in both directions, cosine and CSLS; or P/R/F1 of a link file.

    Example:

      kgalign evaluate run                      # test links, benchmark protocol

      kgalign evaluate run --candidates pool --split valid --json

      kgalign evaluate run --sample 10000       # a million entities: 10k sampled links, exact ranks

      kgalign evaluate run --links links.nt     # precision/recall/F1 vs the test links

      kgalign evaluate --links links.tsv --dataset ds --thresholds 0.3,0.5,0.7
    """
    setup_logging(quiet, verbose)
    if links is not None:
        from kgalign.evaluation.api import evaluate_link_file, linkset_table

        res = run_guarded(
            evaluate_link_file,
            links,
            run=run,
            dataset=dataset,
            fmt=links_format,
            split=split,
            count=count,
            base_kg1=base_kg1,
            base_kg2=base_kg2,
            thresholds=run_guarded(_thresholds, thresholds),
        )
        if as_json:
            emit_json(res)
        else:
            typer.echo(linkset_table(res))
        return
    if run is None:
        typer.echo("error: give a RUN directory (or --links FILE)", err=True)
        raise typer.Exit(2)
    from kgalign.evaluation.api import evaluate_run, metrics_table

    res = run_guarded(
        evaluate_run,
        run,
        split=split,
        candidates=candidates,
        csls_k=csls_k,
        block_size=block_size,
        device=device,
        dataset=dataset,
        sample=sample,
    )
    if as_json:
        emit_json(res)
    else:
        typer.echo(metrics_table(res))


# ---------------------------------------------------------------- align / export
# (owned by kgalign.export)


@app.command("align")
def align_cmd(
    run: Path = typer.Argument(..., help="Run directory (config.json + embeddings.npy)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Predictions file [RUN/predictions.tsv]."),
    candidates: str = typer.Option(
        "all", "--candidates", help="all: every entity not in a training link (production); test: the test links' entities (benchmark)."
    ),
    similarity: str = typer.Option("csls", "--similarity", help="Similarity that ranks candidates and drives matching: csls or cosine."),
    score: str = typer.Option("cosine", "--score", help="Score written per pair and compared with the thresholds: cosine or csls."),
    strategy: str = typer.Option("greedy", "--strategy", help="top1, mutual, greedy, hungarian or stable (see docs/export.md)."),
    topk: int = typer.Option(10, "--topk", help="Candidates kept per source (greedy, stable, sparse hungarian)."),
    csls_k: int = typer.Option(3, "--csls-k", help="Neighbours in the CSLS correction."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Pairs scoring below stay unmatched (or go to review)."),
    review_threshold: Optional[float] = typer.Option(
        None, "--review-threshold", help="Pairs in [review-threshold, threshold) get status review."
    ),
    no_seeds: bool = typer.Option(
        False, "--no-seeds", help="Leave the training links out of the file (they are flagged 'seed' otherwise)."
    ),
    block_size: int = typer.Option(4096, "--block-size", help="Rows per similarity block (memory bound)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N [cpu]."),
    search: str = typer.Option(
        "auto", "--search", help="exact (blocked), faiss (approximate; kgalign[ann]) or auto (faiss above 1e9 source x target pairs)."
    ),
    index: str = typer.Option("auto", "--index", help="FAISS index: auto (flat up to 50k targets, else ivf), flat, ivf or hnsw."),
    nlist: Optional[int] = typer.Option(None, "--nlist", help="IVF cells [4 sqrt(targets)]."),
    nprobe: int = typer.Option(32, "--nprobe", help="IVF cells scanned per query."),
    hnsw_m: int = typer.Option(32, "--hnsw-m", help="HNSW links per node."),
    ef_search: int = typer.Option(128, "--ef-search", help="HNSW search breadth."),
    rerank: Optional[int] = typer.Option(None, "--rerank", help="FAISS + CSLS: cosine candidates per source rescored [max(3 topk, 30)]."),
    memory_budget: int = typer.Option(512, "--memory-budget", help="MiB for one block of exact scores (sets the rows per block)."),
    precision: str = typer.Option(
        "float32", "--precision", help="Exact search products: float32, or bfloat16/float16 rescored in float32 (same result; for GPUs)."
    ),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = typer.Option(False, "--json", help="Summary as JSON on stdout (otherwise on stderr)."),
):
    """Predict aligned pairs with scores: kg1, kg2, score, status (accepted|review|seed).

    Example:

      kgalign align run --threshold 0.5 --review-threshold 0.3

      kgalign align run --candidates test --strategy hungarian -o test-pairs.tsv

      kgalign align run --search faiss --index ivf --nprobe 64 --topk 10
    """
    setup_logging(quiet, verbose)
    from kgalign.export.api import align_run

    summary = run_guarded(
        align_run,
        run,
        output=output,
        scope=candidates,
        similarity=similarity,
        score=score,
        strategy=strategy,
        topk=topk,
        csls_k=csls_k,
        threshold=threshold,
        review_threshold=review_threshold,
        include_seeds=not no_seeds,
        block_size=block_size,
        device=device,
        search=search,
        index=index,
        nlist=nlist,
        nprobe=nprobe,
        hnsw_m=hnsw_m,
        ef_search=ef_search,
        rerank=rerank,
        memory_budget_mib=memory_budget,
        precision=precision,
    )
    if as_json:
        emit_json(summary)
    elif not quiet:
        typer.echo(json.dumps(summary, sort_keys=True), err=True)


@app.command("export")
def export_cmd(
    run: Optional[Path] = typer.Argument(None, help="Run directory; uses RUN/predictions.tsv (runs `align` with defaults if absent)."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="Predictions TSV to export instead of the run's."),
    fmt: str = typer.Option("nt", "--format", "-f", help="nt, ttl, tsv, alignment (Alignment API RDF/XML), sssom or jsonl."),
    predicate: str = typer.Option(
        "owl:sameAs", "--predicate", help="Link predicate: owl:sameAs, skos:exactMatch, skos:closeMatch, or a full IRI."
    ),
    base_kg1: Optional[str] = typer.Option(
        None, "--base-kg1", help="IRI prefix for KG1 terms that are not absolute IRIs (e.g. Freebase mids)."
    ),
    base_kg2: Optional[str] = typer.Option(None, "--base-kg2", help="IRI prefix for KG2 terms that are not absolute IRIs."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to FILE atomically (default: stdout)."),
    provenance: Optional[Path] = typer.Option(None, "--provenance", help="Provenance sidecar path [FILE.prov.ttl next to -o FILE]."),
    no_provenance: bool = typer.Option(False, "--no-provenance", help="Do not write the provenance sidecar."),
    include_seeds: bool = typer.Option(False, "--include-seeds", help="Add the training links."),
    include_review: bool = typer.Option(False, "--include-review", help="Add the review band."),
    license: Optional[str] = typer.Option(None, "--license", help="License IRI for the SSSOM header [CC0 1.0]."),
    mapping_set_id: Optional[str] = typer.Option(None, "--mapping-set-id", help="SSSOM mapping_set_id IRI [the output file's URI]."),
    decisions: Optional[Path] = typer.Option(
        None, "--decisions", help="Review decisions [RUN/decisions.tsv if present]: accepted pairs marked reviewed, rejected left out."
    ),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Write predicted links as N-Triples, Turtle, TSV, Alignment RDF/XML, SSSOM or JSON lines.

    Example:

      kgalign export run --format nt | gzip > links.nt.gz

      kgalign export run --format sssom --predicate skos:exactMatch -o links.sssom.tsv

      kgalign export --predictions run/predictions.tsv --format ttl --base-kg2 http://rdf.freebase.com/ns -o links.ttl
    """
    setup_logging(quiet, verbose)
    from kgalign.export.api import export_links

    try:
        summary = run_guarded(
            export_links,
            run=run,
            predictions=predictions,
            fmt=fmt,
            predicate=predicate,
            base_kg1=base_kg1,
            base_kg2=base_kg2,
            output=output,
            provenance=provenance,
            write_prov=not no_provenance,
            include_seeds=include_seeds,
            include_review=include_review,
            license=license,
            mapping_set_id=mapping_set_id,
            decisions=decisions,
            log=log,
        )
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, like other Unix tools killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(141) from None
    if output is not None and not quiet:
        typer.echo(json.dumps(summary, sort_keys=True), err=True)


# ---------------------------------------------------------------- report / review
# (owned by kgalign.review)


@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="Run directory (from `kgalign train`)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Report directory [RUN/report]: index.html and the PNGs."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    as_json: bool = JsonOpt,
):
    """Write an HTML report with plots: training curves, Hits@k, scores, thresholds, modality weights, coverage.

    The HTML is self-contained (inline CSS, images embedded); open it in any browser.

    Example:

      kgalign report run && xdg-open run/report/index.html
    """
    setup_logging(quiet, verbose)
    from kgalign.review.report import build_report

    summary = run_guarded(build_report, run, output)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(summary["output"])


@app.command("review")
def review_cmd(
    run: Path = typer.Argument(..., help="Run directory with predictions (`kgalign align RUN --threshold T --review-threshold R`)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (other than loopback exposes the page to the network)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port [0: a free one]."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the URL; do not open a browser."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="Spot-check N random accepted pairs instead of the review band."),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample."),
    decisions: Optional[Path] = typer.Option(None, "--decisions", help="Decisions file [RUN/decisions.tsv]; reopening resumes it."),
    image_dir: List[Path] = typer.Option(
        [], "--image-dir", help="Also show local images under DIR (by default only the run, dataset and cache folders are read)."
    ),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Image cache [the one `kgalign features` used]."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Serve a local page to accept, reject or skip the pairs of the review band (keys A, R, S, U for undo).

    Each decision is saved at once to RUN/decisions.tsv; `kgalign export` then marks accepted pairs as reviewed
    and leaves rejected ones out. Stop with Ctrl-C.

    Example:

      kgalign align run --threshold 0.5 --review-threshold 0.3 && kgalign review run

      kgalign review run --sample 50 --no-browser --port 8800
    """
    setup_logging(quiet, verbose)
    from kgalign.review.server import make_server, make_state, open_browser

    def build():
        state = make_state(run, decisions=decisions, sample=sample, seed=seed, image_dirs=tuple(image_dir), cache_dir=cache_dir)
        try:
            return state, make_server(state, host, port)
        except OSError as exc:
            from kgalign.errors import InputError

            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

    state, server = run_guarded(build)
    typer.echo(server.url)
    sys.stdout.flush()
    if not state.data.queue:
        log.warning(
            "no pairs to review in %s (align with --threshold and --review-threshold, or use --sample N)", state.data.predictions_path
        )
    log.info("%d pairs (%s); decisions go to %s; stop with Ctrl-C", len(state.data.queue), state.data.mode, state.decisions.path)
    if not no_browser and not open_browser(server.url):
        log.info("no graphical browser found: open the URL above")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped; decisions are in %s", state.decisions.path)
    finally:
        server.server_close()


def main() -> None:
    """Console entry: a Ctrl-C even before a command runs (while modules import) exits 130."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        # The command is over (its outputs written or cleaned up): a Ctrl-C during the interpreter's
        # teardown (torch's finalizers run then) would only print a traceback over a finished command.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":  # pragma: no cover
    main()
