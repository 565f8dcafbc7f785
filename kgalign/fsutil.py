"""Safe output: atomic writes of regular files, checked output paths, stale temporaries.

Every writer in kgalign goes through these helpers so that an error or an
interruption never leaves a half-written file where a user expects output.

- Regular files (and new paths) are written to a temporary beside the target,
  then renamed onto it. Temporaries are named ``.NAME.PID-HOST-XXXXXXXX.tmp``:
  the process id (and a tag of the host it runs on) lets a later run remove the
  leftovers of a killed one (:func:`remove_stale`) without touching those of a
  run still going, here or on another machine sharing the folder.
- Anything else is never replaced: a FIFO or a character device (``/dev/null``,
  ``/dev/stdout``) is written in place (:func:`open_output`), and a directory, a
  block device, a socket or a dangling symbolic link is refused with one message.
- :func:`check_output_file` / :func:`check_output_dir` check a path up front,
  before any work, by creating (and removing) a probe file where the output will go.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator, TextIO

from kgalign.errors import InputError


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


# mkstemp creates 0600 files; outputs should get the usual permissions instead.
_FILE_MODE = 0o666 & ~_umask()
# mkstemp's random part: 8 characters of this alphabet
_RAND = r"[a-z0-9_]{8}"


# which machine (and pid namespace) a temporary's pid belongs to: a cache may be shared over NFS or by containers
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
# a temporary whose pid cannot be checked here (another host, or an older kgalign) is stale after this long
FOREIGN_STALE_S = 3600.0


def _tmp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}-{_HOST}-"


def _stale_pattern(name: str | None) -> re.Pattern:
    body = re.escape(name) if name is not None else r".+"
    return re.compile(rf"^\.{body}\.(?:(\d+)-([0-9a-f]{{6}})-)?{_RAND}\.(?:tmp|old)$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(m: re.Match, entry: os.DirEntry) -> bool:
    pid, host = m.group(1), m.group(2)
    if pid is not None and host == _HOST:
        return not _pid_alive(int(pid))
    try:  # another machine's writer, or a name without a pid (earlier versions): go by age
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_STALE_S
    except OSError:
        return False


def remove_stale(directory: str | os.PathLike, name: str | None = None) -> int:
    """Remove kgalign temporaries in ``directory`` left by processes that are gone.

    A temporary is stale when its writer (pid, on this host) no longer runs; one written on
    another host, or without a pid, when it is older than ``FOREIGN_STALE_S``.
    ``name``: only those of one target name (``.NAME.*.tmp``); None: any target.
    Returns how many entries were removed. Never raises for a missing directory.
    """
    pattern = _stale_pattern(name)
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or not _is_stale(m, entry):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            pass  # someone else removed it, or we may not: not our problem to report
    return removed


# ---- what a path is ----------------------------------------------------------------


def describe_mode(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISFIFO, "a FIFO"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def resolve_target(path: str | os.PathLike) -> Path:
    """``path`` with symbolic links followed (so a link to a file keeps pointing at the new file).

    A dangling link is refused: writing through it would create a file the user did not name.
    """
    p = Path(path)
    if p.is_symlink():
        real = Path(os.path.realpath(p))
        if not real.exists():
            raise InputError(f"is a dangling symbolic link (to {os.readlink(p)}); remove it or name another path", str(p))
        return real
    return p


def _nearest_existing(p: Path) -> Path:
    q = p.parent
    while not os.path.lexists(q) and q != q.parent:
        q = q.parent
    return q


def _probe_dir(directory: Path, label: str) -> None:
    """Create and remove a file in ``directory``: the only reliable writability test (root, read-only mounts, /proc)."""
    if not directory.is_dir():
        raise InputError(f"cannot create it: {directory} is not a directory", label)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix("kgalign-probe"), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write in {directory}: {exc.strerror or exc}", label) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _check_name(p: Path, label: str) -> None:
    # the temporary beside it adds ~30 characters to the name; most file systems allow 255 bytes
    if len(p.name.encode("utf-8", "surrogateescape")) > 255 - 32:
        raise InputError("file name too long (temporaries beside it need 32 more bytes of the 255 allowed)", label)


def check_output_file(path: str | os.PathLike, what: str = "output") -> str:
    """Check an output file path before any work. Returns ``"file"`` (written atomically)
    or ``"stream"`` (a FIFO or character device, written in place; no sidecar files).

    Raises InputError (exit 2) naming the path for a directory, a block device, a socket,
    a dangling symbolic link, or a folder where nothing can be created.
    """
    label = str(path)
    p = resolve_target(path)
    _check_name(p, label)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        raise InputError(f"cannot use it as {what}: {exc.strerror or exc}", label) from None
    if st is not None:
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            return "stream"
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"is {describe_mode(st.st_mode)}; {what} must be a file path", label)
        _probe_dir(p.parent, label)
        return "file"
    _probe_dir(_nearest_existing(p), label)
    return "file"


def check_output_dir(path: str | os.PathLike, what: str = "output directory") -> None:
    """Check a directory that will be created (or replaced) before any work."""
    label = str(path)
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise InputError(f"is a dangling symbolic link (to {os.readlink(p)}); remove it or name another path", label)
    _check_name(p, label)
    if p.exists():
        if not p.is_dir():
            raise InputError(f"exists and is not a directory; {what} must be a directory path", label)
        _probe_dir(p, label)  # files are written inside (resume) ...
        _probe_dir(p.resolve().parent, label)  # ... or the directory is replaced beside itself (--force)
        return
    _probe_dir(_nearest_existing(p), label)


# ---- writing -------------------------------------------------------------------------


def _refuse_non_regular(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"is {describe_mode(st.st_mode)}; only regular files are written atomically", str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary file path; rename it onto ``path`` on success.

    The temporary lies beside ``path`` (or in ``tmp_dir``, on the same file system).
    On any exception it is removed and ``path`` is untouched. A ``path`` that exists
    and is not a regular file is refused (never replaced); a symbolic link is followed.
    """
    path = resolve_target(path)
    _refuse_non_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    where = Path(tmp_dir) if tmp_dir is not None else path.parent
    where.mkdir(parents=True, exist_ok=True)
    remove_stale(where, path.name)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=where)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str, tmp_dir: str | os.PathLike | None = None) -> None:
    with atomic_path(path, tmp_dir) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, tmp_dir: str | os.PathLike | None = None) -> None:
    with atomic_path(path, tmp_dir) as tmp:
        tmp.write_bytes(data)


def _open_stream(path: Path, label: str) -> TextIO:
    """Open a FIFO or character device for writing without blocking on a FIFO that has no reader."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise InputError("is a FIFO with no reader; start the reader first", label) from None
        raise InputError(f"cannot open it for writing: {exc.strerror or exc}", label) from None
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return os.fdopen(fd, "w", encoding="utf-8", newline="\n")


def write_output(path: str | os.PathLike, chunks) -> str:
    """Write text ``chunks`` to ``path``: atomically for a regular file, in place for a
    FIFO or character device. Returns the kind (``"file"`` or ``"stream"``).

    A write error (disk full, device error) is one InputError naming the path; nothing
    half-written is left at a regular-file target.
    """
    label = str(path)
    kind = check_output_file(path)
    try:
        if kind == "stream":
            with _open_stream(resolve_target(path), label) as f:
                for c in chunks:
                    f.write(c)
            return kind
        with atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                for c in chunks:
                    f.write(c)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", label) from None
    return kind


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; move it to ``path`` on success.

    With ``overwrite`` an existing directory is replaced only after the new one
    is complete; without it an existing ``path`` raises FileExistsError up front.
    """
    path = Path(path)
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists (use --force to replace it)")
    if path.exists() and not path.is_dir():
        raise InputError("exists and is not a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path.name), suffix=".old", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- reading -------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"


def read_text_file(path: str | os.PathLike, what: str = "text file") -> str:
    """A small-to-medium UTF-8 text file as one string (a leading BOM dropped).

    Refuses, with one InputError naming the file (and line): a FIFO, device or
    directory (reading one could block forever), a binary file, invalid UTF-8.
    """
    from kgalign.errors import MissingResourceError

    label = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang the open
    except FileNotFoundError:
        raise MissingResourceError(f"{label}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror or exc}", label) from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"is {describe_mode(mode)}, expected a {what}", label)
        try:
            data = f.read()
        except OSError as exc:
            raise InputError(f"cannot read it: {exc.strerror or exc}", label) from None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    head = data[:65536]
    nul = head.count(b"\x00")
    if nul > 8 and nul * 100 > len(head):  # text may hold a stray NUL; binary data (or UTF-16) holds many
        raise InputError(f"is a binary file (it holds NUL bytes), expected a {what}", label)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not valid UTF-8 ({exc.reason} at byte {exc.start}); expected a {what}", label, line) from None
