"""Synthetic graph pairs of any size, written as the TSV files a user would ingest (`kgalign synth`).

One latent graph is drawn first: ``L`` latent entities with heavy-tailed
(Chung-Lu, power-law) degree weights, typed relations with Zipf-skewed
frequencies, numeric attributes and two-word names. Each side keeps its own
entities (shared ones plus a ``dangling`` fraction that exists on that side
only), loses edges and attribute facts independently, gains random noise
edges, renames every relation and attribute (different IRIs per side, shuffled
ids), misspells names and perturbs numbers. The shared entities are the gold
links. Everything is vectorised numpy; only the final formatting of text lines
runs per row, in chunks, straight to the files.

Files written (``OUT/``): ``kg1.tsv``, ``kg2.tsv`` (head, relation, tail),
``kg1_attributes.tsv``, ``kg2_attributes.tsv`` (entity, attribute, value; the
name is a ``rdfs:label`` / ``schema:name`` row), ``links.tsv`` (kg1, kg2) and
``synth.json`` (settings, counts, hardness figures, the ingest command).
"""

from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kgalign.errors import InputError
from kgalign.fsutil import atomic_directory

KG1_NS, KG2_NS = "http://kg1.example/", "http://kg2.example/"
NAME_PREDICATES = ("http://www.w3.org/2000/01/rdf-schema#label", "http://schema.org/name")
CHUNK = 1 << 19  # rows formatted and written at once
_CONSONANTS = np.array(list("bcdfghjklmnprstvwz"))
_VOWELS = np.array(list("aeiou"))
_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)


@dataclass(frozen=True)
class SynthSettings:
    """Generator settings; every fraction is in [0, 1)."""

    entities: int  # per side
    seed: int = 0
    degree: float = 5.0  # relation triples per entity per side (on average)
    dangling: float = 0.1  # fraction of each side's entities without a counterpart
    relations: int = 200  # latent relation types
    attributes: int = 60  # latent numeric attribute keys
    attributes_per_entity: float = 2.0  # Poisson mean of latent numeric facts per entity
    edge_loss: float = 0.2  # each side drops each latent edge with this probability
    noise_edges: float = 0.05  # random edges added per side, as a fraction of its kept edges
    attribute_loss: float = 0.2  # each side drops each latent numeric fact with this probability
    numeric_noise: float = 0.02  # relative standard deviation of each side's copy of a number
    name_noise: float = 0.3  # probability that a side misspells a name (one edit)
    name_swap: float = 0.03  # probability that a side names an entity differently altogether
    name_missing: float = 0.05  # probability that a side has no name for an entity
    power: float = 0.7  # degree weight of the latent entity of rank k is k^-power (degree tail exponent 1 + 1/power)
    relation_skew: float = 1.1  # relation type of rank k has frequency ∝ k^-relation_skew


def check_settings(s: SynthSettings) -> None:
    """Refuse settings the generator cannot honour (one InputError naming the option)."""
    if not isinstance(s.entities, int) or s.entities < 10:
        raise InputError(f"--entities must be an integer of at least 10, got {s.entities}")
    if s.entities > 50_000_000:
        raise InputError(f"--entities must be at most 50000000, got {s.entities}")
    if not 0 <= s.seed < 2**63:
        raise InputError(f"--seed must be an integer in [0, 2^63), got {s.seed}")
    if not 0.0 < s.degree <= 1000.0:
        raise InputError(f"--degree must be a number in (0, 1000], got {s.degree}")
    if not 0.0 <= s.attributes_per_entity <= 100.0:
        raise InputError(f"--attributes-per-entity must be in [0, 100], got {s.attributes_per_entity}")
    for flag, value in (("--relations", s.relations), ("--attributes", s.attributes)):
        if not 1 <= value <= 1_000_000:
            raise InputError(f"{flag} must be an integer in [1, 1000000], got {value}")
    for flag, value in (
        ("--dangling", s.dangling),
        ("--edge-loss", s.edge_loss),
        ("--attribute-loss", s.attribute_loss),
        ("--name-noise", s.name_noise),
        ("--name-swap", s.name_swap),
        ("--name-missing", s.name_missing),
    ):
        if not 0.0 <= value < 1.0:
            raise InputError(f"{flag} must be a number in [0, 1), got {value}")
    if not 0.0 <= s.noise_edges <= 10.0:
        raise InputError(f"--noise-edges must be a number in [0, 10], got {s.noise_edges}")
    if not 0.0 <= s.numeric_noise <= 10.0:
        raise InputError(f"--numeric-noise must be a number in [0, 10], got {s.numeric_noise}")
    if not 0.0 <= s.power <= 3.0 or not 0.0 <= s.relation_skew <= 5.0:
        raise InputError(f"--power must be in [0, 3] and relation skew in [0, 5], got {s.power}, {s.relation_skew}")


# ---- the latent graph ------------------------------------------------------------------


def _sample(cdf: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Indices drawn with probabilities given by a cumulative distribution (float64, last value 1)."""
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def _cdf(weights: np.ndarray) -> np.ndarray:
    c = np.cumsum(weights, dtype=np.float64)
    return c / c[-1]


@dataclass
class Latent:
    """The latent pair: ``L`` entities, side membership, edges, facts and names (all latent ids)."""

    n_latent: int
    shared: int  # latent ids 0..shared-1 are on both sides
    weight: np.ndarray  # float64 (L,) degree weights
    heads: np.ndarray  # int64 (M,)
    rels: np.ndarray  # int64 (M,)
    tails: np.ndarray  # int64 (M,)
    fact_entity: np.ndarray  # int64 (F,)
    fact_key: np.ndarray  # int64 (F,)
    fact_value: np.ndarray  # float64 (F,)
    name_words: np.ndarray  # int64 (L, 2): word ids of first and last name
    words: list[str]  # the word vocabulary


def side_members(shared: int, n_per_side: int, n_latent: int, side: int) -> np.ndarray:
    """Latent ids of one side: the shared entities ``0..shared-1``, then that side's own ones."""
    own = np.arange(shared, n_per_side) if side == 1 else np.arange(n_per_side, n_latent)
    return np.concatenate([np.arange(shared), own])


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """``size`` capitalised words of 2-3 consonant-vowel syllables (repeats possible, as in real names)."""
    syll = np.char.add(_CONSONANTS[rng.integers(0, len(_CONSONANTS), (size, 3))], _VOWELS[rng.integers(0, len(_VOWELS), (size, 3))])
    three = rng.random(size) < 0.5
    words = np.char.add(np.char.add(syll[:, 0], syll[:, 1]), np.where(three, syll[:, 2], ""))
    return [w.capitalize() for w in words.tolist()]


def make_latent(s: SynthSettings, rng: np.random.Generator) -> Latent:
    n = s.entities
    n_dangling = int(round(s.dangling * n))
    shared = n - n_dangling
    n_latent = n + n_dangling
    # power-law weights on a random order, so that shared and one-sided entities have the same degree law
    weight = (rng.permutation(n_latent) + 1.0) ** -s.power
    # size the latent edge list so that each side ends with about degree * n triples
    total = weight.sum()
    p_both = np.mean([(weight[side_members(shared, n, n_latent, k)].sum() / total) ** 2 for k in (1, 2)])
    m = int(math.ceil(s.degree * n / (1.0 + s.noise_edges) / ((1.0 - s.edge_loss) * p_both)))
    cdf = _cdf(weight)
    heads, tails = _sample(cdf, rng, m), _sample(cdf, rng, m)
    pair = np.unique(heads[heads != tails] * n_latent + tails[heads != tails])  # no self-loops, no repeated pair
    heads, tails = pair // n_latent, pair % n_latent
    rels = _sample(_cdf((np.arange(s.relations) + 1.0) ** -s.relation_skew), rng, len(pair))
    # numeric facts: Poisson many per entity, Zipf-skewed keys, a per-key scale over four decades
    counts = rng.poisson(s.attributes_per_entity, n_latent)
    fe = np.repeat(np.arange(n_latent), counts)
    fk = _sample(_cdf((np.arange(s.attributes) + 1.0) ** -1.0), rng, len(fe))
    key = np.unique(fe * s.attributes + fk)
    fe, fk = key // s.attributes, key % s.attributes
    scale = 10.0 ** rng.uniform(0, 4, s.attributes)
    value = scale[fk] * rng.lognormal(0.0, 1.0, len(fe))
    integer_key = np.arange(s.attributes) % 3 == 0  # a third of the keys hold whole numbers (counts, years)
    value = np.where(integer_key[fk], np.round(value), value)
    # names: two words from a Zipf-skewed vocabulary, so that some names are shared by several entities
    n_words = max(2000, n_latent // 2)
    words = _vocabulary(rng, n_words)
    name_words = _sample(_cdf((np.arange(n_words) + 1.0) ** -0.6), rng, 2 * n_latent).reshape(n_latent, 2)
    return Latent(n_latent, shared, weight, heads, rels, tails, fe, fk, value, name_words, words)


# ---- one side --------------------------------------------------------------------------


@dataclass
class Side:
    """One derived graph, in latent ids, with its renaming."""

    members: np.ndarray  # latent ids of this side's entities
    local: np.ndarray  # int64 (L,): local id of each latent entity on this side (-1: not on it)
    heads: np.ndarray
    rels: np.ndarray
    tails: np.ndarray
    fact_entity: np.ndarray
    fact_key: np.ndarray
    fact_value: np.ndarray
    name_entity: np.ndarray  # latent ids with a name on this side
    names: list[str]
    rel_name: np.ndarray  # int64 (R,): renamed relation id per latent relation
    attr_name: np.ndarray  # int64 (A,)


def _misspell(names: list[str], rng: np.random.Generator, p: float) -> list[str]:
    """Each name gets, with probability ``p``, one edit: substitution, deletion, insertion or swap."""
    if not names:
        return names
    raw = np.array([t.encode() for t in names])
    width = raw.dtype.itemsize + 2  # room for an insertion, and a last column that stays 0
    mat = np.zeros((len(raw), width), np.uint8)
    mat[:, : width - 2] = raw.view(np.uint8).reshape(len(raw), width - 2)
    length = (mat != 0).sum(1)
    hit = np.flatnonzero(rng.random(len(raw)) < p)
    op = rng.integers(0, 4, len(hit))
    pos = (rng.random(len(hit)) * length[hit]).astype(np.int64)
    col = np.arange(width)[None, :]
    rows = mat[hit]
    letter = _LETTERS[rng.integers(0, 26, len(hit))]
    # deletion: shift left from pos; insertion: shift right from pos and write a letter; swap: exchange pos, pos+1
    src = np.where(op[:, None] == 1, col + (col >= pos[:, None]), np.where(op[:, None] == 2, col - (col > pos[:, None]), col))
    swap = (op == 3) & (pos + 1 < length[hit])
    src[swap, pos[swap]] += 1
    src[swap, pos[swap] + 1] -= 1
    rows = np.take_along_axis(rows, np.clip(src, 0, width - 1), 1)
    put = (op == 0) | (op == 2)
    rows[put, pos[put]] = letter[put]
    mat[hit] = rows
    return [b.decode() for b in mat.view(f"S{width}").ravel().tolist()]


def make_side(lat: Latent, s: SynthSettings, side: int, rng: np.random.Generator) -> Side:
    members = side_members(lat.shared, s.entities, lat.n_latent, side)
    on = np.zeros(lat.n_latent, bool)
    on[members] = True
    keep = on[lat.heads] & on[lat.tails] & (rng.random(len(lat.heads)) >= s.edge_loss)
    h, r, t = lat.heads[keep], lat.rels[keep], lat.tails[keep]
    n_noise = int(round(s.noise_edges * len(h)))
    cdf = _cdf(lat.weight[members])
    nh, nt = members[_sample(cdf, rng, n_noise)], members[_sample(cdf, rng, n_noise)]
    ok = nh != nt
    nr = _sample(_cdf((np.arange(s.relations) + 1.0) ** -s.relation_skew), rng, n_noise)
    h, r, t = np.concatenate([h, nh[ok]]), np.concatenate([r, nr[ok]]), np.concatenate([t, nt[ok]])
    order = rng.permutation(len(h))  # file order differs between the sides (ingest numbers by first appearance)
    h, r, t = h[order], r[order], t[order]
    fkeep = on[lat.fact_entity] & (rng.random(len(lat.fact_entity)) >= s.attribute_loss)
    fe, fk = lat.fact_entity[fkeep], lat.fact_key[fkeep]
    fv = lat.fact_value[fkeep] * (1.0 + s.numeric_noise * rng.standard_normal(int(fkeep.sum())))
    integer_key = np.arange(s.attributes) % 3 == 0
    fv = np.where(integer_key[fk], np.round(fv), fv)
    forder = rng.permutation(len(fe))
    fe, fk, fv = fe[forder], fk[forder], fv[forder]
    named = members[rng.random(len(members)) >= s.name_missing]
    words = lat.name_words[named].copy()
    swap = rng.random(len(named)) < s.name_swap
    words[swap] = rng.integers(0, len(lat.words), (int(swap.sum()), 2))
    names = [f"{lat.words[a]} {lat.words[b]}" for a, b in words.tolist()]
    names = _misspell(names, rng, s.name_noise)
    local = np.full(lat.n_latent, -1, np.int64)
    local[members] = rng.permutation(len(members))
    return Side(
        members,
        local,
        h,
        r,
        t,
        fe,
        fk,
        fv,
        named,
        names,
        rng.permutation(s.relations),
        rng.permutation(s.attributes),
    )


# ---- writing ---------------------------------------------------------------------------


def _iri_prefixes(side: int) -> tuple[str, str, str]:
    """(entity, relation, attribute) IRI prefixes: both namespace and naming scheme differ per side."""
    if side == 1:
        return KG1_NS + "resource/E", KG1_NS + "ontology/rel", KG1_NS + "ontology/attr"
    return KG2_NS + "entity/Q", KG2_NS + "prop/P", KG2_NS + "prop/A"


def _write_rows(path: Path, columns: list, fmt, mode: str = "w") -> int:
    """Write ``fmt(*row)`` for each row of the parallel ``columns``, CHUNK rows at a time."""
    n = len(columns[0]) if columns else 0
    with open(path, mode, encoding="utf-8", newline="\n") as f:
        for start in range(0, n, CHUNK):
            chunk = [c[start : start + CHUNK] for c in columns]
            chunk = [c.tolist() if isinstance(c, np.ndarray) else c for c in chunk]
            f.write("".join(fmt(*row) for row in zip(*chunk, strict=True)))
    return n


def write_side(side: Side, s: SynthSettings, k: int, directory: Path) -> dict:
    ent, rel, att = _iri_prefixes(k)
    rel_iri = [f"{rel}{i}" for i in side.rel_name.tolist()]
    att_iri = [f"{att}{i}" for i in side.attr_name.tolist()]
    n_rel = _write_rows(
        directory / f"kg{k}.tsv",
        [side.local[side.heads], side.rels, side.local[side.tails]],
        lambda h, r, t: f"{ent}{h}\t{rel_iri[r]}\t{ent}{t}\n",
    )
    label = NAME_PREDICATES[k - 1]
    n_num = _write_rows(
        directory / f"kg{k}_attributes.tsv",
        [side.local[side.fact_entity], side.fact_key, side.fact_value],
        lambda e, a, v: f"{ent}{e}\t{att_iri[a]}\t{v:.6g}\n",
    )
    _write_rows(
        directory / f"kg{k}_attributes.tsv", [side.local[side.name_entity], side.names], lambda e, t: f"{ent}{e}\t{label}\t{t}\n", "a"
    )
    return {"relation_triples": n_rel, "numeric_triples": n_num, "names": len(side.names)}


def _present(side: Side, n_latent: int) -> np.ndarray:
    """Latent entities that appear in some row of this side's files (only those exist after ingest)."""
    seen = np.zeros(n_latent, bool)
    for ids in (side.heads, side.tails, side.fact_entity, side.name_entity):
        seen[ids] = True
    return seen


# ---- hardness ---------------------------------------------------------------------------


def _neighbourhood_hash(side: Side, n_latent: int, salt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per latent entity: (number of distinct neighbours, order-free hash of their latent ids)."""
    a = np.concatenate([side.heads, side.tails])
    b = np.concatenate([side.tails, side.heads])
    pair = np.unique(a * n_latent + b)
    a, b = pair // n_latent, pair % n_latent
    count = np.bincount(a, minlength=n_latent)
    h = np.zeros(n_latent, np.uint64)
    np.add.at(h, a, salt[b])  # wraps modulo 2^64: a set hash
    return count, h


def hardness(lat: Latent, sides: tuple[Side, Side], gold: np.ndarray, rng: np.random.Generator) -> dict:
    """How hard the pair is: a name-only exact-match baseline and structural ambiguity, over the gold links."""
    s1, s2 = sides
    # exact name match: Hits@1 of ranking kg2 entities by "same name", ties broken at random (expected value)
    name1 = np.full(lat.n_latent, -1, np.int64)
    name2 = np.full(lat.n_latent, -1, np.int64)
    vocab, ids = np.unique(np.array(s1.names + s2.names, dtype=object).astype(str), return_inverse=True)
    name1[s1.name_entity] = ids[: len(s1.names)]
    name2[s2.name_entity] = ids[len(s1.names) :]
    per_name2 = np.bincount(ids[len(s1.names) :], minlength=len(vocab))
    match = (name1[gold] >= 0) & (name1[gold] == name2[gold])
    hits_name = float(np.where(match, 1.0 / np.maximum(per_name2[np.maximum(name1[gold], 0)], 1), 0.0).mean()) if len(gold) else 0.0
    salt = rng.integers(0, 2**63, lat.n_latent, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    c1, h1 = _neighbourhood_hash(s1, lat.n_latent, salt)
    c2, h2 = _neighbourhood_hash(s2, lat.n_latent, salt)
    # identical (non-empty) neighbourhoods in latent ids: every neighbour has its gold counterpart as a neighbour, and no other
    same = (c1[gold] > 0) & (c1[gold] == c2[gold]) & (h1[gold] == h2[gold])
    deg1 = np.bincount(np.concatenate([s1.heads, s1.tails]), minlength=lat.n_latent)[s1.members]
    top = np.sort(deg1)[::-1]
    return {
        "name_exact_match_hits@1": round(hits_name, 4),
        "gold_same_name_fraction": round(float(match.mean()) if len(gold) else 0.0, 4),
        "gold_identical_neighbourhood_fraction": round(float(same.mean()) if len(gold) else 0.0, 4),
        "gold_isolated_on_a_side_fraction": round(float(((c1[gold] == 0) | (c2[gold] == 0)).mean()) if len(gold) else 0.0, 4),
        "kg1_degree": {
            "mean": round(float(deg1.mean()), 3),
            "median": float(np.median(deg1)),
            "p99": float(np.percentile(deg1, 99)),
            "max": int(top[0]) if len(top) else 0,
            "top1pct_share_of_endpoints": round(float(top[: max(1, len(top) // 100)].sum() / max(1, top.sum())), 4),
        },
    }


# ---- entry point ------------------------------------------------------------------------


def ingest_command(out: Path, dataset: str = "DATASET") -> str:
    q = shlex.quote
    parts = ["kgalign ingest -o", q(dataset)]
    for k in (1, 2):
        parts += [f"--kg{k}", q(str(out / f"kg{k}.tsv")), f"--kg{k}-attributes", q(str(out / f"kg{k}_attributes.tsv"))]
    parts += ["--links", q(str(out / "links.tsv"))]
    return " ".join(parts)


def generate(s: SynthSettings, out_dir: str | os.PathLike, overwrite: bool = False) -> dict:
    """Generate the pair described by ``s`` into ``out_dir`` (atomically); return its summary (also ``synth.json``)."""
    check_settings(s)
    out = Path(out_dir)
    rng = np.random.default_rng(s.seed)
    lat = make_latent(s, rng)
    sides = (make_side(lat, s, 1, rng), make_side(lat, s, 2, rng))
    p1, p2 = _present(sides[0], lat.n_latent), _present(sides[1], lat.n_latent)
    gold = np.flatnonzero(p1[: lat.shared] & p2[: lat.shared])
    gold = gold[rng.permutation(len(gold))]
    summary: dict = {"generator": "kgalign.data.synthgen", "settings": asdict(s)}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        files = {f"kg{k}": write_side(sides[k - 1], s, k, tmp) for k in (1, 2)}
        e1, e2 = _iri_prefixes(1)[0], _iri_prefixes(2)[0]
        _write_rows(tmp / "links.tsv", [sides[0].local[gold], sides[1].local[gold]], lambda a, b: f"{e1}{a}\t{e2}{b}\n")
        for k, p in ((1, p1), (2, p2)):
            n_k = int(p.sum())
            files[f"kg{k}"]["entities"] = n_k
            files[f"kg{k}"]["dangling_fraction"] = round(1.0 - len(gold) / max(1, n_k), 4)
        summary["counts"] = {**files, "links": int(len(gold)), "latent_entities": lat.n_latent, "latent_edges": int(len(lat.heads))}
        summary["hardness"] = hardness(lat, sides, gold, rng)
        summary["ingest"] = ingest_command(out.resolve())
        (tmp / "synth.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary
