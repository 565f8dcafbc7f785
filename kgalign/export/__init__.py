"""Align and export: candidate search + matching (align, matching), the predictions file
(predictions), RDF terms and escaping (rdfterms), format writers (writers), provenance
(provenance), the `align` / `export` commands (api, exporting).

Kept free of heavy imports: `kgalign --help` must stay instant."""
