"""The dataset directory: the format every later stage reads.

Layout (format version 1, documented in docs/dataset-format.md)::

    DATASET/
      manifest.json            format name and version, counts, sources (sha256), split settings
      entities.tsv             id, kg, term        (KG1 ids come first: 0..n1-1, then KG2)
      relations.tsv            id, kg, term
      relation_triples.npy     int64 (m, 3): head id, relation id, tail id
      attributes.tsv           id, kg, term
      attribute_triples.tsv    entity, attribute, value, datatype, lang
      numeric.tsv              entity, attribute, value (float; dates as fractional years)
      names.tsv                entity, name, lang
      images.tsv               entity, source (http(s) URL or absolute local path)
      links.tsv                kg1, kg2, split (train | valid | test | unused)
      features/                written by `kgalign features`

Every TSV has a header row. Text fields escape backslash, tab, newline and
carriage return as ``\\\\``, ``\\t``, ``\\n``, ``\\r``. Terms are stored exactly
as ingested: IRIs without angle brackets, blank nodes as ``_:label``, plain
identifiers (e.g. Freebase mids) as they were.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgalign import __version__
from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import atomic_directory

FORMAT_NAME = "kgalign-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test", "unused")

_ESC = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESC = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def escape(text: str) -> str:
    # plain membership tests: this runs once per written field
    if "\\" not in text and "\t" not in text and "\n" not in text and "\r" not in text:
        return text
    return "".join(_ESC.get(c, c) for c in text)


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in _UNESC:
            out.append(_UNESC[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass
class Dataset:
    """Two knowledge graphs and their links, with global integer ids.

    Entity ids: KG1 entities are ``0..n1-1`` and KG2 entities ``n1..n-1``
    (``entity_kg`` says which graph each belongs to). Relation and attribute ids
    are global too; a key used by both graphs appears once per graph.
    """

    entities: list[str]
    entity_kg: np.ndarray  # int8 (n,), values 1 or 2
    relations: list[str] = field(default_factory=list)
    relation_kg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    relation_triples: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    attributes: list[str] = field(default_factory=list)
    attribute_kg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    # attribute triples: parallel columns
    attr_entity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    attr_key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    attr_value: list[str] = field(default_factory=list)
    attr_datatype: list[str] = field(default_factory=list)
    attr_lang: list[str] = field(default_factory=list)
    # numeric values: parallel columns (attribute ids index ``attributes``)
    num_entity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    num_key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    num_value: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    # names and images: parallel columns
    name_entity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    name_text: list[str] = field(default_factory=list)
    name_lang: list[str] = field(default_factory=list)
    image_entity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    image_source: list[str] = field(default_factory=list)
    # links: (L, 2) int64 (kg1 id, kg2 id) with a split label per link
    links: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    link_split: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    path: Path | None = None

    # ---- derived views -------------------------------------------------
    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def kg1_size(self) -> int:
        return int((self.entity_kg == 1).sum())

    @property
    def kg2_size(self) -> int:
        return int((self.entity_kg == 2).sum())

    def links_for(self, split: str) -> np.ndarray:
        """Links of one split as an (L, 2) int64 array, in stored order."""
        mask = np.fromiter((s == split for s in self.link_split), bool, len(self.link_split))
        return self.links[mask]

    def entity_index(self) -> dict[str, int]:
        """Map (kg-qualified) terms to ids: ``{term: id}`` per graph is ambiguous,
        so keys are ``"1\\tterm"`` / ``"2\\tterm"``."""
        return {f"{k}\t{t}": i for i, (k, t) in enumerate(zip(self.entity_kg.tolist(), self.entities, strict=False))}

    def counts(self) -> dict:
        """Statistics per graph, as `kgalign info` prints them."""
        out: dict = {}
        rel_h_kg = self.entity_kg[self.relation_triples[:, 0]] if len(self.relation_triples) else np.zeros(0)
        for kg in (1, 2):
            ents = self.entity_kg == kg
            out[f"kg{kg}"] = {
                "entities": int(ents.sum()),
                "relations": int((self.relation_kg == kg).sum()),
                "relation_triples": int((rel_h_kg == kg).sum()),
                "attributes": int((self.attribute_kg == kg).sum()),
                "attribute_triples": int((self.entity_kg[self.attr_entity] == kg).sum()) if len(self.attr_entity) else 0,
                "numeric_values": int((self.entity_kg[self.num_entity] == kg).sum()) if len(self.num_entity) else 0,
                "entities_with_name": int(len(np.unique(self.name_entity[self.entity_kg[self.name_entity] == kg])))
                if len(self.name_entity)
                else 0,
                "entities_with_image": int(len(np.unique(self.image_entity[self.entity_kg[self.image_entity] == kg])))
                if len(self.image_entity)
                else 0,
            }
        out["links"] = {s: int(sum(1 for x in self.link_split if x == s)) for s in SPLITS}
        out["links"]["total"] = len(self.link_split)
        return out


# ---- writing ---------------------------------------------------------------


def _write_tsv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        f.writelines("\t".join(r) + "\n" for r in rows)


def _vocab_rows(terms: list[str], kgs: np.ndarray):
    return ((str(i), str(k), escape(t)) for i, (t, k) in enumerate(zip(terms, kgs.tolist(), strict=False)))


def write_dataset(ds: Dataset, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``ds`` to ``out_dir`` atomically (temporary directory, then rename)."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        _write_tsv(tmp / "entities.tsv", ["id", "kg", "term"], _vocab_rows(ds.entities, ds.entity_kg))
        _write_tsv(tmp / "relations.tsv", ["id", "kg", "term"], _vocab_rows(ds.relations, ds.relation_kg))
        np.save(tmp / "relation_triples.npy", np.ascontiguousarray(ds.relation_triples, dtype=np.int64))
        _write_tsv(tmp / "attributes.tsv", ["id", "kg", "term"], _vocab_rows(ds.attributes, ds.attribute_kg))
        _write_tsv(
            tmp / "attribute_triples.tsv",
            ["entity", "attribute", "value", "datatype", "lang"],
            (
                (str(e), str(a), escape(v), escape(d), escape(l))
                for e, a, v, d, l in zip(
                    ds.attr_entity.tolist(), ds.attr_key.tolist(), ds.attr_value, ds.attr_datatype, ds.attr_lang, strict=False
                )
            ),
        )
        _write_tsv(
            tmp / "numeric.tsv",
            ["entity", "attribute", "value"],
            (
                (str(e), str(a), repr(float(v)))
                for e, a, v in zip(ds.num_entity.tolist(), ds.num_key.tolist(), ds.num_value.tolist(), strict=False)
            ),
        )
        _write_tsv(
            tmp / "names.tsv",
            ["entity", "name", "lang"],
            ((str(e), escape(n), escape(l)) for e, n, l in zip(ds.name_entity.tolist(), ds.name_text, ds.name_lang, strict=False)),
        )
        _write_tsv(
            tmp / "images.tsv",
            ["entity", "source"],
            ((str(e), escape(s)) for e, s in zip(ds.image_entity.tolist(), ds.image_source, strict=False)),
        )
        _write_tsv(
            tmp / "links.tsv",
            ["kg1", "kg2", "split"],
            ((str(a), str(b), s) for (a, b), s in zip(ds.links.tolist(), ds.link_split, strict=False)),
        )
        manifest = dict(ds.manifest)
        manifest.update(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "kgalign_version": __version__,
                "counts": ds.counts(),
            }
        )
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    ds.path = out_dir
    ds.manifest = manifest
    return out_dir


# ---- reading ---------------------------------------------------------------


def _read_tsv(path: Path, ncols: int) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8", newline="\n") as f:
        header = f.readline()
        if not header:
            raise InputError("empty file, expected a header row", str(path), 1)
        for lineno, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != ncols:
                raise InputError(f"expected {ncols} tab-separated fields, found {len(parts)}", str(path), lineno)
            rows.append(parts)
    return rows


def _read_vocab(path: Path) -> tuple[list[str], np.ndarray]:
    rows = _read_tsv(path, 3)
    terms = [unescape(r[2]) for r in rows]
    kgs = np.array([int(r[1]) for r in rows], dtype=np.int8)
    return terms, kgs


def _ints(rows, col) -> np.ndarray:
    return np.array([int(r[col]) for r in rows], dtype=np.int64)


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read a dataset directory written by :func:`write_dataset`."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise MissingResourceError(f"{path}: not a kgalign dataset (no manifest.json); create one with `kgalign ingest`")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT_NAME:
        raise InputError(f"manifest format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}", str(mpath))
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"dataset format version {manifest['format_version']} is newer than this kgalign supports ({FORMAT_VERSION}); upgrade kgalign",
            str(mpath),
        )
    entities, entity_kg = _read_vocab(path / "entities.tsv")
    relations, relation_kg = _read_vocab(path / "relations.tsv")
    attributes, attribute_kg = _read_vocab(path / "attributes.tsv")
    triples = np.load(path / "relation_triples.npy", allow_pickle=False).astype(np.int64, copy=False).reshape(-1, 3)
    at = _read_tsv(path / "attribute_triples.tsv", 5)
    nu = _read_tsv(path / "numeric.tsv", 3)
    na = _read_tsv(path / "names.tsv", 3)
    im = _read_tsv(path / "images.tsv", 2)
    li = _read_tsv(path / "links.tsv", 3)
    return Dataset(
        entities=entities,
        entity_kg=entity_kg,
        relations=relations,
        relation_kg=relation_kg,
        relation_triples=triples,
        attributes=attributes,
        attribute_kg=attribute_kg,
        attr_entity=_ints(at, 0),
        attr_key=_ints(at, 1),
        attr_value=[unescape(r[2]) for r in at],
        attr_datatype=[unescape(r[3]) for r in at],
        attr_lang=[unescape(r[4]) for r in at],
        num_entity=_ints(nu, 0),
        num_key=_ints(nu, 1),
        num_value=np.array([float(r[2]) for r in nu], dtype=np.float64),
        name_entity=_ints(na, 0),
        name_text=[unescape(r[1]) for r in na],
        name_lang=[unescape(r[2]) for r in na],
        image_entity=_ints(im, 0),
        image_source=[unescape(r[1]) for r in im],
        links=np.array([[int(r[0]), int(r[1])] for r in li], dtype=np.int64).reshape(-1, 2),
        link_split=[r[2] for r in li],
        manifest=manifest,
        path=path,
    )
