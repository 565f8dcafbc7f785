"""Cut the small test excerpts in tests/data/ from the shared benchmark files.

    python tests/data/make_excerpts.py [SHARED_DATA_DIR]   (default: <repo>/../shared/data)

Lines are copied verbatim except where an id layout needs its ids renumbered to
stay contiguous (noted per folder in tests/data/README.md). Deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def lines(p: Path) -> list[str]:
    return (
        p.read_text(encoding="utf-8").split("\n")[:-1]
        if p.read_text(encoding="utf-8").endswith("\n")
        else p.read_text(encoding="utf-8").split("\n")
    )


def write(p: Path, rows: list[str]) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(r + "\n" for r in rows), encoding="utf-8")


def pathfusion(shared: Path) -> dict:
    """mclea/: PathFusion DB15K-FB15K, 60 triples_1 lines and everything they touch; ids renumbered."""
    src = shared / "mmkg_pathfusion" / "DB15K-FB15K"
    out = HERE / "mclea_db15k_fb15k"
    triples = [l.split("\t") for l in lines(src / "triples_1")[:60]]
    e1 = sorted({int(t[0]) for t in triples} | {int(t[2]) for t in triples})
    refs = [tuple(map(int, l.split("\t"))) for l in lines(src / "ref_ent_ids")]
    refs = [r for r in refs if r[0] in set(e1)]
    e2 = sorted({r[1] for r in refs})
    ent1 = dict(l.split("\t") for l in lines(src / "ent_ids_1"))
    ent2 = dict(l.split("\t") for l in lines(src / "ent_ids_2"))
    rel1 = dict(l.split("\t") for l in lines(src / "rel_ids1"))
    rel2 = dict(l.split("\t") for l in lines(src / "rel_ids2"))
    new = {old: i for i, old in enumerate(e1 + e2)}  # KG1 first, contiguous
    rels = sorted({int(t[1]) for t in triples})
    newr = {old: i for i, old in enumerate(rels)}
    r2 = sorted(map(int, rel2))[:15]
    write(out / "ent_ids_1", [f"{new[e]}\t{ent1[str(e)]}" for e in e1])
    write(out / "ent_ids_2", [f"{new[e]}\t{ent2[str(e)]}" for e in e2])
    write(out / "rel_ids1", [f"{newr[r]}\t{rel1[str(r)]}" for r in rels])
    write(out / "rel_ids2", [f"{len(rels) + i}\t{rel2[str(r)]}" for i, r in enumerate(r2)])
    write(out / "triples_1", [f"{new[int(h)]}\t{newr[int(r)]}\t{new[int(t)]}" for h, r, t in triples])
    write(out / "ref_ent_ids", [f"{new[a]}\t{new[b]}" for a, b in refs])
    sup = {tuple(map(int, l.split("\t"))) for l in lines(src / "sup_ent_ids")}
    write(out / "sup_ent_ids", [f"{new[a]}\t{new[b]}" for a, b in refs if (a, b) in sup])
    write(out / "dev_ent_ids", [f"{new[a]}\t{new[b]}" for a, b in refs if (a, b) not in sup])
    attr = lines(src / "attr")
    write(out / "attr", [attr[e] if e < len(attr) else "" for e in e1 + e2])
    return {"kg1": [ent1[str(e)] for e in e1], "kg2": [ent2[str(e)] for e in e2], "links": [(ent1[str(a)], ent2[str(b)]) for a, b in refs]}


def mmkg(shared: Path, pf: dict) -> None:
    """mmkg/: MMKB raw files, lines about the entities of the PathFusion excerpt, plus YAGO15K heads."""
    src, out = shared / "mmkg", HERE / "mmkg"
    kg1 = {e.strip("<>") for e in pf["kg1"]}
    kg2 = set(pf["kg2"])
    links = {(a.strip("<>"), b) for a, b in pf["links"]}
    write(
        out / "DB15K" / "DB15K_SameAsLink.txt",
        [l for l in lines(src / "DB15K" / "DB15K_SameAsLink.txt") if (l.split()[2].strip("<>"), l.split()[0]) in links],
    )
    write(
        out / "DB15K" / "DB15K_ImageIndex.txt",
        [l for l in lines(src / "DB15K" / "DB15K_ImageIndex.txt") if l.split("\t")[0].strip("<>") in kg1][:40],
    )
    write(
        out / "FB15K" / "FB15K_ImageIndex.txt", [l for l in lines(src / "FB15K" / "FB15K_ImageIndex.txt") if l.split("\t")[0] in kg2][:40]
    )
    write(
        out / "FB15K" / "FB15K_NumericalTriples.txt",
        [l for l in lines(src / "FB15K" / "FB15K_NumericalTriples.txt") if l.split("\t")[0] in kg2][:60],
    )
    for name in ("YAGO15K_SameAsLink.txt", "YAGO15K_ImageIndex.txt", "YAGO15K_NumericalTriples.txt"):
        write(out / "YAGO15K" / name, lines(src / "YAGO15K" / name)[:15])
    names = [l for l in lines(shared / "fb15k_names" / "FB15K_mid2name.txt") if l.split("\t")[0] in kg2]
    write(HERE / "fb15k_names.tsv", names)


def openea_conversion(shared: Path) -> None:
    """mclea_en_fr/: DH-MEA's EN_FR_15K_V1 id conversion, 30 triples_1 lines and what they touch; ids renumbered."""
    src, out = shared / "openea_en_fr_15k_v1", HERE / "mclea_en_fr"
    t1 = [l.split("\t") for l in lines(src / "triples_1")[:30]]
    e1 = sorted({int(t[0]) for t in t1} | {int(t[2]) for t in t1})
    refs = [tuple(map(int, l.split("\t"))) for l in lines(src / "ref_ent_ids")]
    refs = [r for r in refs if r[0] in set(e1)]
    e2set = {r[1] for r in refs}
    t2 = [l.split("\t") for l in lines(src / "triples_2") if int(l.split("\t")[0]) in e2set and int(l.split("\t")[2]) in e2set]
    e2 = sorted(e2set)
    ent1 = dict(l.split("\t") for l in lines(src / "ent_ids_1"))
    ent2 = dict(l.split("\t") for l in lines(src / "ent_ids_2"))
    relv = dict(l.split("\t") for l in lines(src / "rel_ids"))
    new = {old: i for i, old in enumerate(e1 + e2)}
    rels = sorted({int(t[1]) for t in t1 + t2})
    newr = {old: i for i, old in enumerate(rels)}
    write(out / "ent_ids_1", [f"{new[e]}\t{ent1[str(e)]}" for e in e1])
    write(out / "ent_ids_2", [f"{new[e]}\t{ent2[str(e)]}" for e in e2])
    write(out / "rel_ids", [f"{newr[r]}\t{relv[str(r)]}" for r in rels])
    write(out / "triples_1", [f"{new[int(h)]}\t{newr[int(r)]}\t{new[int(t)]}" for h, r, t in t1])
    write(out / "triples_2", [f"{new[int(h)]}\t{newr[int(r)]}\t{new[int(t)]}" for h, r, t in t2])
    write(out / "ill_ent_ids", [f"{new[a]}\t{new[b]}" for a, b in refs])
    for kg, ents in ((1, {ent1[str(e)] for e in e1}), (2, {ent2[str(e)] for e in e2})):
        write(out / f"training_attrs_{kg}", [l for l in lines(src / f"training_attrs_{kg}") if l.split("\t")[0] in ents][:15])
    # openea/: the same content in the raw OpenEA layout (URIs instead of ids)
    raw = HERE / "openea"
    write(raw / "rel_triples_1", [f"{ent1[h]}\t{relv[r]}\t{ent1[t]}" for h, r, t in t1])
    write(raw / "rel_triples_2", [f"{ent2[h]}\t{relv[r]}\t{ent2[t]}" for h, r, t in t2])
    # as in real OpenEA releases, every linked entity has relation triples
    in2 = {int(t[0]) for t in t2} | {int(t[2]) for t in t2}
    refs = [(a, b) for a, b in refs if b in in2]
    write(raw / "ent_links", [f"{ent1[str(a)]}\t{ent2[str(b)]}" for a, b in refs])
    n = len(refs)
    folds = {"train": refs[: n * 2 // 10], "valid": refs[n * 2 // 10 : n * 3 // 10], "test": refs[n * 3 // 10 :]}
    for split, pairs in folds.items():
        write(raw / "721_5fold" / "1" / f"{split}_links", [f"{ent1[str(a)]}\t{ent2[str(b)]}" for a, b in pairs])


def openke(shared: Path) -> None:
    """openke_fb15k/: FB15K OpenKE files, 40 valid2id + 40 test2id lines, the vocab lines they use (ids kept)."""
    src, out = shared / "fb15k_openke_partial", HERE / "openke_fb15k"
    trip = {n: lines(src / n)[1:41] for n in ("valid2id.txt", "test2id.txt")}
    ents = {int(x) for rows in trip.values() for l in rows for x in l.split()[:2]}
    rels = {int(l.split()[2]) for rows in trip.values() for l in rows}
    for name, keep in (("entity2id.txt", ents), ("relation2id.txt", rels)):
        rows = [l for l in lines(src / name)[1:] if int(l.split("\t")[1]) in keep]
        write(out / name, [str(len(rows))] + rows)
    for name, rows in trip.items():
        write(out / name, [str(len(rows))] + rows)


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"
    pf = pathfusion(shared)
    mmkg(shared, pf)
    openea_conversion(shared)
    openke(shared)


if __name__ == "__main__":
    main()
