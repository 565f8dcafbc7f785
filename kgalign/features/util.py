"""Small helpers shared by the featurizers: fingerprints, devices, progress."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def path_identity(path: str | os.PathLike) -> str:
    """Content hash of a file, or of every file in a directory (names + contents)."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(str(f.relative_to(p)).encode("utf-8") + b"\0")
        h.update(sha256_file(f).encode("ascii"))
    return h.hexdigest()


class Fingerprint:
    """Incremental sha256 over parameters, arrays and string lists."""

    def __init__(self, kind: str):
        self.h = hashlib.sha256(kind.encode("utf-8") + b"\0")

    def params(self, obj) -> "Fingerprint":
        self.h.update(json.dumps(obj, sort_keys=True, default=str).encode("utf-8") + b"\0")
        return self

    def array(self, a) -> "Fingerprint":
        a = np.ascontiguousarray(a)
        self.h.update(f"{a.dtype.str}{a.shape}".encode("ascii"))
        self.h.update(a.tobytes())
        return self

    def strings(self, items) -> "Fingerprint":
        for s in items:
            self.h.update(("" if s is None else s).encode("utf-8", "surrogatepass") + b"\x1f")
        self.h.update(b"\0")
        return self

    def hexdigest(self) -> str:
        return self.h.hexdigest()
