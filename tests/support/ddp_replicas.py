"""Run under torchrun: train NoCo briefly and save this rank's full state (parameters and
buffers) to OUT/rank<R>.safetensors, so a test can check that replicas stay identical."""

import os
import sys

from safetensors.torch import save_file

from kgalign.training.pipeline import Trainer
from kgalign.training.settings import build_config

dataset, out = sys.argv[1], sys.argv[2]
cfg = build_config(dataset, "noco", kwargs=dict(epochs=4, eval_every=2, batch_size=16, lr=5e-3, device="cpu", hidden=32, noise_size=16))
trainer = Trainer(cfg, os.path.join(out, "run"))
trainer.run()
state = {k: v.detach().cpu().contiguous().clone() for k, v in trainer.model.state_dict().items()}
save_file(state, os.path.join(out, f"rank{os.environ['RANK']}.safetensors"))
