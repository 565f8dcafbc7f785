"""Whether featurizers may download model weights (torch.hub, the Hugging Face hub, open_clip).

Off unless asked, in the library exactly as on the command line: a hub look-up
without a network can hang for about 46 s, and a run should never fetch weights
the user did not ask for. ``FeatureOptions(download=True)`` (``kgalign features
--download``) allows it for one ``compute_features`` call.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys

_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("kgalign_downloads_allowed", default=False)


def downloads_allowed() -> bool:
    return _allowed.get()


@contextlib.contextmanager
def allowing_downloads(flag: bool):
    """Downloads allowed (``flag``) or not for the block. Not allowed also puts the Hugging Face
    hub client offline for the block (it otherwise sends requests of its own, e.g. a registry
    fetch when it builds its user agent), whether it is imported before or during the block."""
    token = _allowed.set(bool(flag))
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    constants = sys.modules.get("huggingface_hub.constants")
    saved_const = getattr(constants, "HF_HUB_OFFLINE", None)
    if not flag:
        os.environ["HF_HUB_OFFLINE"] = "1"
        if constants is not None:
            constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        _allowed.reset(token)
        if not flag:
            if saved_env is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = saved_env
            constants = sys.modules.get("huggingface_hub.constants")
            if constants is not None:
                constants.HF_HUB_OFFLINE = saved_const if saved_const is not None else saved_env in ("1", "true", "yes", "on")
