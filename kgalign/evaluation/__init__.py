"""Evaluation: blocked similarity search and CSLS (similarity), rank metrics (ranking),
link-set precision/recall/F1 (linkset), run directories (runs), the `evaluate` command (api).

Kept free of heavy imports: `kgalign --help` must stay instant."""
