"""Importers for published benchmark layouts.

- ``mclea``: the JAPE/MCLEA/MEAformer id layout (``ent_ids_1/2``, ``triples_1/2``,
  ``ill_ent_ids`` or ``ref_ent_ids``, ``rel_ids*``, ``training_attrs_1/2``) and
  PathFusion's ``attr`` (values kept) and ``sup_ent_ids``/``dev_ent_ids`` split.
- ``openea``: ``rel_triples_1/2``, ``attr_triples_1/2``, ``ent_links``, ``721_5fold/K``.
- ``mmkg``: MMKB raw files ``X/X_{EntityTriples,NumericalTriples,ImageIndex,SameAsLink}.txt``.
- ``openke``: one graph as ``entity2id.txt``, ``relation2id.txt``, ``{train,valid,test}2id.txt``.

Each importer adds to the two GraphBuilders and to an :class:`Intake`
(links, split files, sources for the manifest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kgalign.data.builder import GraphBuilder
from kgalign.data.sources import Problems, Source
from kgalign.data.terms import plain_term
from kgalign.data.tsv import read_attribute_triples, read_pairs, read_relation_triples, tsv_rows
from kgalign.errors import InputError, MissingResourceError

LAYOUTS = ("mclea", "openea", "mmkg")
YAGO_RESOURCE = "http://yago-knowledge.org/resource/"

Link = tuple  # (kg1 term, kg2 term, file label, line)


@dataclass
class Intake:
    """What readers collect besides graph content."""

    links: list = field(default_factory=list)  # [Link]
    split_files: dict = field(default_factory=dict)  # split name -> [Link]
    sources: list = field(default_factory=list)  # manifest entries
    notes: dict = field(default_factory=dict)  # layout-specific manifest info

    def used(self, src: Source, role: str, kg: int | None, fmt: str) -> None:
        src.info["format"] = fmt
        src.finish()
        self.sources.append(src.manifest_entry(role, kg))


def _first(d: Path, *names: str) -> Path | None:
    for n in names:
        if (d / n).is_file():
            return d / n
    return None


def _require_dir(path: Path, layout: str) -> None:
    if not path.is_dir():
        raise MissingResourceError(f"{path}: no such directory (for --layout {layout})")


# ---- MCLEA / MEAformer / PathFusion id layout ---------------------------------


def _read_ids(path: Path, problems: Problems, intake: Intake, role: str, kg: int | None) -> dict[int, str]:
    src = Source(str(path))
    out: dict[int, str] = {}
    for lineno, f in read_pairs(src, problems, " (id, term)"):
        try:
            out[int(f[0])] = plain_term(f[1].strip())
        except ValueError:
            problems.bad(f"id {f[0]!r} is not an integer", src.label, lineno)
    intake.used(src, role, kg, "tsv")
    return out


def _id_pairs(path: Path, problems: Problems, what: str):
    src = Source(str(path))
    for lineno, f in tsv_rows(src, problems, 2, None, what):
        try:
            yield src, lineno, [int(x) for x in f]
        except ValueError:
            problems.bad(f"expected integer ids, found {f!r}", src.label, lineno)


def import_mclea(path: Path, g1: GraphBuilder, g2: GraphBuilder, problems: Problems, intake: Intake) -> None:
    _require_dir(path, "mclea")
    graphs = {1: g1, 2: g2}
    ids: dict[int, dict[int, str]] = {}
    for kg in (1, 2):
        p = _first(path, f"ent_ids_{kg}")
        if p is None:
            raise MissingResourceError(f"{path}: no ent_ids_{kg} (not an MCLEA/MEAformer id layout?)")
        ids[kg] = _read_ids(p, problems, intake, "entities", kg)
        for term in ids[kg].values():
            graphs[kg].entity(term)
    owner = {i: 1 for i in ids[1]}
    owner.update({i: 2 for i in ids[2]})
    shared_rel = _first(path, "rel_ids")
    rel_shared = _read_ids(shared_rel, problems, intake, "relations", None) if shared_rel else None
    for kg in (1, 2):
        _mclea_triples(path, kg, graphs[kg], ids[kg], rel_shared, problems, intake)
    # gold links and the split files some releases ship
    lp = _first(path, "ill_ent_ids", "ref_ent_ids")
    if lp is not None:
        intake.links.extend(_id_links(lp, ids, owner, problems, intake, "links"))
    for name, split in (("sup_ent_ids", "train"), ("dev_ent_ids", "test")):
        sp = _first(path, name)
        if sp is not None:
            intake.split_files[split] = _id_links(sp, ids, owner, problems, intake, f"split:{split}")
    for kg in (1, 2):
        ap = _first(path, f"training_attrs_{kg}")
        if ap is not None:
            _training_attrs(ap, graphs[kg], kg, problems, intake)
    pf = _first(path, "attr")
    if pf is not None:
        _pathfusion_attr(pf, graphs, ids, owner, problems, intake)


def _mclea_triples(path: Path, kg: int, g: GraphBuilder, eids: dict, rel_shared, problems: Problems, intake: Intake) -> None:
    """``triples_KG`` of an id layout, with its relation vocabulary (per graph, else shared)."""
    relp = _first(path, f"rel_ids_{kg}", f"rel_ids{kg}")
    rels = _read_ids(relp, problems, intake, "relations", kg) if relp else rel_shared
    if relp:  # a per-graph relation list is that graph's vocabulary, used or not
        for i in sorted(rels):
            g.relation(rels[i])
    tp = _first(path, f"triples_{kg}")
    if tp is None:
        intake.notes.setdefault("missing_files", []).append(f"triples_{kg}")
        return
    src = None
    for src, lineno, (h, r, t, *_) in _triples(tp, problems):
        if h not in eids or t not in eids:
            problems.bad(f"entity id {h if h not in eids else t} is not in ent_ids_{kg}", src.label, lineno)
            continue
        if rels is not None and r not in rels:
            problems.bad(f"relation id {r} is not in the relation id file", src.label, lineno)
            continue
        g.add_relation(eids[h], rels[r] if rels is not None else str(r), eids[t])
    if src is not None:
        intake.used(src, "relation_triples", kg, "tsv")


def _triples(path: Path, problems: Problems):
    src = Source(str(path))
    for lineno, f in tsv_rows(src, problems, 3, 3, " (head id, relation id, tail id)"):
        try:
            yield src, lineno, [int(x) for x in f]
        except ValueError:
            problems.bad(f"expected integer ids, found {f!r}", src.label, lineno)


def _id_links(path: Path, ids, owner, problems, intake, role) -> list:
    out = []
    src = None
    for src, lineno, vals in _id_pairs(path, problems, " (kg1 id, kg2 id)"):
        a, b = vals[0], vals[1]
        if owner.get(a) == 1 and owner.get(b) == 2:
            out.append((ids[1][a], ids[2][b], src.label, lineno))
        elif owner.get(a) == 2 and owner.get(b) == 1:
            out.append((ids[1][b], ids[2][a], src.label, lineno))
        else:
            problems.bad(f"link ({a}, {b}) does not join an ent_ids_1 id and an ent_ids_2 id", src.label, lineno)
    if src is not None:
        intake.used(src, role, None, "tsv")
    return out


def _training_attrs(path: Path, g: GraphBuilder, kg: int, problems: Problems, intake: Intake) -> None:
    """``entity \\t attr \\t attr ...``: keys only (values were dropped upstream)."""
    src = Source(str(path))
    unknown = 0
    for _lineno, f in tsv_rows(src, problems, 1, None, " (entity, attributes...)"):
        ent = plain_term(f[0].strip())
        if ent not in g.ent:
            unknown += 1
            continue
        for key in f[1:]:
            if key.strip():
                g.add_attribute(ent, plain_term(key.strip()), "")
    if unknown:
        problems.warn(f"{src.label}: {unknown} lines name entities not in ent_ids_{kg}; skipped")
    intake.used(src, "attribute_keys", kg, "tsv")


def _pathfusion_attr(path: Path, graphs, ids, owner, problems: Problems, intake: Intake) -> None:
    """PathFusion ``attr``: line i = entity id i; ``attr|||value[|||type]`` joined by ``^^^``."""
    src = Source(str(path))
    from kgalign.data.sources import read_lines

    fh = src.open()
    try:
        for lineno, text in read_lines(src, fh, problems):
            eid = lineno - 1
            if not text.strip():
                continue
            kg = owner.get(eid)
            if kg is None:
                problems.bad(f"line {lineno} stands for entity id {eid}, which is in neither ent_ids file", src.label, lineno)
                continue
            ent = ids[kg][eid]
            for entry in text.split("^^^"):
                parts = entry.split("|||")
                if len(parts) not in (2, 3) or not parts[0]:
                    problems.bad(f"expected attr|||value[|||type], found {entry[:60]!r}", src.label, lineno)
                    continue
                dtype = parts[2] if len(parts) == 3 else ""
                graphs[kg].add_attribute(ent, parts[0], parts[1], dtype, "", plain_numbers=True)
    finally:
        fh.close()
    intake.used(src, "attribute_triples", None, "pathfusion-attr")


# ---- OpenEA -----------------------------------------------------------------


def import_openea(path: Path, g1: GraphBuilder, g2: GraphBuilder, problems: Problems, intake: Intake, fold: int = 1) -> None:
    _require_dir(path, "openea")
    graphs = {1: g1, 2: g2}
    for kg in (1, 2):
        rp = path / f"rel_triples_{kg}"
        if not rp.is_file():
            raise MissingResourceError(f"{path}: no rel_triples_{kg} (not an OpenEA layout?)")
        src = Source(str(rp))
        for h, r, t in read_relation_triples(src, problems):
            graphs[kg].add_relation(h, r, t)
        intake.used(src, "relation_triples", kg, "tsv")
        ap = path / f"attr_triples_{kg}"
        if ap.is_file():
            src = Source(str(ap))
            for e, a, v, dt, lang in read_attribute_triples(src, problems):
                graphs[kg].add_attribute(e, a, v, dt, lang, plain_numbers=True)
            intake.used(src, "attribute_triples", kg, "tsv")
    lp = path / "ent_links"
    if lp.is_file():
        intake.links.extend(read_link_tsv(Source(str(lp)), problems, intake, "links"))
    fold_dir = path / "721_5fold" / str(fold)
    if fold_dir.is_dir():
        for split in ("train", "valid", "test"):
            sp = fold_dir / f"{split}_links"
            if sp.is_file():
                intake.split_files[split] = read_link_tsv(Source(str(sp)), problems, intake, f"split:{split}")
        intake.notes["openea_fold"] = fold


def read_link_tsv(src: Source, problems: Problems, intake: Intake, role: str) -> list:
    out = [
        (plain_term(f[0].strip()), plain_term(f[1].strip()), src.label, lineno)
        for lineno, f in read_pairs(src, problems, " (kg1 entity, kg2 entity)", max_cols=None)
    ]
    intake.used(src, role, None, "tsv")
    return out


# ---- MMKG (MMKB raw files) ----------------------------------------------------


def _mmkg_term(token: str, kg_name: str) -> str:
    term = plain_term(token)
    # the older YAGO15K numeric file writes <Doncaster> for yago:Doncaster
    if kg_name.upper().startswith("YAGO") and "://" not in term and not term.startswith("/m/"):
        return YAGO_RESOURCE + term
    return term


def _spaced_rows(src: Source, problems: Problems):
    """``s p o .`` lines split on whitespace (MMKB writes bare mids, so not N-Triples)."""
    for lineno, f in tsv_rows(src, problems, 1, None, ""):
        tokens = " ".join(f).split()
        if tokens and tokens[-1] == ".":
            tokens = tokens[:-1]
        if len(tokens) != 3:
            problems.bad(f"expected 'subject predicate object .', found {len(tokens)} terms", src.label, lineno)
            continue
        yield lineno, tokens


def _image_files(image_dir: Path) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(image_dir):
        for name in files:
            out.setdefault(Path(name).stem, os.path.abspath(os.path.join(root, name)))
    return out


def import_mmkg(
    path: Path,
    g1: GraphBuilder,
    g2: GraphBuilder,
    problems: Problems,
    intake: Intake,
    pair: str | None = None,
    image_dir: Path | None = None,
) -> None:
    _require_dir(path, "mmkg")
    if pair is None:
        same = sorted(path.glob("*/*_SameAsLink.txt"))
        if len(same) != 1:
            found = ", ".join(p.parent.name for p in same) or "none"
            raise InputError(f"name the graph pair with --mmkg-pair KG1-KG2 (e.g. DB15K-FB15K); SameAsLink files for: {found}", str(path))
        pair = f"{same[0].parent.name}-FB15K"
    names = pair.split("-")
    if len(names) != 2:
        raise InputError(f"--mmkg-pair must look like DB15K-FB15K, got {pair!r}")
    graphs = {1: g1, 2: g2}
    images = _image_files(image_dir) if image_dir else None
    coverage = {}
    for kg, name in ((1, names[0]), (2, names[1])):
        d = path / name
        if not d.is_dir():
            raise MissingResourceError(f"{d}: no such directory (graph {name} of --mmkg-pair {pair})")
        g = graphs[kg]
        et = d / f"{name}_EntityTriples.txt"
        if et.is_file():
            src = Source(str(et))
            for _, (s, p, o) in _spaced_rows(src, problems):
                g.add_relation(_mmkg_term(s, name), plain_term(p), _mmkg_term(o, name))
            intake.used(src, "relation_triples", kg, "mmkg")
        nt = d / f"{name}_NumericalTriples.txt"
        if nt.is_file():
            src = Source(str(nt))
            for _, f in tsv_rows(src, problems, 3, 3, " (entity, attribute, number)"):
                g.add_attribute(_mmkg_term(f[0].strip(), name), plain_term(f[1].strip()), f[2].strip(), "", "", plain_numbers=True)
            intake.used(src, "attribute_triples", kg, "mmkg")
        ii = d / f"{name}_ImageIndex.txt"
        if ii.is_file():
            coverage[f"kg{kg}"] = _mmkg_image_index(ii, name, kg, g, images, image_dir, problems, intake)
    if coverage:
        intake.notes["mmkg_image_index"] = coverage
    # SameAsLink: "fb_mid <SameAs> <other_uri> ." lives in the non-FB graph's folder
    link_file = next((path / n / f"{n}_SameAsLink.txt" for n in names if (path / n / f"{n}_SameAsLink.txt").is_file()), None)
    if link_file is None:
        raise MissingResourceError(f"{path}: no SameAsLink file for {pair}")
    other = link_file.parent.name
    src = Source(str(link_file))
    for lineno, (s, _, o) in _spaced_rows(src, problems):
        # subject is the FB15K mid, object the entity of the graph whose folder holds the file
        if names[0] == other:
            t1, t2 = _mmkg_term(o, names[0]), _mmkg_term(s, names[1])
        else:
            t1, t2 = _mmkg_term(s, names[0]), _mmkg_term(o, names[1])
        g1.entity(t1)
        g2.entity(t2)
        intake.links.append((t1, t2, src.label, lineno))
    intake.used(src, "links", None, "mmkg")


def _mmkg_image_index(ii: Path, name: str, kg: int, g: GraphBuilder, images, image_dir, problems: Problems, intake: Intake) -> dict:
    """``NAME_ImageIndex.txt``: entity -> image id, resolved to files of ``image_dir`` when given."""
    src = Source(str(ii))
    ents, resolved, missing = set(), 0, 0
    for _, f in read_pairs(src, problems, " (entity, image id)"):
        ent = _mmkg_term(f[0].strip(), name)
        g.entity(ent)
        ents.add(ent)
        if images is not None:
            file = images.get(f[1].strip())
            if file is None:
                missing += 1
            else:
                g.add_image(ent, file)
                resolved += 1
    intake.used(src, "image_index", kg, "mmkg")
    return {
        "image_index": src.label,
        "entities_with_image_id": len(ents),
        "image_ids_resolved": resolved,
        "image_ids_without_file": missing,
        "image_dir": os.path.abspath(image_dir) if image_dir else None,
    }


# ---- OpenKE (one graph) -----------------------------------------------------------


def import_openke(path: Path, g: GraphBuilder, kg: int, problems: Problems, intake: Intake) -> None:
    """entity2id.txt / relation2id.txt (count line, then ``term id``), ``*2id.txt`` triples as ``h t r``."""
    _require_dir(path, "openke")

    def vocab(p: Path) -> dict[int, str]:
        src = Source(str(p))
        out: dict[int, str] = {}
        for lineno, f in tsv_rows(src, problems, 1, None, ""):
            tokens = "\t".join(f).replace("\t", " ").split()
            if lineno == 1 and len(tokens) == 1:
                continue  # the count line
            if len(tokens) != 2:
                problems.bad(f"expected 'term id', found {len(tokens)} fields", src.label, lineno)
                continue
            try:
                out[int(tokens[1])] = plain_term(tokens[0])
            except ValueError:
                problems.bad(f"id {tokens[1]!r} is not an integer", src.label, lineno)
        intake.used(src, "entities" if "entity" in p.name else "relations", kg, "openke")
        return out

    ep, rp = path / "entity2id.txt", path / "relation2id.txt"
    if not ep.is_file() or not rp.is_file():
        raise MissingResourceError(f"{path}: needs entity2id.txt and relation2id.txt (OpenKE layout)")
    ents, rels = vocab(ep), vocab(rp)
    for i in sorted(ents):
        g.entity(ents[i])
    found = False
    for name in ("train2id.txt", "valid2id.txt", "test2id.txt"):
        tp = path / name
        if not tp.is_file():
            continue
        found = True
        src = Source(str(tp))
        for lineno, f in tsv_rows(src, problems, 1, None, ""):
            tokens = " ".join(f).split()
            if lineno == 1 and len(tokens) == 1:
                continue
            try:
                h, t, r = (int(x) for x in tokens)
            except ValueError:
                problems.bad(f"expected 'head_id tail_id relation_id', found {' '.join(tokens)[:60]!r}", src.label, lineno)
                continue
            if h not in ents or t not in ents or r not in rels:
                problems.bad(f"id not in entity2id/relation2id: {h} {t} {r}", src.label, lineno)
                continue
            g.add_relation(ents[h], rels[r], ents[t])
        intake.used(src, "relation_triples", kg, "openke")
    if not found:
        raise MissingResourceError(f"{path}: no train2id.txt, valid2id.txt or test2id.txt")
