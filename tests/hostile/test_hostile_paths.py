"""Odd output paths: read-only, /proc, dangling symlinks, directories, FIFOs, devices, a full disk."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import ingest_args, kg, kg_proc, no_temporaries, refused

from kgalign.errors import InputError
from kgalign.fsutil import atomic_path, check_output_dir, check_output_file, write_output

IS_ROOT = os.geteuid() == 0


def odd_file_targets(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Output file paths that cannot be written, and the word the message must contain."""
    dangling = tmp / "dangling.out"
    dangling.symlink_to(tmp / "nowhere" / "target.out")
    a_file = tmp / "a-file"
    a_file.write_text("x", encoding="utf-8")
    targets = {
        "proc": (Path("/proc/kgalign-test/out.tsv"), "/proc"),
        "dangling symlink": (dangling, "symbolic link"),
        "directory": (tmp, "directory"),
        "under a file": (a_file / "out.tsv", "not a directory"),
    }
    if not IS_ROOT:  # root ignores permission bits; /proc above covers an unwritable place for root
        ro = tmp / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        targets["read-only"] = (ro / "out.tsv", "cannot write")
    return targets


def test_export_and_align_refuse_unusable_output_paths(tmp_path, run_dir):
    for what, (target, word) in odd_file_targets(tmp_path).items():
        before = sorted(os.listdir(tmp_path))
        for args in (["export", run_dir, "--format", "nt", "-o", target], ["align", run_dir, "-o", target]):
            line = refused(kg(*args), 2, target)
            assert word in line, (what, line)
        assert sorted(os.listdir(tmp_path)) == before, what  # nothing created, no sidecar
    no_temporaries(tmp_path)


def test_ingest_and_train_refuse_unusable_output_directories(tmp_path, graphs, dataset_dir):
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for target, word in ((a_file, "not a directory"), (Path("/proc/kgalign-test/ds"), "/proc"), (dangling, "symbolic link")):
        refused(kg(*ingest_args(graphs, target, "--force")), 2, target)
        line = refused(kg("train", dataset_dir, "-o", target, "--model", "noco", "--epochs", "1"), 2, target)
        assert word in line, line
    assert a_file.read_text(encoding="utf-8") == "x"
    no_temporaries(tmp_path)


def test_features_checks_the_cache_dir_before_any_work(tmp_path, dataset_dir):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(dataset_dir, ds)
    images = ds / "images.tsv"
    images.write_text("entity\tsource\n0\t/nonexistent/a.png\n", encoding="utf-8")
    _fix_manifest_size(ds, "images.tsv")
    a_file = tmp_path / "cache-file"
    a_file.write_text("x", encoding="utf-8")
    before = (ds / "features" / "manifest.json").read_bytes()
    r = kg("features", ds, "--image-model", "pixels", "--cache-dir", a_file, "--force")
    refused(r, 2, a_file, "cache")
    assert (ds / "features" / "manifest.json").read_bytes() == before  # nothing was recomputed first


def _fix_manifest_size(ds: Path, name: str) -> None:
    """Re-record one file in the dataset manifest (a deliberate edit, not damage)."""
    import json

    from kgalign.data.store import file_record

    m = json.loads((ds / "manifest.json").read_text(encoding="utf-8"))
    m["files"][name] = file_record(ds / name)
    (ds / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


def test_export_to_a_character_device_streams_and_never_replaces_it(tmp_path, run_dir):
    if not (os.path.exists("/dev/null") and os.path.exists("/dev/full")):
        pytest.skip("no /dev/null or /dev/full here")
    r = kg_proc("export", run_dir, "--format", "nt", "-o", "/dev/null")
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not Path("/dev/null.prov.ttl").exists()
    # /dev/full: every write fails with ENOSPC, like a full disk; the device must survive (as root too)
    line = refused(kg_proc("export", run_dir, "--format", "nt", "-o", "/dev/full"), 2, "/dev/full")
    assert "space" in line.lower()
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert not Path("/dev/full.prov.ttl").exists()


def test_export_to_a_fifo_streams_to_its_reader_and_writes_no_sidecar(tmp_path, run_dir):
    fifo = tmp_path / "links.nt"
    os.mkfifo(fifo)
    # no reader: refused at once, not a hang
    refused(kg("export", run_dir, "--format", "nt", "-o", fifo, timeout=30), 2, fifo, "no reader")
    got = {}

    def reader():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    with contextlib.suppress(Exception):
        threading.Event().wait(0.2)  # let the reader open its end
    r = kg_proc("export", run_dir, "--format", "nt", "-o", fifo, timeout=60)
    t.join(10)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got["data"].count(b"\n") > 0 and b"owl#sameAs" in got["data"]
    assert sorted(os.listdir(tmp_path)) == ["links.nt"]  # no .prov.ttl beside a FIFO


def test_predictions_fifo_is_refused_not_waited_on(tmp_path, run_dir):
    fifo = tmp_path / "pred.tsv"
    os.mkfifo(fifo)
    refused(kg("export", "--predictions", fifo, "--format", "tsv", timeout=30), 2, fifo, "FIFO")


# ---- a full disk: a real small tmpfs when it can be mounted, and a fault-injecting writer ----


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "64k"):
    where.mkdir()
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_export_to_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, run_dir):
    with small_tmpfs(tmp_path / "small", "16k") as disk:
        out = disk / "links.jsonl"
        out.write_text("previous content\n", encoding="utf-8")
        big = tmp_path / "big-predictions.tsv"
        rows = "".join(f"http://a.org/{'x' * 200}{i}\thttp://b.org/{i}\t0.9\taccepted\n" for i in range(400))
        big.write_text("kg1\tkg2\tscore\tstatus\n" + rows, encoding="utf-8")
        line = refused(kg_proc("export", "--predictions", big, "--format", "jsonl", "-o", out, "--no-provenance"), 2, out)
        assert "space" in line.lower()
        assert out.read_text(encoding="utf-8") == "previous content\n"
        assert sorted(os.listdir(disk)) == ["links.jsonl"]


def test_a_failing_writer_leaves_the_target_untouched(tmp_path):
    """Fault injection: the chunks fail half-way with ENOSPC (what a full disk does to write())."""
    out = tmp_path / "out.tsv"
    out.write_text("old\n", encoding="utf-8")

    def chunks():
        yield "new line\n" * 1000
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(InputError, match="No space left"):
        write_output(out, chunks())
    assert out.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["out.tsv"]


def test_atomic_writes_refuse_non_regular_targets_and_follow_links(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        with atomic_path(fifo):
            pass
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    real = tmp_path / "real.txt"
    real.write_text("a", encoding="utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_path(link) as tmp:
        tmp.write_text("b", encoding="utf-8")
    assert link.is_symlink() and real.read_text(encoding="utf-8") == "b"
    assert check_output_file(fifo) == "stream" and check_output_file("/dev/null") == "stream"
    with pytest.raises(InputError, match="directory"):
        check_output_file(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        check_output_dir(real)


def test_ingest_onto_a_full_disk_leaves_nothing(tmp_path):
    from conftest import write_graphs

    p = write_graphs(tmp_path / "in", n=3000)
    with small_tmpfs(tmp_path / "small", "32k") as disk:
        line = refused(kg(*ingest_args(p, disk / "ds")), 2, disk)
        assert "space" in line.lower()
        assert os.listdir(disk) == []
