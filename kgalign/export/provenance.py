"""Provenance sidecar (Turtle): a VoID Linkset plus PROV-O for the run that made it.

Project terms (``kga:``, namespace ``urn:kgalign:vocab:``) carry what PROV does
not: model, config hash, seed, similarity, strategy, thresholds, scope.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from kgalign import __version__
from kgalign.export.rdfterms import nt_iri, turtle_string

KGA = "urn:kgalign:vocab:"


@dataclass
class ProvenanceInfo:
    linkset: str  # IRI of the link set (the output file's URI, or a urn)
    activity: str  # IRI of the run (its directory URI, or a urn)
    subjects_target: str
    objects_target: str
    predicate: str
    triples: int
    model: str | None = None
    config_sha256: str | None = None
    seed: int | None = None
    settings: dict = field(default_factory=dict)  # align settings: similarity, strategy, thresholds ...
    formats: str = ""
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"))


def _lit(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f'"{value!r}"^^xsd:double'
    return turtle_string(str(value))


def provenance_turtle(p: ProvenanceInfo) -> str:
    lines = [
        "@prefix void: <http://rdfs.org/ns/void#> .",
        "@prefix prov: <http://www.w3.org/ns/prov#> .",
        "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .",
        "@prefix dcterms: <http://purl.org/dc/terms/> .",
        f"@prefix kga: <{KGA}> .",
        "",
        f"{nt_iri(p.linkset)} a void:Linkset ;",
        f"    void:linkPredicate {nt_iri(p.predicate)} ;",
        f"    void:subjectsTarget {nt_iri(p.subjects_target)} ;",
        f"    void:objectsTarget {nt_iri(p.objects_target)} ;",
        f"    void:triples {int(p.triples)} ;",
    ]
    if p.formats:
        lines.append(f"    dcterms:format {turtle_string(p.formats)} ;")
    lines += [
        f'    dcterms:created "{p.date}"^^xsd:dateTime ;',
        f"    prov:wasGeneratedBy {nt_iri(p.activity)} .",
        "",
        f"{nt_iri(p.activity)} a prov:Activity ;",
        f"    prov:used {nt_iri(p.subjects_target)}, {nt_iri(p.objects_target)} ;",
        f'    prov:endedAtTime "{p.date}"^^xsd:dateTime ;',
        f"    kga:kgalignVersion {turtle_string(__version__)}",
    ]
    extra = {"model": p.model, "configSha256": p.config_sha256, "seed": p.seed}
    extra.update({k: v for k, v in sorted(p.settings.items())})
    for key, value in extra.items():
        if value is None:
            continue
        lines[-1] += " ;"
        lines.append(f"    kga:{key} {_lit(value)}")
    lines[-1] += " ."
    return "\n".join(lines) + "\n"
