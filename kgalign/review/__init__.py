"""Looking at a run: the HTML report with plots (`kgalign report`) and the local review page (`kgalign review`).

Nothing below the CLI imports this package; it reads run and dataset directories only.
"""
