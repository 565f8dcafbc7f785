"""``ingest``: read two graphs (from any mix of files and layouts) and their links
into a :class:`~kgalign.data.store.Dataset`.

Order of reading (it fixes the id order): the layouts in the order given, then
per graph its RDF / relation TSV / OpenKE inputs, attribute TSVs, name TSVs and
image TSVs. KG1 entity ids come first, then KG2 (see docs/dataset-format.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from kgalign.data.builder import GraphBuilder, assemble
from kgalign.data.layouts import Intake, import_mclea, import_mmkg, import_openea, import_openke, read_link_tsv
from kgalign.data.links import resolve_links
from kgalign.data.rdf import read_rdf
from kgalign.data.sources import FORMATS, Problems, Source
from kgalign.data.split import LEGACY_SEED, METHODS, legacy_split, random_split
from kgalign.data.store import SPLITS, Dataset, write_dataset
from kgalign.data.terms import (
    DEFAULT_IMAGE_PREDICATES,
    DEFAULT_NAME_PREDICATES,
    SAME_AS,
    name_from_iri,
    plain_term,
)
from kgalign.data.tsv import attribute_blocks, read_pairs, relation_blocks
from kgalign.errors import InputError
from kgalign.fsutil import check_output_dir, remove_stale

log = logging.getLogger("kgalign.data")

Input = str | Source  # a path / "-" / "FORMAT:PATH", or a ready Source (tar members, memory)


@dataclass
class GraphSpec:
    """The inputs of one graph. Every list may be empty."""

    files: list = field(default_factory=list)  # RDF, relation-triple TSV, or "openke:DIR"
    attributes: list = field(default_factory=list)  # TSV entity, attribute, value
    names: list = field(default_factory=list)  # TSV entity, name[, lang]
    images: list = field(default_factory=list)  # TSV entity, URL or path
    names_from_iri: bool = False  # entities without a name get their IRI's local part


@dataclass
class IngestOptions:
    kg1: GraphSpec = field(default_factory=GraphSpec)
    kg2: GraphSpec = field(default_factory=GraphSpec)
    links: list = field(default_factory=list)  # TSV or RDF (owl:sameAs)
    layouts: list = field(default_factory=list)  # [(kind, path)], kind in mclea | openea | mmkg
    default_format: str | None = None
    name_predicates: tuple = DEFAULT_NAME_PREDICATES
    image_predicates: tuple = DEFAULT_IMAGE_PREDICATES
    underscores_to_spaces: bool = False  # in name TSVs (Wikipedia-style names)
    split: str | None = None  # random | legacy | given; None: given if split files were passed, else random
    train_ratio: float = 0.2
    valid_ratio: float = 0.1
    test_ratio: float | None = None  # None: all the rest
    seed: int = 0
    legacy_valid: float = 0.0
    train_links: list = field(default_factory=list)
    valid_links: list = field(default_factory=list)
    test_links: list = field(default_factory=list)
    fold: int = 1  # OpenEA 721_5fold/K
    mmkg_pair: str | None = None
    mmkg_image_dir: str | None = None
    lenient: bool = False


def _source(item: Input, default_format: str | None) -> Source:
    return item if isinstance(item, Source) else Source.from_arg(str(item), default_format)


def _read_graph(kg: int, spec: GraphSpec, g: GraphBuilder, opts: IngestOptions, problems: Problems, intake: Intake) -> None:
    for item in spec.files:
        _read_graph_file(kg, _source(item, opts.default_format), g, problems, intake)
    for item in spec.attributes:
        _read_attribute_file(kg, _source(item, "tsv"), g, problems, intake)
    for item in spec.names:
        src = _source(item, "tsv")
        for _, f in read_pairs(src, problems, " (entity, name[, lang])", max_cols=3):
            text = f[1].replace("_", " ") if opts.underscores_to_spaces else f[1]
            g.add_name(plain_term(f[0].strip()), text.strip(), f[2].strip() if len(f) > 2 else "")
        intake.used(src, "names", kg, "tsv")
    for item in spec.images:
        src = _source(item, "tsv")
        for _, f in read_pairs(src, problems, " (entity, image URL or path)"):
            g.add_image(plain_term(f[0].strip()), f[1].strip(), _base_dir(src))
        intake.used(src, "images", kg, "tsv")
    if spec.names_from_iri:
        intake.notes.setdefault("names_from_iri", {})[f"kg{kg}"] = _add_names_from_iri(g)


def _read_graph_file(kg: int, src: Source, g: GraphBuilder, problems: Problems, intake: Intake) -> None:
    fmt = src.detect_format()
    if fmt == "openke":
        import_openke(Path(src.label), g, kg, problems, intake)
        return
    before, g.ill_typed_example = g.ill_typed, None
    if fmt == "tsv":
        for heads, rels, tails in relation_blocks(src, problems):
            g.add_relation_block(heads, rels, tails)
    else:
        g.add_statements(read_rdf(src, fmt, problems))
    _warn_ill_typed(g, before, src, problems)
    intake.used(src, "graph", kg, fmt)


def _read_attribute_file(kg: int, src: Source, g: GraphBuilder, problems: Problems, intake: Intake) -> None:
    before, g.ill_typed_example = g.ill_typed, None
    for ents, keys, values, datatypes, langs in attribute_blocks(src, problems):
        g.add_attribute_block(ents, keys, values, datatypes, langs, _base_dir(src))
    _warn_ill_typed(g, before, src, problems)
    intake.used(src, "attribute_triples", kg, "tsv")


def _warn_ill_typed(g: GraphBuilder, before: int, src: Source, problems: Problems) -> None:
    """Ill-typed literals are legal RDF, so they are kept (as text, not as numbers), but never silently."""
    n = g.ill_typed - before
    if n:
        problems.warn(
            f"{src.label}: {n} literal(s) do not fit their XSD numeric/date datatype and were kept as text, "
            f"not as numbers (first: {g.ill_typed_example})"
        )


def _add_names_from_iri(g: GraphBuilder) -> int:
    named = {e for e, _, _ in g.names}
    added = 0
    for term, i in list(g.ent.items()):
        if i not in named and "://" in term:
            text = name_from_iri(term)
            if text:
                g.add_name(term, text, "")
                added += 1
    return added


def _base_dir(src: Source) -> Path | None:
    return None if src.opener is not None else Path(src.label).resolve().parent


def _read_links(item: Input, opts: IngestOptions, problems: Problems, intake: Intake, role: str) -> list:
    src = _source(item, "tsv")
    fmt = src.detect_format()
    if fmt == "tsv":
        return read_link_tsv(src, problems, intake, role)
    out, other = [], 0
    for s, p, o, is_lit, *_ in read_rdf(src, fmt, problems):
        if p in SAME_AS and not is_lit:
            out.append((s, o, src.label, None))
        else:
            other += 1
    if other:
        problems.warn(f"{src.label}: ignored {other} statements that are not owl:sameAs links")
    intake.used(src, role, None, fmt)
    return out


# layout kinds and the names they are also known by (the GCN-Align/JAPE id layout is MCLEA's)
LAYOUT_ALIASES = {"mclea": "mclea", "jape": "mclea", "gcn-align": "mclea", "gcn_align": "mclea", "dbp15k": "mclea"}
LAYOUT_ALIASES.update(openea="openea", mmkg="mmkg")
LAYOUT_HELP = "mclea (aliases jape, gcn-align, dbp15k: the ent_ids_1/2 id layout), openea or mmkg"


def layout_kind(name: str) -> str | None:
    """The layout kind a user's name stands for, or None."""
    return LAYOUT_ALIASES.get(name.lower())


def check_options(opts: IngestOptions) -> None:
    """Refuse out-of-range settings before reading anything (NaN compares false, so test inclusion)."""
    for flag, value in (("--train-ratio", opts.train_ratio), ("--valid-ratio", opts.valid_ratio), ("--test-ratio", opts.test_ratio)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise InputError(f"{flag} must be a number in [0, 1], got {value}")
    if not 0.0 <= opts.legacy_valid < 1.0:
        raise InputError(f"--legacy-valid must be a number in [0, 1), got {opts.legacy_valid}")
    if not 0 <= opts.seed < 2**63:
        raise InputError(f"--seed must be an integer in [0, 2^63), got {opts.seed}")
    if opts.fold < 1:
        raise InputError(f"--fold must be at least 1, got {opts.fold}")
    if opts.default_format is not None and opts.default_format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}; got {opts.default_format!r}")
    if opts.split is not None and opts.split not in METHODS:
        raise InputError(f"unknown split {opts.split!r}; choose one of {', '.join(METHODS)}")
    for kind, _ in opts.layouts:
        if layout_kind(kind) is None:
            raise InputError(f"unknown layout {kind!r}; choose {LAYOUT_HELP}")


def _read_layouts(opts: IngestOptions, g1: GraphBuilder, g2: GraphBuilder, problems: Problems, intake: Intake) -> None:
    for name, path in opts.layouts:
        kind, path = layout_kind(name), Path(path)
        log.info("reading %s layout %s", kind, path)
        if kind == "mclea":
            import_mclea(path, g1, g2, problems, intake)
        elif kind == "openea":
            import_openea(path, g1, g2, problems, intake, fold=opts.fold)
        else:
            image_dir = Path(opts.mmkg_image_dir) if opts.mmkg_image_dir else None
            import_mmkg(path, g1, g2, problems, intake, pair=opts.mmkg_pair, image_dir=image_dir)


def _read_split_files(opts: IngestOptions, problems: Problems, intake: Intake) -> bool:
    """Read --train/valid/test-links into ``intake.split_files``; True when any was given."""
    given = {"train": opts.train_links, "valid": opts.valid_links, "test": opts.test_links}
    if not any(given.values()):
        return False
    intake.split_files = {}
    for split, items in given.items():
        for item in items:
            intake.split_files.setdefault(split, []).extend(_read_links(item, opts, problems, intake, f"split:{split}"))
    return True


def _given_labels(kept: list, intake: Intake, g1: GraphBuilder, g2: GraphBuilder, problems: Problems) -> tuple[list[str], dict]:
    label_of: dict = {}
    for split in ("train", "valid", "test"):
        if split in intake.split_files:
            _, sk = resolve_links(intake.split_files[split], g1, g2, problems, what=f"{split} links")
            for a, b, *_ in sk:
                if (a, b) in label_of:
                    raise InputError(f"link ({a}, {b}) is in both the {label_of[(a, b)]} and the {split} split files")
                label_of[(a, b)] = split
    labels = [label_of.get((a, b), "unused") for a, b, *_ in kept]
    missing = set(label_of) - {(a, b) for a, b, *_ in kept}
    if missing:
        problems.warn(f"{len(missing)} links of the split files are not among the reference links; they are left out")
    info: dict = {"files": sorted({lk[2] for v in intake.split_files.values() for lk in v})}
    if "openea_fold" in intake.notes:
        info["openea_fold"] = intake.notes["openea_fold"]
    return labels, info


def _split_labels(method: str, opts: IngestOptions, kept: list, intake: Intake, g1, g2, problems: Problems) -> tuple[list[str], dict]:
    """Split label per kept link, and the split settings for the manifest."""
    if method == "random":
        labels = random_split(len(kept), opts.train_ratio, opts.valid_ratio, opts.test_ratio, opts.seed)
        return labels, {
            "train_ratio": opts.train_ratio,
            "valid_ratio": opts.valid_ratio,
            "test_ratio": opts.test_ratio,
            "seed": opts.seed,
            "rng": "numpy.random.default_rng(seed).permutation",
        }
    if method == "legacy":
        labels = legacy_split([(a, b) for a, b, *_ in kept], opts.train_ratio, opts.legacy_valid, opts.seed)
        return labels, {
            "train_ratio": opts.train_ratio,
            "legacy_seed": LEGACY_SEED,
            "legacy_valid": opts.legacy_valid,
            "valid_seed": opts.seed,
            "order": "link file order",
            "rng": "numpy.random.RandomState(42).shuffle; valid: numpy.random.default_rng(valid_seed).choice",
        }
    return _given_labels(kept, intake, g1, g2, problems)


def ingest(opts: IngestOptions) -> tuple[Dataset, dict]:
    """Read everything ``opts`` names; return the dataset (not yet written) and a report.

    Raises InputError for bad input (strict mode), MissingResourceError for absent files.
    """
    check_options(opts)
    problems = Problems(opts.lenient)
    g1 = GraphBuilder(1, opts.name_predicates, opts.image_predicates)
    g2 = GraphBuilder(2, opts.name_predicates, opts.image_predicates)
    intake = Intake()
    _read_layouts(opts, g1, g2, problems, intake)
    for kg, spec, g in ((1, opts.kg1, g1), (2, opts.kg2, g2)):
        _read_graph(kg, spec, g, opts, problems, intake)
    for item in opts.links:
        intake.links.extend(_read_links(item, opts, problems, intake, "links"))
    given = _read_split_files(opts, problems, intake)
    for kg, g in ((1, g1), (2, g2)):
        if not g.ent:
            raise InputError(f"KG{kg} is empty: no entities were read; give its files with --kg{kg} (or a --layout)")
    method = opts.split or ("given" if given else "random")
    if method == "given" and not intake.split_files:
        raise InputError("--split given needs split files (--train-links/--valid-links/--test-links, or a layout that ships them)")
    if method == "given" and not intake.links:
        for split in ("train", "valid", "test"):
            intake.links.extend(intake.split_files.get(split, []))
    links, kept = resolve_links(intake.links, g1, g2, problems)
    if len(links) == 0:
        problems.warn("no reference links: the dataset can be aligned but not trained or evaluated")
    labels, settings = _split_labels(method, opts, kept, intake, g1, g2, problems)
    split_info: dict = {"method": method, **settings}
    split_info["counts"] = {s: labels.count(s) for s in SPLITS}
    manifest = {
        "sources": intake.sources,
        "layouts": [{"kind": layout_kind(k), "path": os.path.abspath(p)} for k, p in opts.layouts],
        "split": split_info,
        "name_predicates": sorted(g1.name_predicates),
        "image_predicates": sorted(g1.image_predicates),
        "lenient": opts.lenient,
        "problems": problems.summary(),
    }
    for key, value in intake.notes.items():
        if key != "openea_fold":
            manifest[key] = value
    ds = assemble(g1, g2, links, labels, manifest)
    report = {"warnings": problems.warnings, "skipped_lines": problems.total_skipped, "first_skipped": problems.examples}
    return ds, report


def ingest_to(opts: IngestOptions, out_dir: str | os.PathLike, overwrite: bool = False) -> tuple[Dataset, dict]:
    """``ingest`` and write the dataset atomically to ``out_dir``."""
    out_dir = Path(out_dir)
    check_options(opts)
    remove_stale(out_dir.parent, out_dir.name)  # leftovers of a killed ingest to the same place
    if os.path.lexists(out_dir) and out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists (use --force to replace it)")
    # --force replaces the whole directory: never do that to one that holds something other than a dataset
    if overwrite and out_dir.exists() and not (out_dir / "manifest.json").is_file():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise InputError(
                f"{out_dir} exists and is not a kgalign dataset (no manifest.json); --force replaces only "
                "datasets: choose another -o or remove it yourself",
                str(out_dir),
            )
    check_output_dir(out_dir, "the dataset directory")  # up front: not after minutes of reading
    ds, report = ingest(opts)
    write_dataset(ds, out_dir, overwrite=overwrite)
    return ds, report
