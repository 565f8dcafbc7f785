"""``python tests/support/cli_with_toy.py ARGS``: the kgalign CLI with the toy model registered
(what a plugin does), so tests can interrupt and resume it as a real process."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from support.toy_model import register  # noqa: E402

register()

from kgalign.cli import main  # noqa: E402

main()
