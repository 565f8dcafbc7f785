"""`kgalign review RUN`: a local page where a person accepts, rejects or skips predicted pairs.

Serving is the standard library's ``http.server`` (threaded); pages are Jinja2
templates with autoescaping, so every string from the graphs is escaped.

Safety: by default it listens on 127.0.0.1 only; every request must carry the
random token printed with the URL (a wrong or missing token gets 403) and a
Host header naming this server (against DNS rebinding); state changes are
POSTs; responses forbid framing, referrers (the token is in the URL) and any
script but the page's own. Files are read only from the run, dataset and
image-cache directories (plus ``--image-dir`` folders); image requests name an
entity and an index, never a path, and images are re-encoded as PNG.

Every decision is written to the decisions file at once (atomically) before
the page moves on; reopening resumes at the first undecided pair.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from kgalign.data.decisions import DECISIONS, FILENAME, DecisionLog
from kgalign.review.pairs import ReviewData, image_file, thumbnail_png

log = logging.getLogger("kgalign.review")
MAX_BODY = 4096


@dataclass
class ReviewState:
    data: ReviewData
    decisions: DecisionLog
    token: str
    roots: list[Path]
    cache_root: Path | None
    hosts: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decided(self, i: int):
        item = self.data.queue[i]
        return self.decisions.get(item.kg1, item.kg2)

    def first_open(self, start: int = 0) -> int | None:
        """The first undecided pair at or after ``start`` (wrapping around), or None when all are decided."""
        n = len(self.data.queue)
        for k in range(n):
            i = (start + k) % n
            if self.decided(i) is None:
                return i
        return None

    def index_of(self, kg1: str, kg2: str) -> int | None:
        for i, item in enumerate(self.data.queue):
            if item.kg1 == kg1 and item.kg2 == kg2:
                return i
        return None


def default_cache_root(data: ReviewData) -> Path | None:
    """The image cache the features step used (recorded in the features manifest), else the default one."""
    from kgalign.features.pipeline import default_cache_dir
    from kgalign.features.store import read_manifest

    entry = read_manifest(data.run.dataset_path).get("image") or {}
    return Path(entry["cache_dir"]) if entry.get("cache_dir") else default_cache_dir()


def make_state(
    run: str | os.PathLike,
    *,
    decisions: str | os.PathLike | None = None,
    sample: int | None = None,
    seed: int = 0,
    image_dirs: tuple = (),
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
) -> ReviewState:
    data = ReviewData(run, sample=sample, seed=seed)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_root(data)
    roots = [data.run.path, data.run.dataset_path, *(Path(d) for d in image_dirs)]
    if cache_root is not None:
        roots.append(cache_root)
    dpath = Path(decisions) if decisions is not None else data.run.path / FILENAME
    return ReviewState(data, DecisionLog(dpath), token or secrets.token_urlsafe(24), roots, cache_root)


class ReviewHandler(BaseHTTPRequestHandler):
    server_version = "kgalign-review"
    state: ReviewState  # set on the subclass made by make_server

    # ---- plumbing -------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, ctype: str, nonce: str | None = None, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        script = f"'nonce-{nonce}'" if nonce else "'none'"
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src {script}; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        )
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, message: str) -> None:
        self._send(status, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8")

    def _redirect(self, i: int | None) -> None:
        query = {"token": self.state.token}
        if i is not None:
            query["i"] = str(i)
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", extra={"Location": "/?" + urlencode(query)})

    def _allowed(self, params: dict) -> bool:
        host = self.headers.get("Host", "")
        if self.state.hosts and host not in self.state.hosts:
            self._text(HTTPStatus.FORBIDDEN, "forbidden: unexpected Host header")
            return False
        token = (params.get("token") or [""])[0]
        if not hmac.compare_digest(token.encode("utf-8"), self.state.token.encode("utf-8")):
            self._text(HTTPStatus.FORBIDDEN, "forbidden: missing or wrong token (use the URL kgalign review printed)")
            return False
        return True

    # ---- GET ------------------------------------------------------------------
    def do_GET(self):  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        if not self._allowed(params):
            return
        if url.path == "/":
            return self._page(params)
        m = re.fullmatch(r"/image/(\d+)/(\d+)", url.path)
        if m:
            return self._image(int(m.group(1)), int(m.group(2)))
        self._text(HTTPStatus.NOT_FOUND, "not found")

    do_HEAD = do_GET

    def _page(self, params: dict) -> None:
        st = self.state
        with st.lock:
            n = len(st.data.queue)
            raw = (params.get("i") or [""])[0]
            i = int(raw) if raw.isdigit() and int(raw) < n else st.first_open()
            counts = {d: sum(1 for x in st.decisions.items if x.decision == d) for d in DECISIONS}
            done = sum(1 for k in range(n) if st.decided(k) is not None)
            context = {
                "token": st.token,
                "nonce": secrets.token_urlsafe(16),
                "mode": st.data.mode,
                "total": n,
                "done": done,
                "counts": counts,
                "decisions_file": str(st.decisions.path),
                "can_undo": bool(st.decisions.items),
                "index": i,
                "pair": self._with_images(st.data.pair(i)) if i is not None else None,
                "current": st.decided(i) if i is not None else None,
                "prev": (i - 1) if i is not None and i > 0 else None,
                "next": (i + 1) if i is not None and i + 1 < n else None,
                "recent": list(reversed(st.decisions.items[-10:])),
            }
        from kgalign.review.templating import environment

        body = environment().get_template("review.html").render(**context)
        self._send(HTTPStatus.OK, body.encode("utf-8"), "text/html; charset=utf-8", nonce=context["nonce"])

    def _with_images(self, pair: dict) -> dict:
        """Keep the images that can be shown; count the others (not cached, or outside the allowed folders)."""
        st = self.state
        for side in (pair["left"], pair["right"]):
            sources = st.data.image_sources(side["id"])
            side["images"] = [k for k in side["images"] if image_file(sources[k], st.cache_root, st.roots) is not None]
            side["images_missing"] = len(sources) - len(side["images"])
        return pair

    def _image(self, entity: int, k: int) -> None:
        st = self.state
        data = st.data
        if entity >= data.ds.num_entities:
            return self._text(HTTPStatus.NOT_FOUND, "no such entity")
        sources = data.image_sources(entity)
        if k >= len(sources):
            return self._text(HTTPStatus.NOT_FOUND, "no such image")
        path = image_file(sources[k], st.cache_root, st.roots)
        png = thumbnail_png(path) if path is not None else None
        if png is None:
            return self._text(HTTPStatus.NOT_FOUND, "image not available (not cached, or outside the allowed directories)")
        self._send(HTTPStatus.OK, png, "image/png")

    # ---- POST -----------------------------------------------------------------
    def do_POST(self):  # noqa: N802 - http.server's naming
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            return self._text(HTTPStatus.BAD_REQUEST, "bad request: Content-Length")
        length = int(raw_length)
        if length > MAX_BODY:
            return self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        body = self.rfile.read(length).decode("utf-8", "replace")
        params = parse_qs(body)
        if not self._allowed(params):
            return
        path = urlsplit(self.path).path
        st = self.state
        with st.lock:
            if path == "/decide":
                raw = (params.get("i") or [""])[0]
                decision = (params.get("decision") or [""])[0]
                if not raw.isdigit() or int(raw) >= len(st.data.queue) or decision not in DECISIONS:
                    return self._text(HTTPStatus.BAD_REQUEST, "bad request: need i (a pair index) and a decision")
                i = int(raw)
                item = st.data.queue[i]
                if (params.get("pair") or [""])[0] != item.key:
                    return self._text(HTTPStatus.CONFLICT, "this page is out of date (the queue changed): reload it")
                st.decisions.record(item.kg1, item.kg2, decision, item.score)
                return self._redirect(st.first_open(i + 1))
            if path == "/undo":
                last = st.decisions.undo()
                back = st.index_of(last.kg1, last.kg2) if last is not None else None
                return self._redirect(back if back is not None else st.first_open())
        self._text(HTTPStatus.NOT_FOUND, "not found")


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/?token={self.RequestHandlerClass.state.token}"


def make_server(state: ReviewState, host: str = "127.0.0.1", port: int = 0) -> ReviewServer:
    """Bind (port 0: a free port) without serving yet; call ``serve_forever()``."""
    handler = type("BoundReviewHandler", (ReviewHandler,), {"state": state})
    server = ReviewServer((host, port), handler)
    real_port = server.server_address[1]
    names = {host, "127.0.0.1", "localhost", "[::1]"}
    state.hosts = {f"{h}:{real_port}" for h in names} if host in ("127.0.0.1", "localhost", "::1") else set()
    return server


def open_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser when there is one; never a console browser (it would take the terminal)."""
    import sys
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    if type(browser) is webbrowser.GenericBrowser:  # lynx, w3m, www-browser...: they run in the foreground
        return False
    return bool(browser.open(url))
