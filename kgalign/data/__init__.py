"""Reading user data into the dataset directory (docs/ingest.md, docs/dataset-format.md).

- ``ingest``: ``IngestOptions`` / ``GraphSpec`` -> ``ingest()`` / ``ingest_to()``
- ``sources`` (opening, compression, sha256, bad-line policy), ``rdf``, ``tsv``, ``layouts``: readers
- ``terms``: predicates and literal values; ``builder``: sorting statements, global ids
- ``links``: link checks; ``split``: random / legacy / given splits; ``info``: statistics
- ``store``: the ``Dataset`` and its on-disk format
"""
