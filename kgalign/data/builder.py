"""Accumulating one graph's content while readers stream it in.

``GraphBuilder`` assigns local ids in order of first appearance (so a layout
that lists its entities first keeps its id order) and sorts statements into
relation triples, attribute triples, numeric values, names and images.
``assemble`` turns two builders and the resolved links into a Dataset.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from kgalign.data.store import Dataset
from kgalign.data.terms import (
    DEFAULT_IMAGE_PREDICATES,
    DEFAULT_NAME_PREDICATES,
    image_source,
    is_ill_typed,
    numeric_value,
    parse_number,
    predicate_set,
)


def _ids(vocab: dict[str, int], terms: list[str]) -> array:
    """Ids of ``terms``; new terms get the next ids in order of first appearance (mapping done in C)."""
    new = [t for t in dict.fromkeys(terms) if t not in vocab]
    vocab.update(zip(new, range(len(vocab), len(vocab) + len(new)), strict=True))
    return array("q", map(vocab.__getitem__, terms))


class GraphBuilder:
    """One knowledge graph under construction (``kg`` is 1 or 2)."""

    def __init__(self, kg: int, name_predicates=DEFAULT_NAME_PREDICATES, image_predicates=DEFAULT_IMAGE_PREDICATES):
        self.kg = kg
        self.name_predicates = predicate_set(name_predicates)
        self.image_predicates = predicate_set(image_predicates)
        self.ent: dict[str, int] = {}
        self.rel: dict[str, int] = {}
        self.attr: dict[str, int] = {}
        # relation triples as local ids; int64 arrays (8 bytes an id, not a Python int object each)
        self.heads = array("q")
        self.rels = array("q")
        self.tails = array("q")
        self.attr_rows: dict[tuple, None] = {}  # (e, a, value, datatype, lang), ordered set
        self.num_rows: dict[tuple, None] = {}  # (e, a, value)
        self.names: dict[tuple, None] = {}  # (e, text, lang)
        self.images: dict[tuple, None] = {}  # (e, source)
        self.duplicate_attribute_triples = 0
        # literals whose XSD numeric/date datatype does not fit the value ("abc"^^xsd:integer): kept as text
        self.ill_typed = 0
        self.ill_typed_example: str | None = None

    # ---- vocabularies ------------------------------------------------------
    def entity(self, term: str) -> int:
        i = self.ent.get(term)
        if i is None:
            i = self.ent[term] = len(self.ent)
        return i

    def relation(self, term: str) -> int:
        i = self.rel.get(term)
        if i is None:
            i = self.rel[term] = len(self.rel)
        return i

    def attribute(self, term: str) -> int:
        i = self.attr.get(term)
        if i is None:
            i = self.attr[term] = len(self.attr)
        return i

    # ---- statements --------------------------------------------------------
    def add_relation(self, head: str, relation: str, tail: str) -> None:
        self.heads.append(self.entity(head))
        self.rels.append(self.relation(relation))
        self.tails.append(self.entity(tail))

    def add_relation_block(self, heads: list[str], rels: list[str], tails: list[str]) -> None:
        """Bulk ``add_relation``: the same ids (first appearance, head before tail, row by row)."""
        flat: list = [None] * (2 * len(heads))
        flat[0::2], flat[1::2] = heads, tails
        ids = _ids(self.ent, flat)
        self.heads.extend(ids[0::2])
        self.rels.extend(_ids(self.rel, rels))
        self.tails.extend(ids[1::2])

    def add_relation_ids(self, heads, rels, tails) -> None:
        """Bulk add of local ids (layout importers that already hold ids)."""
        self.heads.extend(heads)
        self.rels.extend(rels)
        self.tails.extend(tails)

    def add_attribute(
        self,
        entity: str,
        attribute: str,
        value: str,
        datatype: str = "",
        lang: str = "",
        plain_numbers: bool = False,
        numeric: float | None = None,
    ) -> None:
        e, a = self.entity(entity), self.attribute(attribute)
        self._attribute_ids(e, a, value, datatype, lang, plain_numbers, numeric, entity, attribute)

    def _attribute_ids(self, e: int, a: int, value, datatype, lang, plain_numbers, numeric, entity: str, attribute: str) -> None:
        row = (e, a, value, datatype, lang)
        if row in self.attr_rows:
            self.duplicate_attribute_triples += 1
            return
        self.attr_rows[row] = None
        if numeric is None and not lang:
            numeric = numeric_value(value, datatype, plain_numbers)
            if numeric is None and is_ill_typed(value, datatype):
                self.ill_typed += 1
                if self.ill_typed_example is None:
                    self.ill_typed_example = f"{value!r}^^<{datatype}> on {entity} {attribute}"
        if numeric is not None:
            self.num_rows[(e, a, numeric)] = None

    def add_attribute_block(self, ents: list[str], keys: list[str], values: list[str], datatypes=None, langs=None, base_dir=None) -> None:
        """Bulk of the attribute-file rule, row by row the same as: a name predicate makes a name, an image
        predicate an image, anything else an attribute (plain numbers count). ``datatypes``/``langs`` None: all ""."""
        eids = _ids(self.ent, ents)  # every row names its entity first, in row order
        kind = {k: 1 if k in self.name_predicates else 2 if k in self.image_predicates else 0 for k in dict.fromkeys(keys)}
        plain = datatypes is None and langs is None
        dts = datatypes if datatypes is not None else [""] * len(ents)
        lgs = langs if langs is not None else [""] * len(ents)
        if any(kind.values()):
            for i, k in enumerate(map(kind.__getitem__, keys)):
                if k == 1:
                    self.names[(eids[i], values[i], lgs[i])] = None
                elif k == 2:
                    self.images[(eids[i], image_source(values[i], base_dir))] = None
            keep = [i for i, k in enumerate(map(kind.__getitem__, keys)) if k == 0]
            ents, keys, values, dts, lgs = ([col[i] for i in keep] for col in (ents, keys, values, dts, lgs))
            eids = array("q", [eids[i] for i in keep])
        aids = _ids(self.attr, keys)
        if not plain:
            for e, a, v, dt, lang, te, ta in zip(eids, aids, values, dts, lgs, ents, keys, strict=True):
                self._attribute_ids(e, a, v, dt, lang, True, None, te, ta)
            return
        # no datatype, no language: a row is numeric when its value reads as a number; dicts dedupe in order
        fresh = [r for r in dict.fromkeys(zip(eids, aids, values, dts, lgs, strict=True)) if r not in self.attr_rows]
        self.duplicate_attribute_triples += len(values) - len(fresh)
        self.attr_rows.update(dict.fromkeys(fresh))
        for (e, a, *_), x in zip(fresh, map(parse_number, [r[2] for r in fresh]), strict=True):
            if x is not None:
                self.num_rows[(e, a, x)] = None

    def add_name(self, entity: str, text: str, lang: str = "") -> None:
        self.names[(self.entity(entity), text, lang)] = None

    def add_image(self, entity: str, source: str, base_dir: Path | None = None) -> None:
        self.images[(self.entity(entity), image_source(source, base_dir))] = None

    def add_rdf(self, subject: str, predicate: str, obj: str, is_literal: bool, datatype: str = "", lang: str = "") -> None:
        """Classify one RDF statement (terms already in stored form)."""
        if predicate in self.image_predicates:
            self.add_image(subject, obj)
        elif not is_literal:
            self.add_relation(subject, predicate, obj)
        elif predicate in self.name_predicates:
            self.add_name(subject, obj, lang)
        else:
            self.add_attribute(subject, predicate, obj, datatype, lang)

    def add_statements(self, statements) -> None:
        """``add_rdf`` for a stream of statements; relation triples inlined (the hot path)."""
        ent, rel = self.ent, self.rel
        images, names = self.image_predicates, self.name_predicates
        heads, rels, tails = self.heads.append, self.rels.append, self.tails.append
        for s, p, o, is_literal, dt, lang in statements:
            if is_literal or p in images:
                if p in images:
                    self.add_image(s, o)
                elif p in names:
                    self.add_name(s, o, lang)
                else:
                    self.add_attribute(s, p, o, dt, lang)
                continue
            h = ent.get(s)
            if h is None:
                h = ent[s] = len(ent)
            r = rel.get(p)
            if r is None:
                r = rel[p] = len(rel)
            t = ent.get(o)
            if t is None:
                t = ent[o] = len(ent)
            heads(h)
            rels(r)
            tails(t)

    # ---- results -----------------------------------------------------------
    def triples(self) -> tuple[np.ndarray, int]:
        """Unique relation triples (first occurrence order) and how many duplicates were dropped."""
        arr = (
            np.stack([np.asarray(self.heads, np.int64), np.asarray(self.rels, np.int64), np.asarray(self.tails, np.int64)], axis=1)
            if self.heads
            else np.zeros((0, 3), np.int64)
        )
        if len(arr) == 0:
            return arr, 0
        n_e, n_r = max(len(self.ent), 1), max(len(self.rel), 1)
        if n_e * n_e * n_r < 2**62:  # one int64 key per triple: much faster than unique(axis=0)
            keys = (arr[:, 0] * n_r + arr[:, 1]) * n_e + arr[:, 2]
            _, first = np.unique(keys, return_index=True)
        else:
            _, first = np.unique(arr, axis=0, return_index=True)
        first.sort()
        return arr[first], len(arr) - len(first)


def _inverse(vocab: dict[str, int]) -> list[str]:
    out = [""] * len(vocab)
    for term, i in vocab.items():
        out[i] = term
    return out


def assemble(g1: GraphBuilder, g2: GraphBuilder, links: np.ndarray, link_split: list[str], manifest: dict) -> Dataset:
    """Global ids: KG1 entities 0..n1-1 then KG2; relations and attributes likewise.

    ``links`` holds local ids ``(kg1 local, kg2 local)``; they are shifted here.
    """
    n1, r1, a1 = len(g1.ent), len(g1.rel), len(g1.attr)
    t1, d1 = g1.triples()
    t2, d2 = g2.triples()
    t2 = t2 + np.array([n1, r1, n1], np.int64) if len(t2) else t2
    manifest.setdefault("duplicates_dropped", {})
    manifest["duplicates_dropped"]["relation_triples"] = {"kg1": d1, "kg2": d2}
    manifest["duplicates_dropped"]["attribute_triples"] = {"kg1": g1.duplicate_attribute_triples, "kg2": g2.duplicate_attribute_triples}

    def cols(rows1, rows2, width, shifts):
        out = []
        for c in range(width):
            shift = shifts[c]
            col = [r[c] for r in rows1] + [(r[c] + shift if shift else r[c]) for r in rows2]
            out.append(col)
        return out

    ae, ak, av, ad, al = cols(g1.attr_rows, g2.attr_rows, 5, (n1, a1, 0, 0, 0))
    ne, nk, nv = cols(g1.num_rows, g2.num_rows, 3, (n1, a1, 0))
    me, mt, ml = cols(g1.names, g2.names, 3, (n1, 0, 0))
    ie, isrc = cols(g1.images, g2.images, 2, (n1, 0))
    links = np.asarray(links, np.int64).reshape(-1, 2).copy()
    links[:, 1] += n1
    return Dataset(
        entities=_inverse(g1.ent) + _inverse(g2.ent),
        entity_kg=np.array([1] * n1 + [2] * len(g2.ent), np.int8),
        relations=_inverse(g1.rel) + _inverse(g2.rel),
        relation_kg=np.array([1] * r1 + [2] * len(g2.rel), np.int8),
        relation_triples=np.concatenate([t1, t2]).astype(np.int64).reshape(-1, 3),
        attributes=_inverse(g1.attr) + _inverse(g2.attr),
        attribute_kg=np.array([1] * a1 + [2] * len(g2.attr), np.int8),
        attr_entity=np.asarray(ae, np.int64),
        attr_key=np.asarray(ak, np.int64),
        attr_value=av,
        attr_datatype=ad,
        attr_lang=al,
        num_entity=np.asarray(ne, np.int64),
        num_key=np.asarray(nk, np.int64),
        num_value=np.asarray(nv, np.float64),
        name_entity=np.asarray(me, np.int64),
        name_text=mt,
        name_lang=ml,
        image_entity=np.asarray(ie, np.int64),
        image_source=isrc,
        links=links,
        link_split=list(link_split),
        manifest=manifest,
    )
