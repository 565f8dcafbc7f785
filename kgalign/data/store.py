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

import hashlib
import json
import os
from dataclasses import dataclass, field
from itertools import repeat
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

DATA_FILES = (
    "entities.tsv",
    "relations.tsv",
    "relation_triples.npy",
    "attributes.tsv",
    "attribute_triples.tsv",
    "numeric.tsv",
    "names.tsv",
    "images.tsv",
    "links.tsv",
)


def file_record(path: Path) -> dict:
    """Size and sha256 of a written file, for the manifest (checked on load / `info --check`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


WRITE_ROWS = 1 << 20  # rows joined and written at once: bounds the temporary text


def _write_tsv(path: Path, header: list[str], columns: list) -> None:
    """Write parallel columns as TSV rows, WRITE_ROWS at a time (joined in C; memory bounded by one chunk).

    A column is an int or float ndarray (written with ``str`` / ``repr``), or a list of texts (escaped here).
    """
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        n = len(columns[0])
        for start in range(0, n, WRITE_ROWS):
            chunk = [_column_text(c[start : start + WRITE_ROWS]) for c in columns]
            f.write("\n".join(map("\t".join, zip(*chunk, strict=True))) + "\n")


def _column_text(part) -> list[str]:
    if isinstance(part, np.ndarray):
        return list(map(repr if part.dtype.kind == "f" else str, part.tolist()))
    joined = "".join(part)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return [escape(t) for t in part]
    return part


def _vocab_columns(terms: list[str], kgs: np.ndarray) -> list:
    return [np.arange(len(terms)), np.asarray(kgs), terms]


def write_dataset(ds: Dataset, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``ds`` to ``out_dir`` atomically (temporary directory, then rename).

    A write error (disk full, quota) is one InputError naming ``out_dir``; nothing is left behind.
    """
    out_dir = Path(out_dir)
    try:
        return _write_dataset(ds, out_dir, overwrite)
    except (FileExistsError, InputError):
        raise
    except OSError as exc:
        raise InputError(f"cannot write the dataset: {exc.strerror or exc}", str(out_dir)) from None


def _write_dataset(ds: Dataset, out_dir: Path, overwrite: bool) -> Path:
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        _write_tsv(tmp / "entities.tsv", ["id", "kg", "term"], _vocab_columns(ds.entities, ds.entity_kg))
        _write_tsv(tmp / "relations.tsv", ["id", "kg", "term"], _vocab_columns(ds.relations, ds.relation_kg))
        np.save(tmp / "relation_triples.npy", np.ascontiguousarray(ds.relation_triples, dtype=np.int64))
        _write_tsv(tmp / "attributes.tsv", ["id", "kg", "term"], _vocab_columns(ds.attributes, ds.attribute_kg))
        _write_tsv(
            tmp / "attribute_triples.tsv",
            ["entity", "attribute", "value", "datatype", "lang"],
            [np.asarray(ds.attr_entity), np.asarray(ds.attr_key), ds.attr_value, ds.attr_datatype, ds.attr_lang],
        )
        num_value = np.asarray(ds.num_value, np.float64)
        _write_tsv(tmp / "numeric.tsv", ["entity", "attribute", "value"], [np.asarray(ds.num_entity), np.asarray(ds.num_key), num_value])
        _write_tsv(tmp / "names.tsv", ["entity", "name", "lang"], [np.asarray(ds.name_entity), ds.name_text, ds.name_lang])
        _write_tsv(tmp / "images.tsv", ["entity", "source"], [np.asarray(ds.image_entity), ds.image_source])
        links = ds.links.reshape(-1, 2)
        _write_tsv(tmp / "links.tsv", ["kg1", "kg2", "split"], [links[:, 0], links[:, 1], list(ds.link_split)])
        manifest = dict(ds.manifest)
        manifest.update(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "kgalign_version": __version__,
                "counts": ds.counts(),
                "files": {name: file_record(tmp / name) for name in DATA_FILES},
            }
        )
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    ds.path = out_dir
    ds.manifest = manifest
    return out_dir


# ---- reading ---------------------------------------------------------------


def _damaged(path: Path, problem: str, line: int | None = None) -> InputError:
    return InputError(f"{problem}; the dataset is damaged: run `kgalign ingest` again", str(path), line)


def _read_tsv(path: Path, ncols: int) -> list[list[str]]:
    """The ``ncols`` columns of a data TSV below its header row, as lists of raw (escaped) strings.

    The file is split once in C (no per-row Python objects); the field count of every
    line is checked first, so a damaged line is named with its number.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise _damaged(path, "missing file") from None
    except UnicodeDecodeError as exc:
        raise _damaged(path, f"not valid UTF-8 ({exc.reason})") from None
    if not text:
        raise _damaged(path, "empty file, expected a header row", 1)
    cut = text.find("\n")
    body = text[cut + 1 :] if cut >= 0 else ""
    del text
    if not body:
        return [[] for _ in range(ncols)]
    lines = body[:-1].split("\n") if body.endswith("\n") else body.split("\n")
    tabs = list(map(str.count, lines, repeat("\t", len(lines))))
    if tabs.count(ncols - 1) != len(tabs):
        i = next(i for i, t in enumerate(tabs) if t != ncols - 1)
        raise _damaged(path, f"expected {ncols} tab-separated fields, found {tabs[i] + 1}", i + 2)
    del lines, tabs
    flat = (body[:-1] if body.endswith("\n") else body).replace("\n", "\t").split("\t")
    return [flat[c::ncols] for c in range(ncols)]


def _unescaped(texts: list[str]) -> list[str]:
    """``unescape`` of each text; the list itself when none holds a backslash."""
    if "\\" in "".join(texts):
        return [unescape(t) for t in texts]
    return texts


def _ints(cols, col, path: Path) -> np.ndarray:
    try:
        return np.fromiter(map(int, cols[col]), np.int64, len(cols[col]))
    except ValueError:
        lineno = next(i for i, r in enumerate(cols[col]) if not r.lstrip("-").isdigit()) + 2
        raise _damaged(path, f"column {col + 1} must be an integer id, found {cols[col][lineno - 2]!r}", lineno) from None


def _read_vocab(path: Path) -> tuple[list[str], np.ndarray]:
    cols = _read_tsv(path, 3)
    ids = _ints(cols, 0, path)
    if not np.array_equal(ids, np.arange(len(ids))):
        bad = int(np.nonzero(ids != np.arange(len(ids)))[0][0])
        raise _damaged(path, f"ids must run 0, 1, 2, ... in order; found {ids[bad]} at position {bad}", bad + 2)
    kgs = _ints(cols, 1, path)
    if len(kgs) and not np.isin(kgs, (1, 2)).all():
        bad = int(np.nonzero(~np.isin(kgs, (1, 2)))[0][0])
        raise _damaged(path, f"kg must be 1 or 2, found {kgs[bad]}", bad + 2)
    return _unescaped(cols[2]), kgs.astype(np.int8)


def read_manifest(path: str | os.PathLike) -> dict:
    """``DATASET/manifest.json``, checked: present, JSON, a kgalign dataset of a version this kgalign reads."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        if path.exists() and not path.is_dir():
            raise InputError("is not a directory; give a dataset directory written by `kgalign ingest`", str(path))
        raise MissingResourceError(f"{path}: not a kgalign dataset (no manifest.json); create one with `kgalign ingest`")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _damaged(mpath, f"not valid JSON ({exc.msg})", exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise _damaged(mpath, f"not valid UTF-8 ({exc.reason})") from None
    if not isinstance(manifest, dict):
        raise _damaged(mpath, "expected a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise InputError(f"manifest format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}", str(mpath))
    try:
        version = int(manifest.get("format_version", 0))
    except (TypeError, ValueError):
        raise _damaged(mpath, f"format_version must be an integer, found {manifest.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise InputError(
            f"dataset format version {version} is newer than this kgalign supports ({FORMAT_VERSION}); upgrade kgalign",
            str(mpath),
        )
    return manifest


def check_files(path: str | os.PathLike, manifest: dict, checksums: bool = False, sizes: bool = True) -> None:
    """Every data file present with the size the manifest recorded (and the sha256 with ``checksums``).

    Datasets written before sizes were recorded are checked for presence only.
    """
    path = Path(path)
    records = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    for name in DATA_FILES:
        p = path / name
        if not p.is_file():
            raise _damaged(p, "missing file" if not p.exists() else "not a regular file")
        rec = records.get(name)
        if not isinstance(rec, dict) or not sizes:
            continue
        size = p.stat().st_size
        if size != rec.get("bytes"):
            raise _damaged(p, f"is {size} bytes, the manifest recorded {rec.get('bytes')} (truncated or changed since ingest)")
        if checksums and file_record(p)["sha256"] != rec.get("sha256"):
            raise _damaged(p, "its sha256 differs from the one the manifest recorded (changed since ingest)")


def _load_triples(path: Path) -> np.ndarray:
    p = path / "relation_triples.npy"
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise _damaged(p, "missing file") from None
    except (ValueError, EOFError, OSError) as exc:
        raise _damaged(p, f"not a readable .npy file ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "iu":
        raise _damaged(p, f"expected an integer array of shape (m, 3), found {arr.dtype} {arr.shape}")
    return arr.astype(np.int64, copy=False)


def _check_range(path: Path, what: str, ids: np.ndarray, n: int) -> None:
    if len(ids) and (ids.min() < 0 or ids.max() >= n):
        bad = int(ids[(ids < 0) | (ids >= n)][0])
        raise _damaged(path, f"{what} id {bad} is out of range (there are {n})")


def _check_ids(ds: "Dataset", path: Path) -> None:
    """Every id in range, every link joins a KG1 and a KG2 entity, every split label known."""
    n, nr, na = ds.num_entities, len(ds.relations), len(ds.attributes)
    t = ds.relation_triples
    _check_range(path / "relation_triples.npy", "entity", t[:, [0, 2]].ravel(), n)
    _check_range(path / "relation_triples.npy", "relation", t[:, 1], nr)
    _check_range(path / "attribute_triples.tsv", "entity", ds.attr_entity, n)
    _check_range(path / "attribute_triples.tsv", "attribute", ds.attr_key, na)
    _check_range(path / "numeric.tsv", "entity", ds.num_entity, n)
    _check_range(path / "numeric.tsv", "attribute", ds.num_key, na)
    _check_range(path / "names.tsv", "entity", ds.name_entity, n)
    _check_range(path / "images.tsv", "entity", ds.image_entity, n)
    lp = path / "links.tsv"
    _check_range(lp, "entity", ds.links.ravel(), n)
    if len(ds.links):
        wrong = (ds.entity_kg[ds.links[:, 0]] != 1) | (ds.entity_kg[ds.links[:, 1]] != 2)
        if wrong.any():
            i = int(np.nonzero(wrong)[0][0])
            raise _damaged(lp, f"link ({ds.links[i, 0]}, {ds.links[i, 1]}) does not join a KG1 and a KG2 entity", i + 2)
    bad = next((i for i, s in enumerate(ds.link_split) if s not in SPLITS), None)
    if bad is not None:
        raise _damaged(lp, f"unknown split {ds.link_split[bad]!r} (expected one of {', '.join(SPLITS)})", bad + 2)


def _floats(cols, col, path: Path) -> np.ndarray:
    try:
        return np.fromiter(map(float, cols[col]), np.float64, len(cols[col]))
    except ValueError:
        raise _damaged(path, f"column {col + 1} must hold numbers") from None


def load_dataset(path: str | os.PathLike, checksums: bool = False) -> Dataset:
    """Read a dataset directory written by :func:`write_dataset`, checking it as it goes.

    Damage (a missing, truncated or edited file, an id out of range) is one InputError
    naming the file (and line); ``checksums`` also compares every file's sha256.
    """
    path = Path(path)
    manifest = read_manifest(path)
    check_files(path, manifest, sizes=False)  # presence first; sizes after parsing, whose messages name a line
    entities, entity_kg = _read_vocab(path / "entities.tsv")
    relations, relation_kg = _read_vocab(path / "relations.tsv")
    attributes, attribute_kg = _read_vocab(path / "attributes.tsv")
    triples = _load_triples(path)
    at = _read_tsv(path / "attribute_triples.tsv", 5)
    nu = _read_tsv(path / "numeric.tsv", 3)
    na = _read_tsv(path / "names.tsv", 3)
    im = _read_tsv(path / "images.tsv", 2)
    lpath = path / "links.tsv"
    li = _read_tsv(lpath, 3)
    ds = Dataset(
        entities=entities,
        entity_kg=entity_kg,
        relations=relations,
        relation_kg=relation_kg,
        relation_triples=triples,
        attributes=attributes,
        attribute_kg=attribute_kg,
        attr_entity=_ints(at, 0, path / "attribute_triples.tsv"),
        attr_key=_ints(at, 1, path / "attribute_triples.tsv"),
        attr_value=_unescaped(at[2]),
        attr_datatype=_unescaped(at[3]),
        attr_lang=_unescaped(at[4]),
        num_entity=_ints(nu, 0, path / "numeric.tsv"),
        num_key=_ints(nu, 1, path / "numeric.tsv"),
        num_value=_floats(nu, 2, path / "numeric.tsv"),
        name_entity=_ints(na, 0, path / "names.tsv"),
        name_text=_unescaped(na[1]),
        name_lang=_unescaped(na[2]),
        image_entity=_ints(im, 0, path / "images.tsv"),
        image_source=_unescaped(im[1]),
        links=np.stack([_ints(li, 0, lpath), _ints(li, 1, lpath)], axis=1).reshape(-1, 2),
        link_split=li[2],
        manifest=manifest,
        path=path,
    )
    check_files(path, manifest, checksums)  # a truncated file is named before the ids it leaves dangling
    _check_ids(ds, path)
    return ds
