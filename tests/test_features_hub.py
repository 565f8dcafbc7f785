"""The library never asks a model hub for weights unless downloads are allowed, with or without the CLI
(no import-time environment policy): a real HTTP server on 127.0.0.1 stands in for the hub and counts requests."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading

SCRIPT = """
from kgalign.errors import MissingResourceError
from kgalign.features.hub import allowing_downloads
from kgalign.features.text import load_text_encoder
import sys
allow = sys.argv[1] == "1"
try:
    if allow:
        with allowing_downloads(True):
            load_text_encoder("someone/some-model", "cpu", 8)
    else:  # the library's default, no context: as a user of the Python API calls it
        load_text_encoder("someone/some-model", "cpu", 8)
except MissingResourceError as exc:
    print("refused", str(exc)[:80])
except Exception as exc:  # with downloads allowed the fake hub answers nonsense
    print("failed", type(exc).__name__)
"""


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def _answer(self):
        _Counting.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD = _answer

    def log_message(self, *args):
        pass


def _run(allow: bool) -> tuple[str, int]:
    _Counting.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    env["HF_HOME"] = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kgalign-hub-test-{os.getpid()}")
    try:
        p = subprocess.run([sys.executable, "-c", SCRIPT, "1" if allow else "0"], capture_output=True, text=True, env=env, timeout=300)
    finally:
        server.shutdown()
    return p.stdout + p.stderr, len(_Counting.hits)


def test_no_request_to_a_hub_unless_downloads_are_allowed():
    out, hits = _run(allow=False)
    assert "refused" in out and hits == 0, out
    out, hits = _run(allow=True)
    assert hits > 0, out  # the same call does reach the hub when allowed: the fake hub saw the request
