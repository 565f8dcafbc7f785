"""`kgalign report`: every figure exists and decodes, the HTML parses and embeds them, errors are clean."""

import base64
import io
import json
from html.parser import HTMLParser

from PIL import Image
from review_helpers import copy_run, example_run, kgalign
from test_export_helpers import make_run

from kgalign.review.report import FIGURES, build_report

VOID = {"meta", "img", "br", "hr", "input", "link"}


class StrictParser(HTMLParser):
    """Checks that every non-void element is closed in order; collects the images."""

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.errors, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    p = StrictParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    assert p.errors == [] and p.stack == [], (p.errors, p.stack)
    return p


def _check_figures(out_dir, page):
    assert len(page.images) == len(FIGURES)
    for img, (name, title, _) in zip(page.images, FIGURES, strict=True):
        assert img["alt"] == title and img["src"].startswith("data:image/png;base64,")
        embedded = base64.b64decode(img["src"].split(",", 1)[1])
        assert embedded == (out_dir / name).read_bytes()  # the PNG beside the HTML is the one embedded
        with Image.open(io.BytesIO(embedded)) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] >= 600


def test_report_of_the_example_run(tmp_path_factory, tmp_path):
    run = copy_run(example_run(tmp_path_factory), tmp_path / "run")
    p = kgalign("report", run, "--json")
    summary = json.loads(p.stdout)
    out = run / "report"
    assert summary["output"] == str(out / "index.html") and summary["valid_links"] == 30
    page = parse(out / "index.html")
    _check_figures(out, page)
    text = " ".join(page.text)
    # NoCo reports its modality weights and confidences each epoch, so they are plotted
    assert "Results of the selected model" in text and "Not reported by this model" not in text
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("weight.graph" in r["model"] and "confidence.graph" in r["model"] for r in records)
    assert "threshold 0.6" in text and "review threshold 0.3" in text
    assert "http" not in "".join(i["src"][:30] for i in page.images)  # nothing external
    assert sorted(x.name for x in out.iterdir()) == sorted(["index.html", *(f for f, _, _ in FIGURES)])


def test_model_values_are_plotted_when_reported(tmp_path):
    run, _, _ = make_run(tmp_path)
    with open(run / "metrics.jsonl", "w") as f:
        for e in range(1, 5):
            rec = {"epoch": e, "loss": 10.0 / e, "parts": {"a": 5.0 / e}}
            rec["model"] = {"weight.graph": 0.3 + 0.01 * e, "confidence.image": 0.8, "noise.scale": 0.1}
            if e % 2 == 0:
                rec["valid"] = {"csls": {"l2r": {"hits@1": 0.1 * e, "mrr": 0.12 * e}}}
            f.write(json.dumps(rec) + "\n")
    out = tmp_path / "rep"
    build_report(run, out)
    page = parse(out / "index.html")
    _check_figures(out, page)
    assert "Not reported by this model" not in " ".join(page.text)
    assert "No results.json" in " ".join(page.text)


def test_bad_metrics_line_is_bad_input_and_writes_nothing(tmp_path):
    run, _, _ = make_run(tmp_path)
    (run / "metrics.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n{"epoch": 2, "loss": \n')
    p = kgalign("report", run, check=False)
    assert p.returncode == 2 and f"{run / 'metrics.jsonl'}:2: invalid JSON" in p.stderr and "Traceback" not in p.stderr
    assert not (run / "report").exists() and [x.name for x in run.iterdir() if x.name.startswith(".")] == []
    p = kgalign("report", tmp_path / "nowhere", check=False)
    assert p.returncode == 3 and "no such run directory" in p.stderr


def test_precision_recall_against_the_threshold():
    import numpy as np

    from kgalign.review.report import ValidScores, prf_curves

    vs = ValidScores(np.array([0.9, 0.8, 0.4]), np.array([True, False, True]), total=4)  # one valid link unmatched
    grid, prf = prf_curves(vs, points=11)  # thresholds 0.0, 0.1, ..., 1.0
    at = {round(float(t), 1): i for i, t in enumerate(grid)}
    assert prf["precision"][at[0.5]] == 0.5 and prf["recall"][at[0.5]] == 0.25
    assert prf["precision"][at[0.3]] == 2 / 3 and prf["recall"][at[0.3]] == 0.5
    assert prf["f1"][at[0.9]] == 2 * 1.0 * 0.25 / 1.25
    assert np.isnan(prf["precision"][at[1.0]]) and np.isnan(prf["f1"][at[1.0]])  # nothing kept: undefined
