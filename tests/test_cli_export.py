"""`kgalign evaluate | align | export` as a user runs them: subprocesses, real pipes, exit codes."""

import json
import shlex
import subprocess
import sys

import pytest
import rdflib
from test_export_helpers import make_run

from kgalign.export.predictions import read_predictions

KG = f"{shlex.quote(sys.executable)} -m kgalign.cli"


def sh(cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run, _, _ = make_run(tmp_path_factory.mktemp("cli"))
    return run


def test_evaluate_table_and_json(run):
    p = sh(f"{KG} evaluate {run}")
    assert p.returncode == 0, p.stderr
    assert "Hits@1" in p.stdout and "csls" in p.stdout and "r2l" in p.stdout
    assert "benchmark protocol" in p.stdout and "split: test" in p.stdout
    from typer.testing import CliRunner

    from kgalign.cli import app

    p = CliRunner().invoke(app, ["evaluate", str(run), "--json", "--split", "valid", "--candidates", "all", "--csls-k", "2"])
    res = json.loads(p.stdout)
    assert res["split"] == "valid" and res["candidates"]["scope"] == "all" and "k=2" in res["protocol"]
    assert set(res["csls"]["r2l"]) == {"hits@1", "hits@5", "hits@10", "mrr", "mr"}


def test_align_then_export_through_a_shell_pipeline(run, tmp_path):
    p = sh(f"{KG} align {run} --threshold 0.0 --json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    table = read_predictions(run / "predictions.tsv")
    assert summary["accepted"] == table.status.count("accepted") > 0
    p = sh(f"{KG} export {run} --format tsv | sort | head -n 5")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 5 and lines == sorted(lines)
    accepted = {f"{a}\t{b}" for a, b, s in zip(table.kg1, table.kg2, table.status, strict=False) if s == "accepted"}
    assert all("\t".join(x.split("\t")[:2]) in accepted or x.startswith("kg1\t") for x in lines)
    # N-Triples on stdout is pure N-Triples
    p = sh(f"{KG} export {run} --format nt --predicate skos:exactMatch > {tmp_path}/l.nt")
    assert p.returncode == 0 and p.stderr == ""
    g = rdflib.Graph()
    g.parse(tmp_path / "l.nt", format="nt")
    assert len(g) == table.status.count("accepted")


def test_export_runs_align_when_predictions_are_missing(tmp_path):
    run, _, _ = make_run(tmp_path)
    out = tmp_path / "links.ttl"
    p = sh(f"{KG} export {run} --format ttl -o {out}")
    assert p.returncode == 0, p.stderr
    assert (run / "predictions.tsv").is_file() and out.is_file() and (tmp_path / "links.ttl.prov.ttl").is_file()
    assert json.loads(p.stderr.strip().splitlines()[-1])["format"] == "ttl"


def test_evaluate_links_file(run, tmp_path):
    from kgalign.export.api import align_run, export_links

    align_run(run, scope="test", strategy="hungarian", output=tmp_path / "p.tsv")
    export_links(predictions=tmp_path / "p.tsv", fmt="nt", output=tmp_path / "p.nt")
    p = sh(f"{KG} evaluate {run} --links {tmp_path}/p.nt --json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["gold"] == 25 and res["precision"] > 0.9 and res["recall"] > 0.8
    from typer.testing import CliRunner

    from kgalign.cli import app

    p = CliRunner().invoke(app, ["evaluate", "--links", f"{tmp_path}/p.tsv", "--dataset", f"{run}/../ds", "--thresholds", "0,0.3,0.6"])
    assert p.exit_code == 0, p.stderr
    assert "threshold" in p.stdout and "gold: test links" in p.stdout


@pytest.mark.parametrize(
    "cmd,code,needle",
    [
        ("evaluate {tmp}/nope", 3, "no such run directory"),
        ("evaluate {run} --split train", 2, "--split"),
        ("align {run} --strategy best -o {tmp}/x.tsv", 2, "strategy must be one of"),
        ("export {run} --format xml", 2, "unknown format"),
        ("export {run} --predicate foo", 2, "predicate"),
        ("export --predictions {tmp}/bad.tsv", 2, "bad.tsv:3: unknown status"),
        ("evaluate --links {tmp}/bad.nt --dataset {run}/../ds", 2, "bad.nt"),
        ("evaluate {run} --device gpu", 2, "--device 'gpu'"),
        ("evaluate {run} --device cuda:99", 3, "--device cuda:99"),
        ("align {run} --device cuda:99 -o {tmp}/x.tsv", 3, "--device cuda:99"),
    ],
)
def test_errors_are_one_line_with_exit_codes(run, tmp_path, cmd, code, needle):
    # in-process (CliRunner) to keep the suite fast; the pipelines above use real subprocesses
    from typer.testing import CliRunner

    from kgalign.cli import app

    (tmp_path / "bad.tsv").write_text("kg1\tkg2\tscore\tstatus\na\tb\t0.5\taccepted\nc\td\t0.1\tmaybe\n", encoding="utf-8")
    (tmp_path / "bad.nt").write_text("<a> <b> .\n", encoding="utf-8")
    res = CliRunner().invoke(app, shlex.split(cmd.format(run=run, tmp=tmp_path)))
    assert res.exit_code == code, (res.stdout, res.stderr, res.exception)
    assert needle in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "x.tsv").exists()


def test_broken_pipe_is_quiet(tmp_path):
    big = tmp_path / "big.tsv"
    with open(big, "w", encoding="utf-8") as f:
        f.write("kg1\tkg2\tscore\tstatus\n")
        f.writelines(f"http://a.org/{i}\thttp://b.org/{i}\t0.5\taccepted\n" for i in range(60000))
    p = sh(
        f"{KG} export --predictions {big} --format nt | head -n 2",
    )
    assert len(p.stdout.splitlines()) == 2 and "Traceback" not in p.stderr and "Error" not in p.stderr
