"""Image fetching against a real HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from kgalign.features.images_fetch import FetchConfig, ImageCache, address_problem, fetch_all, fetch_one


def png_bytes(size=(24, 16), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size=(32, 20), color=(20, 120, 220)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class ImageServer:
    """A threaded http.server on 127.0.0.1 with image, error and trap routes.

    ``hits[path]`` counts requests per path; ``flaky[path] = k`` makes a path
    answer ``status`` k times before succeeding.
    """

    def __init__(self, tls: tuple[str, str] | None = None):
        self.hits: dict[str, int] = {}
        self.hosts: list[str] = []
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.flaky: dict[str, tuple[int, int]] = {}
        self.slow: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path
                outer.hits[path] = outer.hits.get(path, 0) + 1
                outer.hosts.append(self.headers.get("Host", ""))
                if path in outer.slow:
                    time.sleep(outer.slow[path])
                if path in outer.flaky:
                    status, left = outer.flaky[path]
                    if left > 0:
                        outer.flaky[path] = (status, left - 1)
                        self.send_response(status)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if path not in outer.routes:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, headers, body = outer.routes[path]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers and not headers.get("_no_length"):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.scheme = "http"
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def add(self, path, body=b"", ctype="image/png", status=200, **headers):
        h = {"Content-Type": ctype} if ctype else {}
        h.update(headers)
        self.routes[path] = (status, h, body)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = ImageServer()
    s.add("/red.png", png_bytes())
    s.add("/photo.jpg", jpeg_bytes(), ctype="image/jpeg")
    yield s
    s.close()


def local_cfg(**kw) -> FetchConfig:
    """Config for the test server: private addresses allowed, quick retries."""
    base = dict(allow_private=True, timeout=2.0, retries=2, backoff=0.01, workers=4)
    base.update(kw)
    return FetchConfig(**base)


def test_fetch_png_and_jpeg_and_cache_reuse(server, tmp_path):
    cache = ImageCache(tmp_path / "cache")
    urls = [server.url("/red.png"), server.url("/photo.jpg")]
    res = fetch_all(urls + urls, local_cfg(), cache)  # duplicates fetched once
    assert set(res) == set(urls)
    png, jpg = res[urls[0]], res[urls[1]]
    assert png.ok and jpg.ok, (png.reason, jpg.reason)
    assert (png.width, png.height) == (24, 16) and png.content_type == "image/png"
    assert (jpg.width, jpg.height) == (32, 20) and jpg.content_type == "image/jpeg"
    assert open(png.path, "rb").read() == png_bytes()
    meta = json.loads(open(png.path[:-4] + ".json").read())
    assert meta["url"] == urls[0] and meta["size"] == len(png_bytes())
    assert server.hits == {"/red.png": 1, "/photo.jpg": 1}
    # a re-run downloads nothing
    again = fetch_all(urls, local_cfg(), cache)
    assert all(r.ok and r.from_cache for r in again.values())
    assert again[urls[0]].sha256 == png.sha256
    assert server.hits == {"/red.png": 1, "/photo.jpg": 1}


def test_loopback_refused_without_allow_private(server, tmp_path):
    r = fetch_one(server.url("/red.png"), FetchConfig(retries=0), ImageCache(tmp_path))
    assert not r.ok
    assert "loopback" in r.reason and "127.0.0.1" in r.reason and "--allow-private-addresses" in r.reason
    assert server.hits == {}  # refused before connecting


def test_redirect_to_private_address_refused_on_every_hop(server, tmp_path):
    server.add("/to-metadata", b"", ctype=None, status=302, Location="http://169.254.169.254/latest/meta-data/")
    server.add("/to-private", b"", ctype=None, status=301, Location="http://10.1.2.3/x.png")
    server.add("/to-ok", b"", ctype=None, status=302, Location="/red.png")
    # the test server itself is exempted; nothing else private is
    cfg = FetchConfig(allowed_networks=("127.0.0.1/32",), retries=0, timeout=2.0)
    cache = ImageCache(tmp_path)
    r = fetch_one(server.url("/to-metadata"), cfg, cache)
    assert not r.ok and "link-local" in r.reason and "169.254.169.254" in r.reason
    r = fetch_one(server.url("/to-private"), cfg, cache)
    assert not r.ok and "private address 10.1.2.3" in r.reason
    r = fetch_one(server.url("/to-ok"), cfg, cache)
    assert r.ok and r.final_url == server.url("/red.png")


def test_redirect_loop_and_scheme_change(server, tmp_path):
    server.add("/loop", b"", ctype=None, status=302, Location="/loop")
    server.add("/to-file", b"", ctype=None, status=302, Location="file:///etc/passwd")
    cfg = local_cfg(max_redirects=3)
    r = fetch_one(server.url("/loop"), cfg, ImageCache(tmp_path))
    assert not r.ok and "too many redirects" in r.reason
    assert server.hits["/loop"] == 4
    r = fetch_one(server.url("/to-file"), cfg, ImageCache(tmp_path))
    assert not r.ok and "unsupported scheme 'file'" in r.reason


def test_404_not_retried_500_then_success_retried(server, tmp_path):
    cache = ImageCache(tmp_path)
    r = fetch_one(server.url("/missing.png"), local_cfg(retries=3), cache)
    assert not r.ok and r.reason.startswith("HTTP 404")
    assert server.hits["/missing.png"] == 1
    server.add("/flaky.png", png_bytes((5, 5)))
    server.flaky["/flaky.png"] = (500, 2)
    r = fetch_one(server.url("/flaky.png"), local_cfg(retries=3), cache)
    assert r.ok and r.attempts == 3 and server.hits["/flaky.png"] == 3
    server.add("/busy.png", png_bytes((6, 6)))
    server.flaky["/busy.png"] = (429, 1)
    assert fetch_one(server.url("/busy.png"), local_cfg(), cache).ok
    server.add("/down.png", png_bytes())
    server.flaky["/down.png"] = (503, 10)
    r = fetch_one(server.url("/down.png"), local_cfg(retries=2), cache)
    assert not r.ok and "HTTP 503" in r.reason and "after 3 attempts" in r.reason
    assert server.hits["/down.png"] == 3


def test_slow_response_times_out(server, tmp_path):
    server.add("/slow.png", png_bytes())
    server.slow["/slow.png"] = 1.5
    t = time.monotonic()
    r = fetch_one(server.url("/slow.png"), local_cfg(timeout=0.3, retries=0), ImageCache(tmp_path))
    assert not r.ok and "timed out" in r.reason
    assert time.monotonic() - t < 1.4


def test_oversized_with_and_without_content_length(server, tmp_path):
    big = png_bytes((400, 400), (1, 2, 3)) + b"\0" * 60000
    server.add("/big.png", big)
    server.add("/big-stream.png", big, _no_length="1")
    cfg = local_cfg(max_bytes=50000)
    r = fetch_one(server.url("/big.png"), cfg, ImageCache(tmp_path))
    assert not r.ok and "Content-Length" in r.reason and "max-bytes" in r.reason
    r = fetch_one(server.url("/big-stream.png"), cfg, ImageCache(tmp_path))
    assert not r.ok and "more than --max-bytes 50000" in r.reason


def test_corrupt_wrong_type_and_pixel_limit(server, tmp_path):
    server.add("/corrupt.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    server.add("/page.html", b"<html>hi</html>", ctype="text/html; charset=utf-8")
    server.add("/octet.png", png_bytes(), ctype="application/octet-stream")
    server.add("/huge.png", png_bytes((300, 300)))
    cache = ImageCache(tmp_path)
    r = fetch_one(server.url("/corrupt.png"), local_cfg(), cache)
    assert not r.ok and r.reason.startswith("cannot decode image")
    r = fetch_one(server.url("/page.html"), local_cfg(), cache)
    assert not r.ok and "not an image" in r.reason and "text/html" in r.reason
    assert fetch_one(server.url("/octet.png"), local_cfg(), cache).ok
    r = fetch_one(server.url("/huge.png"), local_cfg(max_pixels=300 * 299), cache)
    assert not r.ok and "decompression bomb" in r.reason
    # failures are not cached: nothing for them in the cache
    assert cache.get(server.url("/corrupt.png")) is None


def test_schemes_and_local_files(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(png_bytes((7, 9)))
    cfg = FetchConfig()
    r = fetch_one(str(p), cfg, ImageCache(tmp_path / "c"))
    assert r.ok and (r.width, r.height) == (7, 9) and r.path == str(p) and r.attempts == 0
    assert fetch_one(p.as_uri(), cfg, None).ok
    for src, why in [
        ("ftp://example.org/a.png", "unsupported scheme 'ftp'"),
        ("data:image/png;base64,AAAA", "unsupported scheme 'data'"),
        ("images/a.png", "not a URL or an absolute local path"),
        (str(tmp_path / "nope.png"), "local file not found"),
    ]:
        r = fetch_one(src, cfg, None)
        assert not r.ok and why in r.reason, (src, r.reason)
    assert not (tmp_path / "c").exists()  # local files are read in place, not copied


def test_address_classification():
    assert "loopback" in address_problem("127.0.0.1")
    assert "loopback" in address_problem("::1")
    assert "private" in address_problem("192.168.1.4")
    assert "link-local" in address_problem("169.254.169.254")
    assert "unspecified" in address_problem("0.0.0.0")
    assert "multicast" in address_problem("224.0.0.1")
    assert "loopback" in address_problem("::ffff:127.0.0.1")  # IPv4-mapped
    assert address_problem("93.184.216.34") is None


def test_host_name_kept_when_connecting_to_the_resolved_ip(server, tmp_path):
    url = f"http://localhost:{server.port}/red.png"
    r = fetch_one(url, local_cfg(), ImageCache(tmp_path))
    assert r.ok, r.reason
    assert server.hosts == [f"localhost:{server.port}"]
    r = fetch_one(url, FetchConfig(retries=0), ImageCache(tmp_path / "other"))
    assert not r.ok and "host 'localhost' resolves to loopback address 127.0.0.1" in r.reason


def test_https_certificate_checked(tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    s = ImageServer(tls=(str(cert), str(key)))
    try:
        s.add("/red.png", png_bytes())
        r = fetch_one(s.url("/red.png"), local_cfg(retries=3), ImageCache(tmp_path / "c1"))
        assert not r.ok and "TLS certificate error" in r.reason and r.attempts == 1  # not retried
        r = fetch_one(s.url("/red.png"), local_cfg(ca_file=str(cert)), ImageCache(tmp_path / "c2"))
        assert r.ok and r.content_type == "image/png", r.reason
    finally:
        s.close()
