"""The hostile suite: every command against malformed inputs, odd paths and interruptions.

Each test runs the real `kgalign` CLI in a subprocess (real pipes, real signals, real
file systems) on tiny data made here, and asserts what a user sees: the documented exit
code, one message naming the file, no traceback, and nothing half-written or stale.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONHASHSEED="0", KGALIGN_CACHE_DIR="/nonexistent-do-not-use")
CLI = [sys.executable, "-m", "kgalign.cli"]


def kg_proc(*args, timeout: float = 90, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``kgalign ARGS`` in a subprocess and return the finished process (text stdout/stderr)."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, input=input, env=env or ENV, cwd=ROOT)


def kg(*args, timeout: float = 90, input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``kgalign ARGS`` in this process (the same Typer app as the console script, without the
    interpreter start-up, so the suite fits its time budget). An uncaught exception shows up as a
    traceback in stderr, exactly as the console script would print it."""
    import traceback

    from typer.testing import CliRunner

    from kgalign.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args], input=input, env={"KGALIGN_CACHE_DIR": ENV["KGALIGN_CACHE_DIR"]})
    err = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        err += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(res.exception))
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, err)


def start(*args, env: dict | None = None, stdin=None) -> subprocess.Popen:
    """Start ``kgalign ARGS`` in the background (for signals)."""
    return subprocess.Popen(
        [*CLI, *map(str, args)], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or ENV, cwd=ROOT
    )


def refused(p: subprocess.CompletedProcess, code: int, *names: str) -> str:
    """Assert a clean refusal: exit ``code``, no traceback, one error line naming every one of ``names``."""
    err = p.stderr
    assert p.returncode == code, f"exit {p.returncode}, expected {code}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith(("error:", "internal error:"))]
    assert len(errors) == 1, err
    assert not errors[0].startswith("internal error"), err
    for name in names:
        assert str(name) in errors[0], f"{name!r} not named in: {errors[0]}"
    return errors[0]


def no_temporaries(*dirs: Path) -> None:
    """No kgalign temporaries (``.NAME.*.tmp`` / ``.old``) anywhere under ``dirs``."""
    for d in dirs:
        if not d.exists():
            continue
        left = [p for p in d.rglob(".*") if p.name.endswith((".tmp", ".old")) and p.name != ".tmp"]
        assert not left, left


def wait_for(cond, timeout: float = 30.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def interrupt(proc: subprocess.Popen, sig: int = signal.SIGINT, within: float = 10.0) -> tuple[int, str, float]:
    """Send ``sig``; return (exit code, stderr, seconds it took to exit)."""
    t = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"did not stop within {within} s of {signal.Signals(sig).name}")
    return proc.returncode, err, time.monotonic() - t


# ---- tiny data --------------------------------------------------------------------


def write_graphs(d: Path, n: int = 12) -> dict[str, Path]:
    """Two tiny N-Triples graphs with names, a typed number, and n links (TSV)."""
    d.mkdir(parents=True, exist_ok=True)
    g1 = "".join(
        f"<http://a.org/e{i}> <http://a.org/knows> <http://a.org/e{(i + 1) % n}> .\n"
        f'<http://a.org/e{i}> <http://www.w3.org/2000/01/rdf-schema#label> "thing {i}" .\n'
        f'<http://a.org/e{i}> <http://a.org/size> "{i}"^^<http://www.w3.org/2001/XMLSchema#integer> .\n'
        for i in range(n)
    )
    g2 = "".join(
        f"<http://b.org/f{i}> <http://b.org/rel> <http://b.org/f{(i + 1) % n}> .\n"
        f'<http://b.org/f{i}> <http://www.w3.org/2000/01/rdf-schema#label> "ding {i}" .\n'
        for i in range(n)
    )
    links = "".join(f"http://a.org/e{i}\thttp://b.org/f{i}\n" for i in range(n))
    paths = {"kg1": d / "kg1.nt", "kg2": d / "kg2.nt", "links": d / "links.tsv"}
    paths["kg1"].write_text(g1, encoding="utf-8")
    paths["kg2"].write_text(g2, encoding="utf-8")
    paths["links"].write_text(links, encoding="utf-8")
    return paths


def ingest_args(p: dict[str, Path], out: Path, *extra) -> list:
    return ["ingest", "--kg1", p["kg1"], "--kg2", p["kg2"], "--links", p["links"], "-o", out, "-q", *extra]


@pytest.fixture(scope="session")
def graphs(tmp_path_factory) -> dict[str, Path]:
    return write_graphs(tmp_path_factory.mktemp("graphs"))


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory, graphs) -> Path:
    """A dataset made by the CLI, with relation features (read-only use: copy before damaging)."""
    out = tmp_path_factory.mktemp("ds") / "ds"
    p = kg(*ingest_args(graphs, out))
    assert p.returncode == 0, p.stderr
    p = kg("features", out, "--modalities", "relation,attribute", "-q")
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, dataset_dir) -> Path:
    """A run directory as align/export read it: config.json + embeddings.npy that align the links."""
    import shutil

    base = tmp_path_factory.mktemp("run")
    ds = base / "ds"
    shutil.copytree(dataset_dir, ds)
    from kgalign.data.store import load_dataset

    d = load_dataset(ds)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(d.num_entities, 8)).astype(np.float32)
    emb[d.links[:, 1]] = emb[d.links[:, 0]] + 0.01 * rng.normal(size=(len(d.links), 8)).astype(np.float32)
    run = base / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": str(ds), "model": "test", "seed": 0}), encoding="utf-8")
    np.save(run / "embeddings.npy", emb / np.linalg.norm(emb, axis=1, keepdims=True))
    p = kg("align", run, "--threshold", "0.5", "-q")
    assert p.returncode == 0, p.stderr
    return run


# ---- a real HTTP server on 127.0.0.1 --------------------------------------------------


class Server:
    """Routes: /ctx (a JSON-LD context), /trickle.png (one byte every 0.5 s), /red.png. Records every request."""

    def __init__(self):
        self.requests: list[str] = []
        self.first_request = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                outer.first_request.set()
                if self.path == "/ctx":
                    body = b'{"@context": {"name": "http://schema.org/name"}}'
                    self._send(200, "application/ld+json", body)
                elif self.path.startswith("/trickle"):
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        for _ in range(100000):
                            self.wfile.write(b"\x89")
                            self.wfile.flush()
                            time.sleep(0.5)
                    except OSError:
                        return
                else:
                    self._send(404, "text/plain", b"no")

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()
