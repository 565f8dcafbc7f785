"""Fetch entity images from http(s) URLs and local files into an on-disk cache.

Safety rules (all enforced here, with the stdlib only):

- schemes: ``http``, ``https``, ``file://`` and absolute local paths; anything
  else is refused;
- unless ``allow_private`` is set, a host that resolves to a loopback, private,
  link-local, reserved, multicast or unspecified address is refused, on every
  redirect hop; the connection goes to the checked IP (no DNS rebinding);
- redirects are followed by this module (at most ``max_redirects``);
- responses are streamed and reading stops past ``max_bytes``;
- every source has one total deadline (``total_timeout``, 60 s) covering all its
  attempts, redirects, header and body reads: a server that trickles bytes is
  cut off at the deadline (a watchdog shuts the socket down), not after each read;
- local paths must be regular files (a FIFO or device is refused, never opened
  in a blocking way);
- connection errors, timeouts, 5xx and 429 are retried with exponential
  backoff (within the deadline); other 4xx are final;
- the body must be an image: content type ``image/*`` (or a generic binary
  type) and Pillow must open and ``verify()`` it within ``max_pixels``.

The cache is keyed by URL: ``CACHE/images/ab/<sha256(url)>.bin`` holds the
bytes and ``<sha256(url)>.json`` the metadata, written last, so a present JSON
means a complete entry. A re-run downloads nothing that is cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import ipaddress
import json
import os
import socket
import ssl
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from kgalign import __version__
from kgalign.fsutil import atomic_write_bytes, atomic_write_text, describe_mode, remove_stale

USER_AGENT = f"kgalign/{__version__} (entity image fetcher)"
GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream")


@dataclass
class FetchConfig:
    """Limits for one fetch run. ``timeout`` is the connect/read inactivity limit
    in seconds; ``total_timeout`` bounds everything done for one source (all attempts,
    redirects and backoff waits included)."""

    timeout: float = 10.0
    total_timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5  # first retry delay; doubles each time, capped at 8 s
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    max_pixels: int | None = None  # None: Pillow's Image.MAX_IMAGE_PIXELS
    allow_private: bool = False
    # exceptions to the private-address rule, e.g. ("10.1.2.0/24",) for an internal mirror
    allowed_networks: tuple[str, ...] = ()
    workers: int = 16
    ca_file: str | None = None  # extra trusted CA certificates (PEM) for https


@dataclass
class FetchResult:
    """Outcome for one source. ``path`` is the cached (or local) file on success."""

    source: str
    ok: bool
    reason: str = ""
    path: str | None = None
    sha256: str | None = None  # of the content
    content_type: str | None = None
    size: int = 0
    width: int = 0
    height: int = 0
    from_cache: bool = False
    attempts: int = 0
    final_url: str | None = None


class FetchError(Exception):
    """A final failure for one source; ``retry`` marks transient ones."""

    def __init__(self, reason: str, retry: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


# ---- cache -------------------------------------------------------------------


class ImageCache:
    """Bytes + JSON metadata per URL under ``root/images``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "images"
        # temporaries go to one folder, so leftovers of a killed run are found without walking the cache
        self.tmp = self.root / ".tmp"
        remove_stale(self.tmp)

    def _paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()
        d = self.root / key[:2]
        return d / f"{key}.bin", d / f"{key}.json"

    def get(self, url: str) -> dict | None:
        data_p, meta_p = self._paths(url)
        if not meta_p.is_file() or not data_p.is_file():
            return None
        try:
            meta = json.loads(meta_p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("size") != data_p.stat().st_size:
            return None
        meta["path"] = str(data_p)
        return meta

    def put(self, url: str, data: bytes, meta: dict) -> str:
        data_p, meta_p = self._paths(url)
        atomic_write_bytes(data_p, data, tmp_dir=self.tmp)
        atomic_write_text(meta_p, json.dumps(meta, sort_keys=True) + "\n", tmp_dir=self.tmp)
        return str(data_p)


# ---- address checks ------------------------------------------------------------


def address_problem(ip: str) -> str | None:
    """Why ``ip`` may not be contacted without --allow-private-addresses, or None."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for attr, label in (
        ("is_loopback", "loopback"),
        ("is_unspecified", "unspecified"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(addr, attr):
            return f"{label} address {addr}"
    return None


def _getaddrinfo(host: str, port: int, limit: float | None):
    """``socket.getaddrinfo`` within ``limit`` seconds: the system resolver has no timeout of its own,
    so it runs in a daemon thread that is abandoned when the limit passes."""
    if limit is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    box: dict = {}

    def look_up():
        try:
            box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=look_up, name="kgalign-resolve", daemon=True)
    t.start()
    t.join(max(0.0, limit))
    if t.is_alive():
        raise FetchError(f"timed out resolving host {host!r}")
    if "error" in box:
        raise box["error"]
    return box["infos"]


def resolve_checked(host: str, port: int, cfg: FetchConfig, limit: float | None = None) -> list[str]:
    """Resolve ``host`` (within ``limit`` seconds) and return the IPs to connect to; refuse private ones."""
    try:
        infos = _getaddrinfo(host, port, limit)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc.strerror or exc}", retry=exc.errno == socket.EAI_AGAIN) from None
    ips = []
    for info in infos:
        ip = info[4][0]
        if ip not in ips:
            ips.append(ip)
    if not ips:
        raise FetchError(f"cannot resolve host {host!r}")
    if not cfg.allow_private:
        nets = [ipaddress.ip_network(n, strict=False) for n in cfg.allowed_networks]
        for ip in ips:  # refuse if any answer is private: a rebinding host may mix them
            why = address_problem(ip)
            if why and not any(ipaddress.ip_address(ip.split("%", 1)[0]) in n for n in nets):
                raise FetchError(f"refused: host {host!r} resolves to {why} (use --allow-private-addresses to allow)")
    return ips


def _connect_first(ips: list[str], port: int, timeout: float) -> socket.socket:
    """Connect to the first reachable of the checked IPs (never re-resolves the name)."""
    last: OSError | None = None
    for ip in ips:
        try:
            return socket.create_connection((ip, port), timeout)
        except OSError as exc:
            last = exc
    raise last if last else OSError("no address")


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP connection to pre-resolved, checked IPs; the Host header keeps the name."""

    def __init__(self, host, port, ips, timeout, context=None):
        super().__init__(host, port, timeout=timeout)
        self._ips = ips

    def connect(self):
        self.sock = _connect_first(self._ips, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to pre-resolved, checked IPs; the certificate is checked against the host name."""

    def __init__(self, host, port, ips, timeout, context=None):
        super().__init__(host, port, timeout=timeout, context=context or ssl.create_default_context())
        self._ips = ips

    def connect(self):
        sock = _connect_first(self._ips, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _tls_context(cfg: FetchConfig) -> ssl.SSLContext:
    # system trust store, plus an extra CA bundle for internal mirrors
    ctx = ssl.create_default_context()
    if cfg.ca_file:
        ctx.load_verify_locations(cafile=cfg.ca_file)
    return ctx


# ---- one source ------------------------------------------------------------------


def is_local(source: str) -> bool:
    return source.startswith("/") or source.lower().startswith("file:")


def _check_image(data: bytes, cfg: FetchConfig) -> tuple[int, int, str]:
    """Open and verify with Pillow; return (width, height, format)."""
    from PIL import Image

    limit = cfg.max_pixels if cfg.max_pixels is not None else Image.MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            fmt = im.format or "?"
            if limit is not None and w * h > limit:
                raise FetchError(f"image too large: {w}x{h} pixels exceeds the limit of {limit} (decompression bomb check)")
            im.verify()
    except FetchError:
        raise
    except Image.DecompressionBombError as exc:
        raise FetchError(f"image too large: {exc}") from None
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise FetchError(f"cannot decode image: {type(exc).__name__}: {exc}") from None
    return w, h, fmt


def _read_local(source: str, cfg: FetchConfig) -> tuple[bytes, str]:
    path = unquote(urlsplit(source).path) if source.lower().startswith("file:") else source
    if not os.path.isabs(path):
        raise FetchError(f"local image path must be absolute: {path!r}")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FetchError(f"local file not found: {path}") from None
    except PermissionError:
        raise FetchError(f"local file not readable: {path}") from None
    except OSError as exc:
        raise FetchError(f"cannot open local file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FetchError(f"local path is {describe_mode(st.st_mode)}, not a regular file: {path}")
        if st.st_size > cfg.max_bytes:
            raise FetchError(f"too large: {st.st_size} bytes exceeds --max-bytes {cfg.max_bytes}")
        os.set_blocking(fd, True)
        try:
            data = f.read(cfg.max_bytes + 1)
        except OSError as exc:
            raise FetchError(f"cannot read local file {path}: {exc.strerror or exc}") from None
    if len(data) > cfg.max_bytes:
        raise FetchError(f"too large: more than --max-bytes {cfg.max_bytes} bytes")
    return data, path


class _Deadline:
    """The total time left for one source; :meth:`watch` cuts a connection off when it runs out."""

    def __init__(self, seconds: float, stop: threading.Event | None = None):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.stop = stop
        self.expired = False

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise FetchError("interrupted")
        if self.left() <= 0:
            self.expired = True
            raise FetchError(f"timed out: not complete within the total limit of {self.seconds:g} s", retry=False)

    @contextlib.contextmanager
    def watch(self, conn: http.client.HTTPConnection):
        """Shut the socket down at the deadline (or on interruption): a blocked read returns at once."""

        def cut():
            self.expired = self.left() <= 0
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        done = threading.Event()

        def guard():
            # wake ten times a second: a Ctrl-C (stop) must not wait for the deadline
            while not done.wait(min(0.1, max(0.0, self.left()))):
                if self.left() <= 0 or (self.stop is not None and self.stop.is_set()):
                    cut()
                    return

        watcher = threading.Thread(target=guard, name="kgalign-fetch-deadline", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()


def _connection(url: str, cfg: FetchConfig, deadline: _Deadline) -> tuple[http.client.HTTPConnection, str]:
    """A connection to the checked address of ``url`` and the request target."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"refused: redirect to unsupported scheme {scheme!r} ({url})")
    host = parts.hostname
    if not host:
        raise FetchError(f"URL has no host: {url}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"invalid port in URL: {url}") from None
    ips = resolve_checked(host, port, cfg, deadline.left())
    timeout = max(0.01, min(cfg.timeout, deadline.left()))
    if scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPS(host, port, ips, timeout, _tls_context(cfg))
    else:
        conn = _PinnedHTTP(host, port, ips, timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return conn, target


def _check_response(resp: http.client.HTTPResponse, cfg: FetchConfig) -> str:
    """Status and headers of a final (non-redirect) response; returns the content type."""
    status = resp.status
    if status == 429 or status >= 500:
        raise FetchError(f"HTTP {status} {resp.reason}", retry=True)
    if status != 200:
        raise FetchError(f"HTTP {status} {resp.reason}")
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith("image/") and ctype not in GENERIC_TYPES:
        raise FetchError(f"not an image: content type {ctype!r}")
    length = resp.getheader("Content-Length")
    if length and length.isdigit() and int(length) > cfg.max_bytes:
        raise FetchError(f"too large: Content-Length {length} exceeds --max-bytes {cfg.max_bytes}")
    return ctype


def _read_body(resp: http.client.HTTPResponse, cfg: FetchConfig, deadline: _Deadline) -> bytes:
    chunks, total = [], 0
    while True:
        deadline.check()
        chunk = resp.read1(min(65536, cfg.max_bytes + 1 - total))  # what has arrived, not a full block
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > cfg.max_bytes:
            raise FetchError(f"too large: more than --max-bytes {cfg.max_bytes} bytes")
    deadline.check()
    return b"".join(chunks)


def _http_once(url: str, cfg: FetchConfig, deadline: _Deadline | None = None) -> tuple[bytes, str, str]:
    """One attempt with manual redirects, within ``deadline``. Returns (body, content type, final URL)."""
    deadline = deadline or _Deadline(cfg.total_timeout)
    for _hop in range(cfg.max_redirects + 1):
        deadline.check()
        conn, target = _connection(url, cfg, deadline)
        try:
            with deadline.watch(conn):
                conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"})
                resp = conn.getresponse()
                if resp.status in (301, 302, 303, 307, 308):
                    loc = resp.getheader("Location")
                    if not loc:
                        raise FetchError(f"HTTP {resp.status} redirect without Location")
                    url = urljoin(url, loc)
                    continue
                ctype = _check_response(resp, cfg)
                return _read_body(resp, cfg, deadline), ctype, url
        except FetchError:
            raise
        except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as exc:
            raise _network_error(exc, cfg, deadline) from None
        finally:
            conn.close()
    raise FetchError(f"too many redirects (more than {cfg.max_redirects})")


def _network_error(exc: Exception, cfg: FetchConfig, deadline: _Deadline) -> FetchError:
    if deadline.expired or deadline.left() <= 0:
        deadline.expired = True
        return FetchError(f"timed out: not complete within the total limit of {deadline.seconds:g} s")
    if deadline.stop is not None and deadline.stop.is_set():
        return FetchError("interrupted")
    if isinstance(exc, socket.timeout):
        return FetchError(f"timed out after {cfg.timeout:g} s", retry=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FetchError(f"TLS certificate error: {exc.verify_message or exc}")
    return FetchError(f"connection error: {type(exc).__name__}: {exc}", retry=True)


def _download(source: str, cfg: FetchConfig, res: FetchResult, stop: threading.Event | None) -> tuple[bytes, str, str]:
    """Attempts with backoff, all within one total deadline."""
    deadline = _Deadline(cfg.total_timeout, stop)
    delay = cfg.backoff
    while True:
        res.attempts += 1
        try:
            return _http_once(source, cfg, deadline)
        except FetchError as exc:
            if not exc.retry or res.attempts > cfg.retries or deadline.left() <= min(delay, 8.0):
                if exc.retry and res.attempts > 1:
                    exc.reason += f" (after {res.attempts} attempts)"
                raise
        wait = min(delay, 8.0)
        if stop is not None and stop.wait(wait):
            raise FetchError("interrupted")
        if stop is None:
            time.sleep(wait)
        delay *= 2


def fetch_one(source: str, cfg: FetchConfig, cache: ImageCache | None, stop: threading.Event | None = None) -> FetchResult:
    """Fetch, check and cache one image source. Never raises for bad sources."""
    res = FetchResult(source=source, ok=False)
    try:
        if is_local(source):
            data, path = _read_local(source, cfg)
            w, h, fmt = _check_image(data, cfg)
            res.path, res.content_type = path, f"image/{fmt.lower()}"
        else:
            scheme = urlsplit(source).scheme.lower()
            if scheme not in ("http", "https"):
                if not scheme:
                    raise FetchError("refused: not a URL or an absolute local path")
                raise FetchError(f"refused: unsupported scheme {scheme!r} (only http, https and local files)")
            hit = cache.get(source) if cache is not None else None
            if hit is not None:
                res.ok, res.from_cache = True, True
                for k in ("path", "sha256", "content_type", "size", "width", "height", "final_url"):
                    setattr(res, k, hit.get(k))
                return res
            data, ctype, final = _download(source, cfg, res, stop)
            w, h, fmt = _check_image(data, cfg)
            res.content_type, res.final_url = ctype or f"image/{fmt.lower()}", final
        res.sha256 = hashlib.sha256(data).hexdigest()
        res.size, res.width, res.height = len(data), w, h
        if not is_local(source) and cache is not None:
            meta = {k: getattr(res, k) for k in ("sha256", "content_type", "size", "width", "height", "final_url")}
            meta["url"] = source
            meta["fetched_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            res.path = cache.put(source, data, meta)
        elif not is_local(source):
            res.path = None
        res.ok = True
    except FetchError as exc:
        res.reason = exc.reason
    return res


def fetch_all(sources: list[str], cfg: FetchConfig, cache: ImageCache | None, progress=None) -> dict[str, FetchResult]:
    """Fetch distinct ``sources`` concurrently. ``progress(done, total)`` is called per result.

    Ctrl-C stops at once: queued sources are dropped, running downloads are cut off
    (their sockets shut down), and nothing is waited for; finished ones are cached.
    """
    unique = list(dict.fromkeys(sources))
    out: dict[str, FetchResult] = {}
    if not unique:
        return out
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, cfg.workers), thread_name_prefix="kgalign-fetch")
    try:
        futs = {pool.submit(fetch_one, s, cfg, cache, stop): s for s in unique}
        for fut in as_completed(futs):
            out[futs[fut]] = fut.result()
            if progress is not None:
                progress(len(out), len(unique))
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return out


def result_dict(res: FetchResult) -> dict:
    return asdict(res)
