"""The "Adding a model" example of docs/architecture.md runs as written: its module, registered, trains and learns."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from kgalign.features.synthetic import make_synthetic
from kgalign.models import registry
from kgalign.training import train

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
IMPORTS = """import torch
import torch.nn.functional as F

from kgalign.models.base import AlignmentModel, ModelOutput, MultiModalEncoder
from kgalign.models.layers import reset_children
from kgalign.models.losses import pair_log_probs
"""


def test_the_documented_model_trains(tmp_path, monkeypatch, single_thread):
    section = DOC.read_text(encoding="utf-8").split("### Adding a model", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    module, entry = blocks[0], blocks[1]
    assert "class MyModel(AlignmentModel)" in module and '"mymodel"' in entry
    (tmp_path / "mymodel.py").write_text(IMPORTS + module, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    target = re.search(r'"target": "([^"]+)"', entry).group(1).replace("kgalign.models.mymodel", "mymodel")
    registry.register_model("mymodel", target, summary="docs example")
    try:
        ds = make_synthetic(tmp_path / "ds", n=80, noise=1.0, seed=1)
        res = train(ds, model="mymodel", out_dir=tmp_path / "run", epochs=12, eval_every=4, batch_size=24, lr=1e-2, device="cpu", hidden=32)
        assert res.results["valid"]["cosine"]["l2r"]["hits@1"] > 0.3  # chance is 1/16
    finally:
        registry.unregister_model("mymodel")
        sys.modules.pop("mymodel", None)
