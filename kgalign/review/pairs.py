"""What the review page shows: the queue of pairs and, per pair, both entities side by side.

Per entity: names, images, attributes, numeric values, a few neighbours with
their relations, and the runner-up candidates of the other graph (cosine of
the run's embeddings). Everything is looked up on demand by entity id, so
opening a run costs one pass over the dataset's files.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgalign.errors import InputError, MissingResourceError
from kgalign.rundir import open_run

MAX_ATTRIBUTES = 12
MAX_NEIGHBOURS = 8
CANDIDATES = 5


@dataclass(frozen=True)
class QueueItem:
    kg1: str
    kg2: str
    score: float
    status: str
    id1: int
    id2: int

    @property
    def key(self) -> str:
        """A short fingerprint of the pair: a form names the pair it decides, not only its position."""
        return hashlib.sha256(f"{self.kg1}\t{self.kg2}".encode()).hexdigest()[:16]


def local_name(term: str) -> str:
    """The part after the last '/' or '#' (for relation and attribute keys)."""
    cut = max(term.rfind("/"), term.rfind("#"))
    return term[cut + 1 :] if 0 <= cut < len(term) - 1 else term


class ReviewData:
    """A run, its dataset and the queue of pairs to decide."""

    def __init__(self, run: str | os.PathLike, sample: int | None = None, seed: int = 0):
        from kgalign.export.api import PREDICTIONS
        from kgalign.export.predictions import read_predictions

        self.run = open_run(run)
        self.ds = self.run.load_dataset()
        emb = np.array(self.run.load_embeddings(self.ds.num_entities), dtype=np.float32)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        self.emb = emb / np.where(norms > 0, norms, 1.0)
        self.kg = np.asarray(self.ds.entity_kg)
        # per graph: entity ids and their embedding rows, for the runner-up candidates
        self._by_kg = {k: (ids, self.emb[ids]) for k in (1, 2) for ids in [np.nonzero(self.kg == k)[0]]}
        ppath = self.run.path / PREDICTIONS
        if not ppath.is_file():
            raise MissingResourceError(
                f"{ppath}: no predictions; run `kgalign align {self.run.path} --threshold T --review-threshold R` first"
            )
        self.predictions_path = ppath
        table = read_predictions(ppath)
        index = {(k, t): i for i, (k, t) in enumerate(zip(self.kg.tolist(), self.ds.entities, strict=True))}
        items = []
        want = "accepted" if sample else "review"
        for lineno, (a, b, c, s) in enumerate(zip(table.kg1, table.kg2, table.score, table.status, strict=True), start=2):
            if s != want:
                continue
            i1, i2 = index.get((1, a)), index.get((2, b))
            if i1 is None or i2 is None:
                raise InputError(f"pair ({a}, {b}) names a term the dataset {self.run.dataset_path} lacks", str(ppath), lineno)
            items.append(QueueItem(a, b, float(c), s, i1, i2))
        if sample:
            items = random.Random(seed).sample(items, min(sample, len(items)))
        self.mode = "sample of accepted pairs" if sample else "review band"
        self.queue: list[QueueItem] = items
        self._names: dict[int, list[str]] | None = None

    # ---- per-entity facts -----------------------------------------------------
    def names(self, e: int) -> list[str]:
        if self._names is None:
            names: dict[int, list[str]] = {}
            for i, t in zip(self.ds.name_entity.tolist(), self.ds.name_text, strict=True):
                names.setdefault(i, []).append(t)
            self._names = names
        return self._names.get(e, [])

    def label(self, e: int) -> str:
        n = self.names(e)
        return n[0] if n else local_name(self.ds.entities[e])

    def image_sources(self, e: int) -> list[str]:
        rows = np.nonzero(self.ds.image_entity == e)[0]
        return [self.ds.image_source[i] for i in rows.tolist()]

    def attributes(self, e: int) -> list[tuple[str, str]]:
        rows = np.nonzero(self.ds.attr_entity == e)[0][:MAX_ATTRIBUTES]
        return [(local_name(self.ds.attributes[self.ds.attr_key[i]]), self.ds.attr_value[i]) for i in rows.tolist()]

    def numeric(self, e: int) -> list[tuple[str, float]]:
        rows = np.nonzero(self.ds.num_entity == e)[0][:MAX_ATTRIBUTES]
        return [(local_name(self.ds.attributes[self.ds.num_key[i]]), float(self.ds.num_value[i])) for i in rows.tolist()]

    def neighbours(self, e: int) -> list[dict]:
        t = self.ds.relation_triples
        if len(t) == 0:
            return []
        rows = np.nonzero((t[:, 0] == e) | (t[:, 2] == e))[0][:MAX_NEIGHBOURS]
        out = []
        for h, r, o in t[rows].tolist():
            other = o if h == e else h
            out.append({"relation": local_name(self.ds.relations[r]), "outgoing": h == e, "label": self.label(other)})
        return out

    def candidates(self, e: int, partner: int) -> list[dict]:
        """The best-scoring entities of the other graph for ``e`` (cosine), the proposed partner marked."""
        other, rows = self._by_kg[3 - int(self.kg[e])]
        if len(other) == 0:
            return []
        sims = rows @ self.emb[e]
        k = min(CANDIDATES, len(other))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")].tolist()
        at = int(np.searchsorted(other, partner))
        if at < len(other) and other[at] == partner and at not in top:
            top.append(at)  # the proposed partner, with its rank, when it is not among the best (e.g. matched by CSLS)
        return [
            {
                "label": self.label(int(other[j])),
                "score": float(sims[j]),
                "rank": int((sims > sims[j]).sum()) + 1,
                "proposed": int(other[j]) == partner,
            }
            for j in top
        ]

    def side(self, e: int, partner: int) -> dict:
        return {
            "id": e,
            "term": self.ds.entities[e],
            "label": self.label(e),
            "names": self.names(e),
            "images": list(range(len(self.image_sources(e)))),
            "attributes": self.attributes(e),
            "numeric": self.numeric(e),
            "neighbours": self.neighbours(e),
            "candidates": self.candidates(e, partner),
        }

    def pair(self, i: int) -> dict:
        item = self.queue[i]
        return {"item": item, "left": self.side(item.id1, item.id2), "right": self.side(item.id2, item.id1)}


# ---- images: only from allowed directories ------------------------------------


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def image_file(source: str, cache_root: Path | None, roots: list[Path]) -> Path | None:
    """The file to show for an image source, or None.

    http(s) sources come from the image cache (never fetched here); local ones
    only when they lie inside an allowed directory (after resolving links)."""
    if source.startswith(("http://", "https://")):
        if cache_root is None:
            return None
        from kgalign.features.images_fetch import ImageCache

        hit = ImageCache(cache_root).get(source)
        if not hit:
            return None
        path = Path(hit["path"]).resolve()
        return path if _inside(path, [cache_root.resolve()]) else None
    local = source[len("file://") :] if source.startswith("file://") else source
    path = Path(local)
    if not path.is_absolute():
        return None
    path = path.resolve()
    return path if path.is_file() and _inside(path, [r.resolve() for r in roots]) else None


def thumbnail_png(path: Path, size: int = 240) -> bytes | None:
    """A PNG thumbnail re-encoded by Pillow (never the file's own bytes: no SVG or HTML gets through)."""
    import io

    from PIL import Image

    try:
        with Image.open(path) as im:
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB").save(buf, format="PNG")
            return buf.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
