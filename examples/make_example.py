#!/usr/bin/env python3
"""Generate the bundled example: two noisy multi-modal views of one synthetic world.

Usage::

    python examples/make_example.py              # rewrites the committed files in examples/
    python examples/make_example.py --out DIR    # writes the same files under DIR

The recipe (documented in examples/README.md):

1. A latent world of entities of five types (country, city, organisation,
   person, film), each in one of a few regions (communities), with
   type-respecting relations drawn mostly inside a region.
2. Two views KG1 and KG2: shared entities plus dangling entities that only one
   view has, different IRI schemes and relation vocabularies (renamed,
   inverted, merged), each view dropping edges and adding random ones.
3. Names with spelling variation, numeric attributes with unit/datatype
   differences and noise, and small procedurally drawn images (KG2's are
   perturbed renderings); every modality has gaps.

Deterministic: everything comes from one seed; only numpy and Pillow are needed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SEED = 20261121
IMAGE_SIZE = 32

# Sizes of the latent world and of the two views.
TYPE_COUNTS = {"country": 16, "city": 64, "organisation": 60, "person": 130, "film": 100}
N_REGIONS = 8
N_SHARED = 300
P_EDGE_DROP = 0.20       # per view
P_EDGE_ADD = 0.10        # random type-respecting edges, relative to the kept edges
P_NO_IMAGE = 0.20        # per view
P_MISSING_NAME = {"kg1": 0.04, "kg2": 0.10}
P_MISSING_ATTR = 0.15    # per attribute per view

KG1_NS = "http://kg1.example.org/resource/"
KG1_ONT = "http://kg1.example.org/ontology/"
KG2_NS = "http://kg2.example.org/entity/"
KG2_PROP = "http://kg2.example.org/prop/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SCHEMA = "http://schema.org/"
FOAF_DEPICTION = "http://xmlns.com/foaf/0.1/depiction"
OWL_SAMEAS = "http://www.w3.org/2002/07/owl#sameAs"
IMAGE_URL_BASE = "http://127.0.0.1:8765/"

# Latent relations: (name, head type, tail type, tails per head, same-region prob).
# "tails per head" 1.0 means exactly one, otherwise a Poisson mean; symmetric
# relations are stored once per unordered pair.
RELATIONS = [
    ("located_in", "city", "country", 1.0, 1.0),
    ("twinned_with", "city", "city", 0.5, 0.3),
    ("born_in", "person", "city", 1.0, 0.85),
    ("citizen_of", "person", "country", 1.0, 0.9),
    ("works_for", "person", "organisation", 1.1, 0.8),
    ("spouse", "person", "person", 0.2, 0.8),
    ("knows", "person", "person", 1.2, 0.8),
    ("influenced_by", "person", "person", 0.8, 0.6),
    ("headquartered_in", "organisation", "city", 1.0, 1.0),
    ("subsidiary_of", "organisation", "organisation", 0.5, 0.7),
    ("founded_by", "organisation", "person", 0.8, 0.9),
    ("directed_by", "film", "person", 1.0, 0.85),
    ("starring", "film", "person", 3.0, 0.75),
    ("produced_by", "film", "organisation", 1.1, 0.8),
    ("filmed_in", "film", "city", 1.0, 0.7),
]
SYMMETRIC = {"twinned_with", "spouse", "knows"}

# KG1 vocabulary: DBpedia-like names, same direction as the latent relation.
KG1_REL = {
    "located_in": "country", "twinned_with": "twinTown", "born_in": "birthPlace",
    "citizen_of": "nationality", "works_for": "employer", "spouse": "spouse",
    "knows": "associate", "influenced_by": "influencedBy",
    "headquartered_in": "headquarter", "subsidiary_of": "parentCompany",
    "founded_by": "foundedBy", "directed_by": "director", "starring": "starring",
    "produced_by": "producer", "filmed_in": "filmingLocation",
}
# KG2 vocabulary: Wikidata-like opaque ids; (property, inverted?).  Two merges:
# located_in + citizen_of -> P17 and knows + influenced_by -> P3342.
KG2_REL = {
    "located_in": ("P17", False), "twinned_with": ("P190", False),
    "born_in": ("P19", False), "citizen_of": ("P17", False),
    "works_for": ("P108", False), "spouse": ("P26", False),
    "knows": ("P3342", False), "influenced_by": ("P3342", False),
    "headquartered_in": ("P159", False), "subsidiary_of": ("P355", True),
    "founded_by": ("P800", True), "directed_by": ("P57", False),
    "starring": ("P161", False), "produced_by": ("P272", False),
    "filmed_in": ("P915", False),
}

# ---------------------------------------------------------------- names

_ONSETS = ["b", "d", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr",
           "st", "tr", "ch", "sh", "j", "g", "h", "f", "w", "y"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ia", "ei", "ou"]
_CODAS = ["", "", "", "n", "r", "l", "s", "k", "m", "v", "sk", "nd"]
# Diacritic spellings used in KG1 and their ASCII transliterations used in KG2.
_DIACRITICS = {"sh": "š", "ch": "č", "oe": "ö", "ue": "ü", "e": "é", "l": "ł", "c": "ç", "a": "á"}
_TRANSLIT = {"š": "sh", "č": "ch", "ö": "oe", "ü": "ue", "é": "e", "ł": "l", "ç": "c", "á": "a",
             "ž": "zh"}

_ADJ = {"Silent": "silencieux", "Last": "dernier", "Red": "rouge", "Long": "long",
        "Hidden": "caché", "Golden": "doré", "Broken": "brisé", "Endless": "infini",
        "Black": "noir", "Lost": "perdu", "Frozen": "gelé", "Distant": "lointain",
        "Wild": "sauvage", "Quiet": "tranquille", "Bitter": "amer", "Secret": "secret"}
_NOUN = {"Harbour": "port", "Winter": "hiver", "Garden": "jardin", "River": "fleuve",
         "Road": "chemin", "Forest": "bois", "Summer": "été", "Mirror": "miroir",
         "Train": "train", "Island": "îlot", "Dream": "rêve", "Sky": "ciel",
         "Horizon": "horizon", "Journey": "voyage", "Shadow": "reflet", "Castle": "château"}
_ORG_KINDS = ["Steelworks", "Pictures", "Institute", "Bank", "Airlines", "Records",
              "Motors", "Studios", "University", "Press", "Foundation", "Insurance"]
_ORG_ABBR = {"Institute": "Inst.", "University": "Univ.", "Foundation": "Fdn.",
             "Insurance": "Ins.", "Pictures": "Pics", "Airlines": "Air", "Studios": "Studio"}
_LEGAL = {"Ltd": "Limited", "AG": "A.G.", "Group": "Grp", "Inc.": "Incorporated"}
_CITY_PRE = {"Port": "Pt.", "Saint": "St.", "Nova": "Nova", "Upper": "Upr."}
_CITY_SUF = ["", "", "", "", "grad", "burg", "ia", "ovo", "ton", "heim"]


def _word(rng: np.random.Generator, n_syll: int) -> str:
    parts = []
    for _ in range(n_syll):
        parts.append(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))])
    parts.append(_CODAS[rng.integers(len(_CODAS))])
    return "".join(parts)


def _decorate(word: str, rng: np.random.Generator, p: float) -> str:
    """Give a word diacritic spellings (KG1 style) with probability ``p``."""
    if rng.random() >= p:
        return word
    for ascii_, mark in _DIACRITICS.items():
        if ascii_ in word and rng.random() < 0.7:
            word = word.replace(ascii_, mark, 1)
            break
    return word


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


def translit(text: str) -> str:
    """ASCII transliteration as KG2 writes names (š -> sh, ö -> oe, é -> e, ...)."""
    out = []
    for ch in text:
        low = ch.lower()
        if low in _TRANSLIT:
            rep = _TRANSLIT[low]
            out.append(_cap(rep) if ch != low else rep)
        else:
            out.append(unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or ch)
    return "".join(out)


def _typo(text: str, rng: np.random.Generator) -> str:
    letters = [i for i, c in enumerate(text) if c.islower() and 0 < i < len(text) - 1]
    if not letters:
        return text
    i = letters[rng.integers(len(letters))]
    kind = rng.integers(3)
    if kind == 0 and text[i + 1].islower():   # swap two neighbours
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == 1:                               # drop a letter
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]        # double a letter


# ---------------------------------------------------------------- world


@dataclass
class Entity:
    idx: int
    type: str
    region: int
    name: str                      # canonical (KG1-style) name
    parts: dict                    # pieces used for name variants
    attrs: dict = field(default_factory=dict)
    look: np.ndarray | None = None  # latent appearance vector in [0, 1)


def _unique(make, used: set):
    for _ in range(1000):
        value = make()
        if value not in used:
            used.add(value)
            return value
    raise RuntimeError("could not draw a unique name")


def build_world(rng: np.random.Generator) -> list[Entity]:
    """Entities with names, regions, numeric attributes and appearance vectors."""
    ents: list[Entity] = []
    used: set = set()
    region_hue = rng.random(N_REGIONS)
    for etype, count in TYPE_COUNTS.items():
        for k in range(count):
            region = k % N_REGIONS if etype != "country" else k // 2
            parts = {}
            if etype == "country":
                stem = _unique(lambda: _cap(_word(rng, 2)) + "ia", used)
                parts = {"stem": stem, "republic": bool(rng.random() < 0.4)}
                name = f"Republic of {stem}" if parts["republic"] else stem
            elif etype == "city":
                pre = list(_CITY_PRE)[rng.integers(len(_CITY_PRE))] if rng.random() < 0.25 else ""
                def make_city():
                    w = _cap(_decorate(_word(rng, int(rng.integers(1, 3))), rng, 0.35))
                    return w + _CITY_SUF[rng.integers(len(_CITY_SUF))]
                stem = _unique(make_city, used)
                parts = {"pre": pre, "stem": stem}
                name = f"{pre} {stem}".strip()
            elif etype == "organisation":
                kind = _ORG_KINDS[rng.integers(len(_ORG_KINDS))]
                legal = list(_LEGAL)[rng.integers(len(_LEGAL))] if rng.random() < 0.5 else ""
                stem = _unique(lambda: _cap(_word(rng, int(rng.integers(1, 3)))), used)
                parts = {"stem": stem, "kind": kind, "legal": legal}
                name = f"{stem} {kind}" + (f" {legal}" if legal else "")
                if kind == "University" and rng.random() < 0.5:
                    parts["of"] = True
                    name = f"University of {stem}"
            elif etype == "person":
                def make_person():
                    g = _cap(_decorate(_word(rng, int(rng.integers(1, 3))), rng, 0.3))
                    f = _cap(_decorate(_word(rng, int(rng.integers(2, 4))), rng, 0.4))
                    return (g, f)
                given, family = _unique(make_person, used)
                parts = {"given": given, "family": family}
                name = f"{given} {family}"
            else:  # film
                def make_film():
                    adj = list(_ADJ)[rng.integers(len(_ADJ))]
                    noun = list(_NOUN)[rng.integers(len(_NOUN))]
                    return (adj, noun, bool(rng.random() < 0.6))
                adj, noun, article = _unique(make_film, used)
                parts = {"adj": adj, "noun": noun, "article": article}
                name = ("The " if article else "") + f"{adj} {noun}"
            look = rng.random(8)
            look[0] = (region_hue[region] + 0.08 * rng.standard_normal()) % 1.0
            ents.append(Entity(len(ents), etype, region, name, parts, look=look))
    _draw_attributes(ents, rng)
    return ents


def _draw_attributes(ents: list[Entity], rng: np.random.Generator) -> None:
    """Latent numeric facts (true values; the views add noise and unit changes)."""
    for e in ents:
        a = e.attrs
        if e.type == "country":
            a["population"] = int(rng.lognormal(16.0, 1.0))
            a["area"] = round(float(rng.lognormal(11.5, 1.0)), 1)
            a["gdp"] = float(f"{rng.lognormal(25.0, 1.2):.3e}")
        elif e.type == "city":
            a["population"] = int(rng.lognormal(12.0, 1.1))
            a["area"] = round(float(rng.lognormal(4.5, 0.8)), 1)
            a["elevation"] = int(rng.gamma(2.0, 120.0))
            a["founded"] = int(rng.integers(800, 1900))
        elif e.type == "organisation":
            a["founded"] = int(rng.integers(1850, 2015))
            a["employees"] = int(rng.lognormal(7.0, 1.5))
            a["revenue"] = float(f"{rng.lognormal(18.0, 1.5):.3e}")
        elif e.type == "person":
            year = int(rng.integers(1900, 2000))
            a["birth"] = (year, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
            if year < 1950 and rng.random() < 0.6:
                dy = year + int(rng.integers(50, 95))
                if dy <= 2024:
                    a["death"] = (dy, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
            a["height"] = round(float(rng.normal(1.74, 0.09)), 2)
        else:
            a["release"] = (int(rng.integers(1930, 2024)), int(rng.integers(1, 13)),
                            int(rng.integers(1, 29)))
            a["runtime"] = int(rng.normal(105, 18))
            a["budget"] = float(f"{rng.lognormal(16.0, 1.0):.2e}")


def build_edges(ents: list[Entity], rng: np.random.Generator) -> list[tuple[int, str, int]]:
    """Latent typed edges; tails are picked mostly from the head's region."""
    by_type: dict[str, list[Entity]] = {}
    for e in ents:
        by_type.setdefault(e.type, []).append(e)
    edges: set[tuple[int, str, int]] = set()
    for rel, htype, ttype, mean, p_local in RELATIONS:
        tails = by_type[ttype]
        for h in by_type[htype]:
            n = int(rng.poisson(mean)) if mean != 1.0 else 1
            for _ in range(n):
                local = [t for t in tails if t.region == h.region and t.idx != h.idx]
                pool = local if (local and rng.random() < p_local) else tails
                t = pool[rng.integers(len(pool))]
                if t.idx == h.idx:
                    continue
                a, b = (min(h.idx, t.idx), max(h.idx, t.idx)) if rel in SYMMETRIC else (h.idx, t.idx)
                edges.add((a, rel, b))
    return sorted(edges, key=lambda x: (x[0], x[1], x[2]))


# ---------------------------------------------------------------- views


def _dbl(x: float, digits: int) -> str:
    """xsd:double in canonical-like form: 1.13E7 (no '+', no leading zeros)."""
    mant, exp = f"{x:.{digits}E}".split("E")
    return f"{mant}E{int(exp)}"


def _fmt_date(d: tuple[int, int, int]) -> str:
    return f"{d[0]:04d}-{d[1]:02d}-{d[2]:02d}"


def _kg2_name(e: Entity, rng: np.random.Generator) -> tuple[str, str]:
    """KG2's spelling of an entity's name and its language tag."""
    p = e.parts
    r = rng.random()
    name = e.name
    if e.type == "person":
        if r < 0.15:
            name = f"{p['family']}, {p['given']}"
        elif r < 0.30:
            name = f"{p['given'][0]}. {p['family']}"
    elif e.type == "film":
        if r < 0.30:  # French title
            t = f"{_NOUN[p['noun']]} {_ADJ[p['adj']]}"
            if not p["article"]:
                return _cap(t), "fr"
            return ("L'" if t[0] in "aeiouhéî" else "Le ") + t, "fr"
    elif e.type == "organisation":
        if r < 0.35:
            if p.get("of"):
                name = f"{p['stem']} University"
            else:
                kind = _ORG_ABBR.get(p["kind"], p["kind"])
                legal = _LEGAL.get(p["legal"], "") if rng.random() < 0.5 else ""
                name = f"{p['stem']} {kind}" + (f" {legal}" if legal else "")
    elif e.type == "city":
        if r < 0.3 and p["pre"]:
            name = f"{_CITY_PRE[p['pre']]} {p['stem']}"
    elif e.type == "country":
        if p["republic"] and r < 0.6:
            name = p["stem"]
    name = translit(name)
    if rng.random() < 0.15:
        name = _typo(name, rng)
    return name, "en"


@dataclass
class View:
    """One knowledge graph as generated: IRIs, triples, attributes, images."""
    key: str                                      # "kg1" or "kg2"
    iri: dict[int, str]                           # latent idx -> entity IRI
    rel: list[tuple[str, str, str]]               # (h, r, t) IRIs
    attr: list[tuple[str, str, str, str]]         # (entity, attribute IRI, lexical, datatype/@lang)
    images: dict[int, str]                        # latent idx -> image file stem


def _kg1_local(name: str, used: set) -> str:
    base = "".join(c if c.isalnum() else "_" for c in translit(name)).strip("_")
    local, k = base, 2
    while local in used:
        local, k = f"{base}_{k}", k + 1
    used.add(local)
    return local


def _perturb_edges(edges, members: set[int], rng, ents) -> list[tuple[int, str, int]]:
    """Keep ~80% of the latent edges among ``members`` and add ~10% random ones."""
    inside = [e for e in edges if e[0] in members and e[2] in members]
    keep = [e for e in inside if rng.random() >= P_EDGE_DROP]
    by_type: dict[str, list[int]] = {}
    for i in sorted(members):
        by_type.setdefault(ents[i].type, []).append(i)
    spec = {r[0]: r for r in RELATIONS}
    have = set(keep)
    n_add = int(round(P_EDGE_ADD * len(keep)))
    while n_add > 0:
        rel = inside[rng.integers(len(inside))][1]   # relation chosen by frequency
        _, ht, tt, _, _ = spec[rel]
        h = by_type[ht][rng.integers(len(by_type[ht]))]
        t = by_type[tt][rng.integers(len(by_type[tt]))]
        if h == t:
            continue
        e = (min(h, t), rel, max(h, t)) if rel in SYMMETRIC else (h, rel, t)
        if e not in have:
            have.add(e)
            keep.append(e)
            n_add -= 1
    return sorted(keep)


def build_views(ents, edges, rng) -> tuple[View, View, list[tuple[int, int]]]:
    n = len(ents)
    order = rng.permutation(n)
    n_dang = (n - N_SHARED) // 2
    shared = sorted(int(i) for i in order[:N_SHARED])
    only1 = sorted(int(i) for i in order[N_SHARED:N_SHARED + n_dang])
    only2 = sorted(int(i) for i in order[N_SHARED + n_dang:])
    m1, m2 = set(shared) | set(only1), set(shared) | set(only2)

    used: set = set()
    iri1 = {i: KG1_NS + _kg1_local(ents[i].name, used) for i in sorted(m1)}
    qids = rng.choice(np.arange(1000, 99999), size=len(m2), replace=False)
    iri2 = {i: f"{KG2_NS}Q{int(q)}" for i, q in zip(sorted(m2), qids)}

    views = []
    for key, members, iri in (("kg1", m1, iri1), ("kg2", m2, iri2)):
        r = np.random.default_rng([SEED, 1 if key == "kg1" else 2])
        rel = []
        for h, name, t in _perturb_edges(edges, members, r, ents):
            if key == "kg1":
                rel.append((iri[h], KG1_ONT + KG1_REL[name], iri[t]))
            else:
                prop, inv = KG2_REL[name]
                a, b = (t, h) if inv else (h, t)
                rel.append((iri[a], KG2_PROP + prop, iri[b]))
        attr = []
        for i in sorted(members):
            attr.extend(_attributes(key, ents[i], iri[i], r))
        images = {}
        stems = _image_stems(key, sorted(members), iri, r)
        for i in sorted(members):
            if r.random() >= P_NO_IMAGE:
                images[i] = stems[i]
        views.append(View(key, iri, sorted(set(rel)), sorted(attr), images))
    links = [(i, i) for i in shared]
    return views[0], views[1], links


def _image_stems(key, members, iri, rng) -> dict[int, str]:
    if key == "kg2":
        return {i: iri[i].rsplit("/", 1)[1] for i in members}
    # KG1 numbers its image files in a shuffled order, so file names carry no hint.
    perm = rng.permutation(len(members))
    return {i: f"img{int(perm[k]) + 1:04d}" for k, i in enumerate(members)}


def _attributes(key: str, e: Entity, s: str, rng) -> list[tuple[str, str, str, str]]:
    """Literal triples of one entity in one view: (s, p, lexical, '^^dt' or '@lang')."""
    out: list[tuple[str, str, str, str]] = []
    a = e.attrs

    def miss() -> bool:
        return rng.random() < P_MISSING_ATTR

    def num(p: str, value, dt: str) -> None:
        out.append((s, p, str(value), "^^" + XSD + dt))

    if key == "kg1":
        if rng.random() >= P_MISSING_NAME["kg1"]:
            out.append((s, RDFS_LABEL, e.name, "@en"))
        o = KG1_ONT
        out.append((s, o + "category", _cap(e.type), "@en"))
        if e.type in ("country", "city"):
            if not miss():
                num(o + "populationTotal", a["population"], "integer")
            if not miss():
                num(o + "areaTotal", f"{a['area']:.1f}", "decimal")
        if e.type == "country" and not miss():
            num(o + "gdp", _dbl(a["gdp"], 3), "double")
        if e.type == "city":
            if not miss():
                num(o + "elevation", a["elevation"], "integer")
            if not miss():
                num(o + "foundingYear", f"{a['founded']:04d}", "gYear")
        if e.type == "organisation":
            if not miss():
                num(o + "foundingYear", f"{a['founded']:04d}", "gYear")
            if not miss():
                num(o + "numberOfEmployees", a["employees"], "integer")
            if not miss():
                num(o + "revenue", _dbl(a["revenue"], 3), "double")
        if e.type == "person":
            if not miss():
                num(o + "birthDate", _fmt_date(a["birth"]), "date")
            if "death" in a and not miss():
                num(o + "deathDate", _fmt_date(a["death"]), "date")
            if rng.random() < 0.6:
                num(o + "height", f"{a['height']:.2f}", "decimal")   # metres
        if e.type == "film":
            if not miss():
                num(o + "releaseDate", _fmt_date(a["release"]), "date")
            if not miss():
                num(o + "runtime", a["runtime"], "integer")          # minutes
            if not miss():
                num(o + "budget", _dbl(a["budget"], 2), "double")
        out.append((s, o + "abstract", _abstract(e), "@en"))
        return out

    p = KG2_PROP
    if rng.random() >= P_MISSING_NAME["kg2"]:
        name, lang = _kg2_name(e, rng)
        out.append((s, SCHEMA + "name", name, "@" + lang))
    if e.type in ("country", "city"):
        if not miss():  # another census: +-6 %
            num(p + "P1082", int(round(a["population"] * (1 + 0.06 * rng.standard_normal()))), "integer")
        if not miss():
            num(p + "P2046", f"{a['area'] * (1 + 0.02 * rng.standard_normal()):.0f}", "decimal")
    if e.type == "country" and not miss():
        num(p + "P2131", _dbl(a["gdp"] * (1 + 0.1 * rng.standard_normal()), 2), "double")
    if e.type == "city" and not miss():
        num(p + "P2044", a["elevation"] + int(rng.integers(-3, 4)), "integer")
    if e.type == "organisation":
        if not miss():
            num(p + "P571", f"{a['founded']:04d}-01-01", "date")
        if not miss():
            num(p + "P1128", int(round(a["employees"] * (1 + 0.1 * rng.standard_normal()))), "integer")
    if e.type == "person":
        y, m, d = a["birth"]
        if not miss():
            if rng.random() < 0.05:
                y += int(rng.choice([-1, 1]))      # a wrong year now and then
            if rng.random() < 0.4:
                num(p + "P569", f"{y:04d}", "gYear")
            else:
                num(p + "P569", _fmt_date((y, m, d)), "date")
        if "death" in a and not miss():
            num(p + "P570", f"{a['death'][0]:04d}", "gYear")
        if rng.random() < 0.6:
            cm = int(round(a["height"] * 100 + rng.normal(0, 1.0)))
            num(p + "P2048", cm, "integer")                            # centimetres
    if e.type == "film":
        if not miss():
            num(p + "P577", f"{a['release'][0]:04d}", "gYear")
        if not miss():
            num(p + "P2047", a["runtime"] + int(rng.integers(-2, 3)), "integer")
    desc = {"country": "sovereign state", "city": "city", "organisation": "organisation",
            "person": "human", "film": "film"}[e.type]
    out.append((s, p + "P31", desc, "@en"))
    if e.type == "film" and "release" in a:
        out.append((s, SCHEMA + "description", f"{a['release'][0]} film", "@en"))
    elif e.type == "person":
        out.append((s, SCHEMA + "description", f"person born {a['birth'][0]}", "@en"))
    return out


def _abstract(e: Entity) -> str:
    a = e.attrs
    if e.type == "person":
        return f"{e.name} (born {a['birth'][0]}) is a person."
    if e.type == "film":
        return f"{e.name} is a film released in {a['release'][0]}."
    if e.type == "city":
        return f"{e.name} is a city founded in {a['founded']}."
    if e.type == "organisation":
        return f"{e.name} is an organisation founded in {a['founded']}."
    return f"{e.name} is a country."


# ---------------------------------------------------------------- images


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def render(e: Entity, jitter: np.ndarray | None = None, shift=(0, 0), mirror=False) -> Image.Image:
    """Draw an entity's picture from its type and appearance vector.

    The type fixes the motif (flag bands, skyline, logo, portrait, film strip),
    the region the background hue, the appearance vector the details.
    ``jitter`` (3,) shifts hue/saturation/value of every colour (KG2's camera).
    """
    z = e.look
    j = np.zeros(3) if jitter is None else jitter

    def col(h, s, v):
        return _hsv((h + j[0]) % 1.0, float(np.clip(s + j[1], 0, 1)), float(np.clip(v + j[2], 0, 1)))

    n = IMAGE_SIZE
    bg = col(z[0], 0.35, 0.9)
    fg = col(z[1], 0.8, 0.55 + 0.4 * z[2])
    ac = col((z[1] + 0.5) % 1.0, 0.9, 0.9)
    img = Image.new("RGB", (n, n), bg)
    d = ImageDraw.Draw(img)
    dx, dy = shift

    def box(x0, y0, x1, y1):
        return [x0 + dx, y0 + dy, x1 + dx, y1 + dy]

    if e.type == "country":                      # flag with 2-3 bands
        k = 2 + int(z[3] > 0.5)
        for b in range(k):
            c = fg if b % 2 == 0 else ac
            if z[4] > 0.5:
                d.rectangle(box(4 + b * 24 // k, 6, 4 + (b + 1) * 24 // k - 1, 25), fill=c)
            else:
                d.rectangle(box(4, 6 + b * 20 // k, 27, 6 + (b + 1) * 20 // k - 1), fill=c)
        d.ellipse(box(12, 12, 19, 19), fill=col(z[5], 0.2, 1.0) if z[6] > 0.5 else fg)
    elif e.type == "city":                       # skyline
        x = 2
        for b in range(6):
            w = 3 + int(4 * z[(b + 2) % 8])
            h = 6 + int(18 * z[(b + 3) % 8])
            d.rectangle(box(x, 30 - h, x + w - 1, 29), fill=fg if b % 2 else ac)
            x += w
            if x > 29:
                break
        d.ellipse(box(22, 3, 22 + 3 + int(4 * z[7]), 6 + int(4 * z[7])), fill=col(0.15, 0.8, 1.0))
    elif e.type == "organisation":               # logo: polygon in a ring
        cx, cy, r = 16, 16, 9 + int(4 * z[3])
        d.ellipse(box(cx - r - 2, cy - r - 2, cx + r + 2, cy + r + 2), outline=fg, width=2)
        k = 3 + int(3 * z[4])
        ang = z[5] * 2 * np.pi
        pts = [(cx + dx + r * 0.8 * np.cos(ang + 2 * np.pi * i / k),
                cy + dy + r * 0.8 * np.sin(ang + 2 * np.pi * i / k)) for i in range(k)]
        d.polygon([(round(px), round(py)) for px, py in pts], fill=ac)
    elif e.type == "person":                     # portrait
        hr = 5 + int(3 * z[3])
        cx = 13 + int(6 * z[4])
        d.ellipse(box(cx - hr, 9 - hr // 2, cx + hr, 9 + hr + hr // 2), fill=col(0.07, 0.4, 0.95))
        d.rectangle(box(cx - hr, 4, cx + hr, 4 + int(4 * z[5])), fill=fg)   # hair
        d.pieslice(box(cx - 12, 20, cx + 12, 44), 180, 360, fill=ac)        # shoulders
    else:                                        # film strip
        stripes = 2 + int(4 * z[3])
        for k in range(stripes):
            y = 4 + k * 24 // stripes
            d.rectangle(box(3, y, 28, y + max(1, 12 // stripes)), fill=fg)
        for y in range(2, 31, 4):
            d.rectangle(box(0, y, 1, y + 1), fill=ac)
            d.rectangle(box(30, y, 31, y + 1), fill=ac)
        d.ellipse(box(8 + int(10 * z[6]), 10, 14 + int(10 * z[6]), 16 + int(6 * z[7])), fill=ac)
    if mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def render_kg2(e: Entity, rng: np.random.Generator) -> Image.Image:
    """KG2's picture: shifted, colour-jittered, sometimes mirrored, with speckle noise."""
    jitter = np.array([0.04, 0.1, 0.1]) * rng.standard_normal(3)
    shift = (int(rng.integers(-3, 4)), int(rng.integers(-3, 4)))
    img = render(e, jitter=jitter, shift=shift, mirror=bool(rng.random() < 0.1))
    px = np.asarray(img).copy()
    mask = rng.random(px.shape[:2]) < 0.03            # 3 % speckles
    px[mask] = rng.integers(0, 256, size=(int(mask.sum()), 3), dtype=np.uint8)
    return Image.fromarray(px, "RGB")


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# ---------------------------------------------------------------- writers


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ttl(view: View, prefixes: dict[str, str], image_pred: str, image_ref) -> str:
    def short(iri: str) -> str:
        for p, ns in prefixes.items():
            if iri.startswith(ns):
                local = iri[len(ns):]
                if local and local.replace("_", "a").isalnum() and local.isascii():
                    return f"{p}:{local}"
        return f"<{iri}>"

    by_s: dict[str, list[str]] = {}
    for s, p, o in view.rel:
        by_s.setdefault(s, []).append(f"{short(p)} {short(o)}")
    for s, p, lex, tag in view.attr:
        lit = f'"{_esc(lex)}"' + (tag if tag.startswith("@") else "^^" + short(tag[2:]))
        by_s.setdefault(s, []).append(f"{short(p)} {lit}")
    for i, stem in view.images.items():
        by_s.setdefault(view.iri[i], []).append(f"{short(image_pred)} <{image_ref(stem)}>")
    lines = [f"@prefix {p}: <{ns}> ." for p, ns in prefixes.items()]
    lines.append("")
    for s in sorted(by_s):
        pos = sorted(by_s[s])
        lines.append(f"{short(s)} " + " ;\n    ".join(pos) + " .")
    return "\n".join(lines) + "\n"


def _tsv(rows) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def generate(out: Path) -> dict:
    """Write every example file under ``out``; return the summary counts."""
    ss = np.random.SeedSequence(SEED)
    r_world, r_edges, r_views = (np.random.default_rng(s) for s in ss.spawn(3))
    ents = build_world(r_world)
    edges = build_edges(ents, r_edges)
    kg1, kg2, links = build_views(ents, edges, r_views)

    files: dict[str, bytes] = {}
    for i, stem in sorted(kg1.images.items()):
        files[f"images/kg1/{stem}.png"] = _png_bytes(render(ents[i]))
    for i, stem in sorted(kg2.images.items()):
        rng = np.random.default_rng([SEED, 7, i])     # per-entity stream: stable file by file
        files[f"images/kg2/{stem}.png"] = _png_bytes(render_kg2(ents[i], rng))

    kg1_ref = lambda stem: f"images/kg1/{stem}.png"                      # noqa: E731
    kg2_ref = lambda stem: f"{IMAGE_URL_BASE}images/kg2/{stem}.png"      # noqa: E731
    p1 = {"kg1": KG1_NS, "kg1o": KG1_ONT, "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
          "foaf": "http://xmlns.com/foaf/0.1/", "xsd": XSD}
    p2 = {"wd": KG2_NS, "wdt": KG2_PROP, "schema": SCHEMA, "xsd": XSD}
    files["kg1.ttl"] = _ttl(kg1, p1, FOAF_DEPICTION, kg1_ref).encode()
    files["kg2.ttl"] = _ttl(kg2, p2, SCHEMA + "image", kg2_ref).encode()
    # Relative references resolve against the folder of the file holding them:
    # kg1.ttl sits in examples/, the TSVs in examples/tsv/.
    kg1_tsv_ref = lambda stem: f"../images/kg1/{stem}.png"               # noqa: E731
    for v, ref in ((kg1, kg1_tsv_ref), (kg2, kg2_ref)):
        files[f"tsv/{v.key}_rel.tsv"] = _tsv(v.rel).encode()
        files[f"tsv/{v.key}_attr.tsv"] = _tsv((s, p, lex) for s, p, lex, _ in v.attr).encode()
        files[f"tsv/{v.key}_images.tsv"] = _tsv(
            (v.iri[i], ref(stem)) for i, stem in sorted(v.images.items(), key=lambda x: v.iri[x[0]])
        ).encode()
    pairs = sorted((kg1.iri[a], kg2.iri[b]) for a, b in links)
    files["links.tsv"] = _tsv(pairs).encode()
    files["links.nt"] = "".join(f"<{a}> <{OWL_SAMEAS}> <{b}> .\n" for a, b in pairs).encode()

    stats = {
        "seed": SEED,
        "world_entities": len(ents),
        "world_edges": len(edges),
        "links": len(pairs),
    }
    for v in (kg1, kg2):
        stats[v.key] = {
            "entities": len(v.iri),
            "dangling": len(v.iri) - len(pairs),
            "relation_triples": len(v.rel),
            "relations": len({p for _, p, _ in v.rel}),
            "attribute_triples": len(v.attr),
            "images": len(v.images),
        }
    files["stats.json"] = (json.dumps(stats, indent=2, sort_keys=True) + "\n").encode()
    _write_all(out, files)
    return stats


GENERATED_DIRS = ("images/kg1", "images/kg2", "tsv")


def _write_all(out: Path, files: dict[str, bytes]) -> None:
    """Replace the generated files under ``out`` (stale images are removed)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".make_example.", dir=out))
    try:
        for rel, data in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        for d in GENERATED_DIRS:
            if (out / d).exists():
                shutil.rmtree(out / d)
        for rel in sorted(files):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, out / rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output folder (default: the examples/ folder of this script)")
    args = ap.parse_args(argv)
    stats = generate(args.out)
    print(json.dumps(stats, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
