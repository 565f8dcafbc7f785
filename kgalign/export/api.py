"""What `kgalign align` and `kgalign export` do, as library calls."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from kgalign import __version__
from kgalign.errors import InputError
from kgalign.export.predictions import LinkTable, read_predictions, write_predictions
from kgalign.rundir import DECISIONS, PREDICTIONS, open_run


def align_run(
    run: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    scope: str = "all",
    similarity: str = "csls",
    score: str = "cosine",
    strategy: str = "greedy",
    topk: int = 10,
    csls_k: int = 3,
    threshold: float | None = None,
    review_threshold: float | None = None,
    include_seeds: bool = True,
    block_size: int = 4096,
    device: str | None = None,
    dataset: str | os.PathLike | None = None,
    search: str = "auto",
    index: str = "auto",
    nlist: int | None = None,
    nprobe: int = 32,
    hnsw_m: int = 32,
    ef_search: int = 128,
    rerank: int | None = None,
    memory_budget_mib: int = 512,
    precision: str = "float32",
) -> dict:
    """Predict pairs for a run and write them (RUN/predictions.tsv by default). Returns the summary.

    ``search``/``index``/... choose the candidate search (kgalign/evaluation/search.py)."""
    from kgalign.export.align import align_embeddings
    from kgalign.fsutil import check_output_file

    _check_align_numbers(threshold, review_threshold, topk, csls_k, block_size)
    opts = search_options(search, index, nlist, nprobe, hnsw_m, ef_search, rerank, memory_budget_mib, precision)
    if output is not None:
        check_output_file(output, "the predictions file")  # before the work, not after
    if device is not None:
        from kgalign.device import resolve_device

        device = resolve_device(device)  # a clear error, not a torch traceback, for cuda on a CPU build
    r = open_run(run, dataset)
    ds = r.load_dataset()
    emb = np.array(r.load_embeddings(ds.num_entities), dtype=np.float32)
    try:
        pred = align_embeddings(
            emb,
            ds.entity_kg,
            ds.links,
            ds.link_split,
            scope=scope,
            similarity=similarity,
            score=score,
            strategy=strategy,
            topk=topk,
            csls_k=csls_k,
            threshold=threshold,
            review_threshold=review_threshold,
            include_seeds=include_seeds,
            block_size=block_size,
            device=device,
            search=opts,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    from kgalign.export.predictions import gc_paused

    ents = ds.entities
    with gc_paused():
        table = LinkTable([ents[i] for i in pred.kg1.tolist()], [ents[i] for i in pred.kg2.tolist()], pred.score.tolist(), pred.status)
    out = Path(output) if output is not None else r.path / PREDICTIONS
    meta = dict(pred.summary)
    meta.update(
        run=str(r.path.resolve()),
        dataset=str(r.dataset_path),
        model=r.model_name,
        seed=r.seed,
        config_sha256=r.config_hash,
        kgalign_version=__version__,
    )
    write_predictions(out, table, meta)
    meta["output"] = str(out)
    return meta


def search_options(search, index, nlist, nprobe, hnsw_m, ef_search, rerank, memory_budget_mib, precision="float32"):
    """SearchOptions from the CLI's flags; a bad value is an InputError naming the flag. faiss is
    checked here when asked for, so that a missing extra stops before any work."""
    from kgalign.evaluation.ann import AnnOptions, require_faiss
    from kgalign.evaluation.search import SearchOptions

    for flag, value in (("--nlist", nlist), ("--nprobe", nprobe), ("--hnsw-m", hnsw_m), ("--ef-search", ef_search), ("--rerank", rerank)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    if memory_budget_mib < 1:
        raise InputError(f"--memory-budget must be at least 1 (MiB), got {memory_budget_mib}")
    ann = AnnOptions(kind=index, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_search=ef_search)
    opts = SearchOptions(method=search, ann=ann, rerank=rerank, memory_budget=int(memory_budget_mib) << 20, precision=precision)
    try:
        opts.check()
    except ValueError as exc:
        raise InputError(f"--{str(exc)}") from None
    if search == "faiss":
        require_faiss()
    return opts


def _check_align_numbers(threshold, review_threshold, topk, csls_k, block_size) -> None:
    """Refuse NaN/infinite thresholds (NaN compares false, so it would accept every pair) and sizes below 1."""
    for flag, value in (("--threshold", threshold), ("--review-threshold", review_threshold)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"{flag} must be a finite number, got {value}")
    for flag, value in (("--topk", topk), ("--csls-k", csls_k), ("--block-size", block_size)):
        if value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")


def export_links(**kwargs) -> dict:
    """Write a link file (stdout when ``output`` is None) and its provenance sidecar.

    Keyword arguments as :func:`_export_links`."""
    from kgalign.export.predictions import gc_paused

    with gc_paused():
        return _export_links(**kwargs)


def _predictions_source(run, predictions, log):
    """(the run or None, the predictions file); a run without predictions is aligned with defaults first."""
    if predictions is not None:
        return (open_run(run) if run is not None else None), Path(predictions)
    if run is None:
        raise InputError("give a RUN directory or --predictions FILE")
    r = open_run(run)
    ppath = r.path / PREDICTIONS
    if not ppath.is_file():
        if log:
            log.info("%s missing: running `kgalign align` with defaults first", ppath)
        align_run(run)
    return r, ppath


def _export_links(
    *,
    run: str | os.PathLike | None = None,
    predictions: str | os.PathLike | None = None,
    fmt: str = "nt",
    predicate: str = "owl:sameAs",
    base_kg1: str | None = None,
    base_kg2: str | None = None,
    output: str | os.PathLike | None = None,
    provenance: str | os.PathLike | None = None,
    write_prov: bool = True,
    include_seeds: bool = False,
    include_review: bool = False,
    license: str | None = None,
    mapping_set_id: str | None = None,
    decisions: str | os.PathLike | None = None,
    stream=None,
    log=None,
) -> dict:
    """Write a link file (stdout when ``output`` is None) and its provenance sidecar.

    Review decisions (``decisions``, else ``RUN/decisions.tsv`` when present) mark accepted
    pairs ``reviewed`` and leave rejected ones out (kgalign/export/reviewed.py)."""
    from kgalign.export.exporting import dataset_iri, default_provenance_path, require_format, select_links, write_links, write_provenance
    from kgalign.export.provenance import ProvenanceInfo
    from kgalign.export.rdfterms import TermPolicy, expand_predicate, is_absolute_iri
    from kgalign.export.writers import ExportOptions
    from kgalign.fsutil import check_output_file

    require_format(fmt)
    pred_iri = expand_predicate(predicate)
    for flag, value in (("--license", license), ("--mapping-set-id", mapping_set_id)):
        if value and not is_absolute_iri(value):
            raise InputError(f"{flag} must be an absolute IRI, got {value!r}")
    # check every output path before any work; a FIFO or device target gets no sidecar beside it
    out_kind = check_output_file(output, "the link file") if output is not None else "stream"
    if provenance is not None and write_prov:
        check_output_file(provenance, "the provenance file")
    r, ppath = _predictions_source(run, predictions, log)
    table = read_predictions(ppath)
    dpath = _decisions_path(decisions, r)
    if dpath is not None:
        from kgalign.data.decisions import read_decisions
        from kgalign.export.reviewed import apply_decisions

        table = apply_decisions(table, read_decisions(dpath))
    meta = table.meta
    links = select_links(table, include_seeds=include_seeds, include_review=include_review)
    ds_path = r.dataset_path if r is not None else (Path(meta["dataset"]) if meta.get("dataset") else None)
    onto1, onto2 = dataset_iri(ds_path, 1), dataset_iri(ds_path, 2)
    opt = ExportOptions(
        predicate=pred_iri,
        kg1=TermPolicy(1, base_kg1),
        kg2=TermPolicy(2, base_kg2),
        similarity=str(meta.get("score", meta.get("similarity", "unknown"))),
        onto1=onto1,
        onto2=onto2,
    )
    if license:
        opt.license = license
    out_path = Path(output) if output is not None else None
    if mapping_set_id:
        opt.mapping_set_id = mapping_set_id
    elif out_path is not None:
        opt.mapping_set_id = out_path.resolve().as_uri()
    write_links(links, fmt, opt, out=out_path, stream=stream)
    prov_path = None
    if write_prov and (provenance is not None or out_kind == "file"):
        prov_path = Path(provenance) if provenance is not None else default_provenance_path(out_path)
        run_dir = r.path.resolve() if r is not None else (Path(meta["run"]) if meta.get("run") else None)
        settings = {
            k: meta[k]
            for k in ("scope", "similarity", "score", "strategy", "threshold", "review_threshold", "topk")
            if meta.get(k) is not None
        }
        settings.update(seedsIncluded=include_seeds, reviewIncluded=include_review)
        if dpath is not None:
            settings.update(reviewDecisions=str(Path(dpath).resolve()))
        info = ProvenanceInfo(
            linkset=out_path.resolve().as_uri() if out_path is not None else opt.mapping_set_id,
            activity=run_dir.as_uri() if run_dir is not None else "urn:kgalign:activity",
            subjects_target=onto1,
            objects_target=onto2,
            predicate=pred_iri,
            triples=len(links),
            model=r.model_name if r is not None else meta.get("model"),
            config_sha256=r.config_hash if r is not None else meta.get("config_sha256"),
            seed=r.seed if r is not None else meta.get("seed"),
            settings=settings,
            formats=fmt,
        )
        write_provenance(prov_path, info)
    counts = {s: links.status.count(s) for s in ("accepted", "review", "seed")}
    if dpath is not None:
        counts["reviewed"] = links.status.count("reviewed")
    return {
        "format": fmt,
        "links": len(links),
        "counts": counts,
        "predicate": pred_iri,
        "output": str(out_path) if out_path else "-",
        "provenance": str(prov_path) if prov_path else None,
        "predictions": str(ppath),
        "decisions": str(dpath) if dpath is not None else None,
    }


def _decisions_path(decisions, r) -> Path | None:
    """The decisions file to apply: the one given (it must exist), else the run's when present."""
    if decisions is not None:
        p = Path(decisions)
        if not p.is_file():
            from kgalign.errors import MissingResourceError

            raise MissingResourceError(f"{p}: no such decisions file")
        return p
    if r is not None and (r.path / DECISIONS).is_file():
        return r.path / DECISIONS
    return None
