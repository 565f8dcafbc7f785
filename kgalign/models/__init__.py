"""Alignment models and their parts.

- ``inputs``: :class:`ModelInputs`, what every model receives;
- ``registry``: ``get_model(name) -> ModelSpec``, ``list_models()`` (imports no torch);
- ``base``: the shared model base class and modality encoders;
- ``layers``, ``fusion``, ``noise``: encoders, fusion modules, NoCo's noise augmentation;
- ``noco``, ``meaformer``, ``mclea``: the models (docs/models/);
- ``synthetic``: synthetic inputs for tests and benchmarks.
"""
