import os

# Tests never reach a model hub: fail fast instead of hanging on a lookup.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import signal

# Tests send Ctrl-C (SIGINT) to kgalign subprocesses. A shell without job control starts background jobs
# with SIGINT ignored, and an ignored signal stays ignored in every child: give the children the normal one.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


import warnings

import pytest


@pytest.fixture
def single_thread():
    """One torch thread and no UserWarning noise, for training tests.

    CI has 2 cores shared with other jobs; oversubscribed threads are far slower.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield
    torch.set_num_threads(threads)
