"""Opening user inputs: paths, ``-`` for stdin, tar members; compression; sha256.

Every input is read once through :class:`HashingReader`, so the manifest's
sha256 is the digest of the bytes as given (compressed files are hashed
compressed) without a second pass.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import select
import stat
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import describe_mode

COMPRESSIONS = {".gz": "gz", ".bz2": "bz2", ".xz": "xz"}
# file extension -> format name used throughout kgalign.data
EXTENSIONS = {
    ".nt": "nt",
    ".ntriples": "nt",
    ".nq": "nq",
    ".nquads": "nq",
    ".ttl": "ttl",
    ".turtle": "ttl",
    ".trig": "trig",
    ".rdf": "xml",
    ".owl": "xml",
    ".xml": "xml",
    ".jsonld": "json-ld",
    ".json": "json-ld",
    ".n3": "n3",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".tab": "tsv",
}
RDF_FORMATS = ("nt", "nq", "ttl", "trig", "xml", "json-ld", "n3")
FORMATS = RDF_FORMATS + ("tsv",)
_MAGIC = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ": "xz"}
_BOM = b"\xef\xbb\xbf"


# how long a FIFO input may wait for its writer (process substitution connects at once)
PIPE_WAIT_S = 60.0


def open_input_file(path: Path, label: str) -> BinaryIO:
    """Open a regular file or a FIFO for reading; refuse anything else with one message.

    A FIFO is opened without blocking and must get a writer within ``PIPE_WAIT_S``;
    devices (``/dev/zero`` never ends), sockets and directories are refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MissingResourceError(f"{label}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror or exc}", label) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            if not poller.poll(int(PIPE_WAIT_S * 1000)):
                raise InputError(f"is a FIFO and nothing wrote to it within {PIPE_WAIT_S:g} s", label)
        elif not stat.S_ISREG(mode):
            raise InputError(f"is {describe_mode(mode)}, expected a file (or a FIFO, or - for stdin)", label)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb", buffering=0)


class HashingReader(io.RawIOBase):
    """A read-only binary stream that updates a sha256 with every byte read."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.nbytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.sha256.update(data)
        self.nbytes += n
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


@dataclass
class Source:
    """One input file. ``label`` is what messages and the manifest name it by."""

    label: str
    opener: Callable[[], BinaryIO] | None = None  # for tar members and in-memory inputs
    format: str | None = None  # explicit format, else from the extension
    info: dict = field(default_factory=dict)  # filled while reading: sha256, bytes

    @classmethod
    def from_arg(cls, arg: str, default_format: str | None = None) -> "Source":
        """``PATH``, ``-`` (stdin) or ``FORMAT:PATH`` (e.g. ``tsv:edges.txt``)."""
        if not arg.strip():
            raise InputError("an input file name is empty")
        fmt = None
        head, sep, rest = arg.partition(":")
        if sep and head.lower() in FORMATS + ("openke",):
            fmt, arg = head.lower(), rest
        if arg == "-":
            return cls("-", opener=lambda: sys.stdin.buffer, format=fmt or default_format)
        return cls(arg, format=fmt, info={"default_format": default_format} if default_format else {})

    @property
    def path(self) -> Path | None:
        return None if self.opener is not None else Path(self.label)

    def compression(self) -> str | None:
        return COMPRESSIONS.get(Path(self.label).suffix.lower())

    def detect_format(self) -> str:
        if self.format:
            return self.format
        name = Path(self.label).name.lower()
        for ext in COMPRESSIONS:
            if name.endswith(ext):
                name = name[: -len(ext)]
        suffix = Path(name).suffix
        if suffix in EXTENSIONS:
            return EXTENSIONS[suffix]
        default = self.info.get("default_format")
        if default:
            return default
        raise InputError(
            f"cannot tell the format from the file name; name it with --format or a prefix like nt:{self.label}",
            self.label,
        )

    def open(self) -> BinaryIO:
        """Open for binary reading, decompressing by extension (or magic bytes for stdin)."""
        if self.opener is not None:
            raw = self.opener()
        else:
            raw = open_input_file(Path(self.label), self.label)
        hashed = HashingReader(raw)
        buffered = io.BufferedReader(hashed, buffer_size=1 << 20)
        comp = self.compression()
        if comp is None and self.opener is not None:
            comp = next((c for m, c in _MAGIC.items() if buffered.peek(len(m))[: len(m)] == m), None)
        self.info["_hash"] = hashed
        if comp == "gz":
            stream = gzip.GzipFile(fileobj=buffered, mode="rb")
        elif comp == "bz2":
            stream = bz2.BZ2File(buffered, mode="rb")
        elif comp == "xz":
            stream = lzma.LZMAFile(buffered, mode="rb")
        else:
            stream = buffered
        return self._skip_bom(stream)  # type: ignore[return-value]

    def _skip_bom(self, stream):
        """Drop a UTF-8 byte order mark at the start, as other RDF and TSV readers do."""
        try:
            if stream.peek(len(_BOM))[: len(_BOM)] == _BOM:
                stream.read(len(_BOM))
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            stream.close()
            raise InputError(f"cannot read the file ({type(exc).__name__}: {exc})", self.label) from None
        return stream

    def finish(self) -> dict:
        """After reading: record sha256 and size of the bytes as given."""
        hashed = self.info.pop("_hash", None)
        if hashed is not None:
            self.info["sha256"] = hashed.sha256.hexdigest()
            self.info["bytes"] = hashed.nbytes
        return self.info

    def manifest_entry(self, role: str, kg: int | None) -> dict:
        entry = {"path": self.label if self.opener is not None else os.path.abspath(self.label), "role": role}
        if kg is not None:
            entry["kg"] = kg
        for key in ("format", "sha256", "bytes", "lines", "records", "skipped"):
            if key in self.info:
                entry[key] = self.info[key]
        return entry


class Problems:
    """Where bad input goes: raised at once (strict) or counted and skipped (lenient)."""

    MAX_EXAMPLES = 5

    def __init__(self, lenient: bool = False):
        self.lenient = lenient
        self.skipped: dict[str, int] = {}
        self.examples: list[str] = []
        self.warnings: list[str] = []

    def bad(self, problem: str, path: str, line: int | None = None) -> None:
        """Report one bad record. Strict: raise InputError. Lenient: count it."""
        err = InputError(problem, path, line)
        if not self.lenient:
            raise err
        self.skipped[path] = self.skipped.get(path, 0) + 1
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append(str(err))

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> dict:
        return {
            "skipped_lines": self.total_skipped,
            "skipped_by_file": dict(self.skipped),
            "first_skipped": list(self.examples),
            "warnings": list(self.warnings),
        }


def read_lines(src: Source, fh: Iterable[bytes], problems: Problems, start: int = 1):
    """Yield ``(lineno, text)`` for each line, without the line end (LF or CRLF).

    ``fh``: a binary file, or any iterable of raw lines numbered from ``start``.
    A line that is not UTF-8 is bad input (raised, or skipped when lenient).
    """
    for lineno, raw in enumerate(fh, start=start):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.bad(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", src.label, lineno)
            continue
        if text.endswith("\n"):
            text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
        yield lineno, text
